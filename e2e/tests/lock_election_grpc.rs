//! The v3lock and v3election gRPC services, against etcd 3.4 and cairn: the same calls give
//! the same answers (ids aside), including who waits for whom.

use cairn_api::proto::etcdserverpb::lease_client::LeaseClient;
use cairn_api::proto::etcdserverpb::LeaseGrantRequest;
use cairn_api::proto::v3electionpb::election_client::ElectionClient;
use cairn_api::proto::v3electionpb::{CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest};
use cairn_api::proto::v3lockpb::lock_client::LockClient;
use cairn_api::proto::v3lockpb::{LockRequest, UnlockRequest};
use cairn_e2e::harness::{Kind, Member};
use std::time::Duration;
use tonic::transport::Channel;

fn show<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> String {
    let s = match r {
        Ok(r) => format!("{:?}", r.into_inner()),
        Err(e) => format!("error {:?}: {}", e.code(), e.message()),
    };
    regex::Regex::new(r"(cluster_id|member_id|raft_term): \d+").unwrap().replace_all(&s, "$1: _").into_owned()
}

/// Runs one scenario against a server and returns its transcript.
async fn scenario(addr: &str) -> Vec<String> {
    let ch = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut t = Vec::new();
    let mut lease = LeaseClient::new(ch.clone());
    for id in [0x100, 0x200] {
        t.push(show(lease.lease_grant(LeaseGrantRequest { ttl: 60, id }).await));
    }
    let mut lock = LockClient::new(ch.clone());
    t.push(show(lock.lock(LockRequest { name: b"L".to_vec(), lease: 0x100 }).await));
    // A second contender waits until the first unlocks.
    let mut waiter = LockClient::new(ch.clone());
    let second =
        tokio::spawn(async move { show(waiter.lock(LockRequest { name: b"L".to_vec(), lease: 0x200 }).await) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    t.push(format!("second done before unlock: {}", second.is_finished()));
    t.push(show(lock.unlock(UnlockRequest { key: b"L/100".to_vec() }).await));
    t.push(tokio::time::timeout(Duration::from_secs(10), second).await.expect("second lock granted").unwrap());
    t.push(show(lock.unlock(UnlockRequest { key: b"L/200".to_vec() }).await));
    t.push(show(lock.lock(LockRequest { name: b"L".to_vec(), lease: 0x999 }).await));

    let mut el = ElectionClient::new(ch.clone());
    let campaign = |lease: i64, value: &str| CampaignRequest { name: b"E".to_vec(), lease, value: value.into() };
    let first = el.campaign(campaign(0x100, "a")).await;
    let leader = first.as_ref().ok().and_then(|r| r.get_ref().leader.clone());
    t.push(show(first));
    let leader = leader.expect("first campaign wins");
    t.push(show(el.leader(LeaderRequest { name: b"E".to_vec() }).await));
    t.push(show(el.proclaim(ProclaimRequest { leader: Some(leader.clone()), value: b"b".to_vec() }).await));
    t.push(show(el.leader(LeaderRequest { name: b"E".to_vec() }).await));
    let stale = LeaderKey { rev: leader.rev - 1, ..leader.clone() };
    t.push(show(el.proclaim(ProclaimRequest { leader: Some(stale), value: b"x".to_vec() }).await));
    t.push(show(el.proclaim(ProclaimRequest { leader: None, value: b"x".to_vec() }).await));
    let mut observer = el.observe(LeaderRequest { name: b"E".to_vec() }).await.unwrap().into_inner();
    t.push(format!("observed {:?}", observer.message().await.unwrap().map(|r| r.kv)));
    let mut el2 = ElectionClient::new(ch.clone());
    let challenger = tokio::spawn(async move { show(el2.campaign(campaign(0x200, "c")).await) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    t.push(format!("challenger elected while the leader leads: {}", challenger.is_finished()));
    t.push(show(el.resign(ResignRequest { leader: Some(leader) }).await));
    t.push(tokio::time::timeout(Duration::from_secs(10), challenger).await.expect("challenger elected").unwrap());
    let next = tokio::time::timeout(Duration::from_secs(10), observer.message()).await.expect("observer told");
    t.push(format!("observed {:?}", next.unwrap().map(|r| r.kv)));
    t.push(show(el.leader(LeaderRequest { name: b"nobody".to_vec() }).await));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_election_services_answer_as_etcd_does() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Member::start(Kind::Etcd, &dir.path().join("etcd"), &[]);
    let cairn = Member::start(Kind::Cairn, &dir.path().join("cairn"), &[]);
    let want = scenario(&etcd.client_addr).await;
    let got = scenario(&cairn.client_addr).await;
    let diffs: Vec<String> = want
        .iter()
        .zip(&got)
        .enumerate()
        .filter(|(_, (w, g))| w != g)
        .map(|(i, (w, g))| format!("step {i}\n--- etcd:  {w}\n--- cairn: {g}"))
        .collect();
    assert!(diffs.is_empty(), "{} step(s) differ:\n{}", diffs.len(), diffs.join("\n"));
    assert_eq!(want.len(), got.len());
}
