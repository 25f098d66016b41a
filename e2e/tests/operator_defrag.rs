//! The operator's automatic defragmentation (cairn_operator::defrag) on a real fragmented
//! three-member cluster while a client writes: the fragmentation threshold picks every
//! member, followers go first and the leader last (after leadership moved), every member's
//! dbSize drops, and every acknowledged write is there afterwards.

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest};
use cairn_e2e::harness::{Kind, Member};
use cairn_operator::crd::DefragSpec;
use cairn_operator::defrag::{self, Candidate};
use cairn_operator::members;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

async fn candidates(ms: &[Member]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for m in ms {
        let s = members::status(&m.client_addr).await.unwrap();
        out.push(Candidate {
            name: m.name(),
            id: s.id,
            endpoint: m.client_addr.clone(),
            leader: s.leader == s.id,
            db_size: s.db_size,
            db_size_in_use: s.db_size_in_use,
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragmented_cluster_is_defragmented_member_by_member_under_writes() {
    let dir = tempfile::tempdir().unwrap();
    let ms = Member::start_cluster(Kind::Cairn, dir.path(), 3, &[]);
    let mut kv = KvClient::new(ms[0].channel().await);
    // 24 MB written, then deleted and compacted away: most of each database is free space.
    for i in 0..1200 {
        let put =
            PutRequest { key: format!("junk/{i:05}").into_bytes(), value: vec![b'j'; 20_000], ..Default::default() };
        kv.put(put).await.unwrap();
    }
    let del = DeleteRangeRequest { key: b"junk/".to_vec(), range_end: b"junk0".to_vec(), ..Default::default() };
    let rev = kv.delete_range(del).await.unwrap().into_inner().header.unwrap().revision;
    kv.compact(CompactionRequest { revision: rev, physical: true }).await.unwrap();

    let before = candidates(&ms).await;
    let spec = DefragSpec { schedule: None, fragmentation_threshold: Some(0.5), min_db_size: Some("1Mi".into()) };
    let due = defrag::due(&spec, &before, 0, 0).unwrap_or_else(|| panic!("not fragmented enough: {before:?}"));
    assert_eq!(due.members.len(), 3, "{due:?}");
    assert!(due.members[2].leader && !due.members[0].leader && !due.members[1].leader, "{due:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (mut kv, stop) = (KvClient::new(ms[1].channel().await), stop.clone());
        tokio::spawn(async move {
            let mut acked = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let put = PutRequest {
                    key: format!("w/{acked:06}").into_bytes(),
                    value: b"v".to_vec(),
                    ..Default::default()
                };
                if kv.put(put).await.is_ok() {
                    acked += 1;
                }
            }
            acked
        })
    };
    let out = defrag::run(&due, &before).await.unwrap_or_else(|(_, e)| panic!("{e}"));
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(acked > 0);
    assert_eq!(out.defragmented.len(), 3);

    let after = candidates(&ms).await;
    for (b, a) in before.iter().zip(&after) {
        assert!(a.db_size < b.db_size / 2, "{}: dbSize {} -> {}", b.name, b.db_size, a.db_size);
    }
    let old_leader = before.iter().find(|c| c.leader).unwrap();
    assert!(!after.iter().find(|c| c.name == old_leader.name).unwrap().leader, "leadership moved away");
    assert!(out.reclaimed > 0);
    for m in &ms {
        let mut kv = KvClient::new(m.channel().await);
        let r = RangeRequest { key: b"w/".to_vec(), range_end: b"w0".to_vec(), count_only: true, ..Default::default() };
        let count = kv.range(r).await.unwrap().into_inner().count;
        assert!(count >= acked as i64, "{}: {count} of {acked} acknowledged writes", m.name());
    }
}
