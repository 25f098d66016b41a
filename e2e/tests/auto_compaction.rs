//! --auto-compaction-mode periodic: the leader compacts regularly, and never away history
//! younger than the retention.

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cairn_api::proto::etcdserverpb::{HashKvRequest, PutRequest};
use cairn_e2e::harness::{Kind, Member};
use std::time::{Duration, Instant};

const RETENTION: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_compaction_keeps_the_retention_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(
        Kind::Cairn,
        dir.path(),
        &["--auto-compaction-mode", "periodic", "--auto-compaction-retention", "2s"],
    );
    let ch = m.channel().await;
    let (mut kv, mut maint) = (KvClient::new(ch.clone()), MaintenanceClient::new(ch));
    let start = Instant::now();
    // (when acknowledged, revision), one writer: at any moment at most one put is in flight.
    let mut acked: Vec<(Instant, i64)> = Vec::new();
    let mut compactions = Vec::new();
    while start.elapsed() < Duration::from_secs(9) {
        let put = PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() };
        let rev = kv.put(put).await.unwrap().into_inner().header.unwrap().revision;
        acked.push((Instant::now(), rev));
        let compacted = maint.hash_kv(HashKvRequest { revision: 0 }).await.unwrap().into_inner().compact_revision;
        let now = Instant::now();
        // The store's revision RETENTION ago was at most one past the last put acknowledged then.
        let then = acked.iter().rev().find(|(t, _)| now.duration_since(*t) >= RETENTION).map_or(1, |(_, r)| r + 1);
        assert!(compacted <= then, "compacted at {compacted}, but the revision {RETENTION:?} ago was at most {then}");
        if compactions.last() != Some(&compacted) {
            compactions.push(compacted);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("compaction revisions seen: {compactions:?}, last revision {:?}", acked.last());
    // -1: not yet; then at least two compactions in 9 s (one every 2 s after the first 2 s).
    assert!(compactions.len() >= 3 && compactions[0] == -1, "compactions seen: {compactions:?}");
}
