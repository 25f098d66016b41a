//! Defragmentation while clients write and read: no write is lost, no read fails, and the
//! data is all there after a SIGKILL and restart (the member reopens the rewritten copy).

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cairn_api::proto::etcdserverpb::{DefragmentRequest, PutRequest, RangeRequest};
use cairn_e2e::harness::{Kind, Member};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

async fn count(kv: &mut KvClient<Channel>) -> i64 {
    let r = RangeRequest { key: b"w".to_vec(), range_end: b"x".to_vec(), count_only: true, ..Default::default() };
    kv.range(r).await.unwrap().into_inner().count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defragmenting_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(Kind::Cairn, dir.path(), &[]);
    let ch = m.channel().await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (mut kv, stop) = (KvClient::new(ch.clone()), stop.clone());
        writers.push(tokio::spawn(async move {
            let (mut acked, mut slowest) = (0i64, Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let put = PutRequest {
                    key: format!("w{w}/{acked:06}").into_bytes(),
                    value: vec![b'v'; 512],
                    ..Default::default()
                };
                let t = Instant::now();
                kv.put(put).await.expect("a put failed during defragmentation");
                slowest = slowest.max(t.elapsed());
                acked += 1;
            }
            (acked, slowest)
        }));
    }
    let reader = {
        let (mut kv, stop) = (KvClient::new(ch.clone()), stop.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                count(&mut kv).await;
                reads += 1;
            }
            reads
        })
    };
    let mut maint = MaintenanceClient::new(ch.clone());
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        maint.defragment(DefragmentRequest {}).await.expect("defragment");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = 0;
    for w in writers {
        let (n, slowest) = w.await.unwrap();
        println!("writer: {n} puts, slowest {slowest:?}");
        acked += n;
    }
    assert!(reader.await.unwrap() > 0);
    assert!(acked > 100, "too few writes to say anything: {acked}");
    assert_eq!(count(&mut KvClient::new(ch)).await, acked, "writes lost across defragmentation");
    m.kill9();
    m.restart();
    assert_eq!(count(&mut KvClient::new(m.channel().await)).await, acked, "writes lost across the restart");
}
