//! Lease expiry and restarts: keys of an expired lease disappear together, never early; a
//! lease and its keys survive a SIGKILL.

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::lease_client::LeaseClient;
use cairn_api::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest,
};
use cairn_e2e::harness::{Kind, Member};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

async fn clients(m: &Member) -> (KvClient<Channel>, LeaseClient<Channel>) {
    let ch = m.channel().await;
    (KvClient::new(ch.clone()), LeaseClient::new(ch))
}

async fn put(kv: &mut KvClient<Channel>, key: &str, lease: i64) -> i64 {
    let r = kv.put(PutRequest { key: key.into(), value: b"v".to_vec(), lease, ..Default::default() }).await.unwrap();
    r.into_inner().header.unwrap().revision
}

async fn all(kv: &mut KvClient<Channel>) -> (Vec<String>, i64) {
    let r =
        kv.range(RangeRequest { key: vec![0], range_end: vec![0], ..Default::default() }).await.unwrap().into_inner();
    (r.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect(), r.header.unwrap().revision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lease_deletes_its_keys_in_one_revision_never_early() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &[]);
    let (mut kv, mut lease) = clients(&m).await;
    let start = Instant::now();
    let g = lease.lease_grant(LeaseGrantRequest { ttl: 1, id: 0 }).await.unwrap().into_inner();
    // etcd's minimum with the default election timeout: ceil(1.5 * 1s).
    assert_eq!(g.ttl, 2);
    for k in ["a", "b", "c"] {
        put(&mut kv, k, g.id).await;
    }
    let last = put(&mut kv, "kept", 0).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (keys, rev) = loop {
        let (keys, rev) = all(&mut kv).await;
        if keys == ["kept"] {
            break (keys, rev);
        }
        assert!(keys.len() == 4, "keys of one lease must go together, saw {keys:?}");
        assert!(Instant::now() < deadline, "a 2s lease never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(start.elapsed() >= Duration::from_millis(1900), "expired after {:?}, before its TTL", start.elapsed());
    assert_eq!(keys, ["kept"]);
    assert_eq!(rev, last + 1, "the three deletions are one revision");
    let ttl = lease.lease_time_to_live(LeaseTimeToLiveRequest { id: g.id, keys: false }).await.unwrap().into_inner();
    assert_eq!(ttl.ttl, -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_their_keys_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(Kind::Cairn, dir.path(), &[]);
    let id = 0x1234;
    {
        let (mut kv, mut lease) = clients(&m).await;
        let g = lease.lease_grant(LeaseGrantRequest { ttl: 60, id }).await.unwrap().into_inner();
        assert_eq!(g.id, id);
        put(&mut kv, "leased", id).await;
    }
    m.kill9();
    m.restart();
    let (mut kv, mut lease) = clients(&m).await;
    let ttl = lease.lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true }).await.unwrap().into_inner();
    assert_eq!(ttl.granted_ttl, 60);
    assert!(ttl.ttl > 0 && ttl.ttl <= 60, "remaining {}", ttl.ttl);
    assert_eq!(ttl.keys, vec![b"leased".to_vec()]);
    let dup = lease.lease_grant(LeaseGrantRequest { ttl: 60, id }).await.unwrap_err();
    assert_eq!(dup.message(), "etcdserver: lease already exists");
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
    let mut stream =
        lease.lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
    let ka = stream.message().await.unwrap().unwrap();
    assert_eq!((ka.id, ka.ttl), (id, 60));
    drop(tx);
    lease.lease_revoke(LeaseRevokeRequest { id }).await.unwrap();
    assert!(all(&mut kv).await.0.is_empty(), "revoking deletes the attached key");
}
