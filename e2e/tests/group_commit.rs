//! Group commit: concurrent proposals share WAL fsyncs, read off etcd's own metric.

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::PutRequest;
use cairn_e2e::harness::{http_get, Kind, Member};

fn fsyncs(addr: &str) -> u64 {
    let (status, body) = http_get(addr, "/metrics").expect("metrics answer");
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix("etcd_disk_wal_fsync_duration_seconds_count "))
        .expect("fsync histogram exported")
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_share_fsyncs() {
    const IN_FLIGHT: usize = 256;
    const PER_TASK: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &[]);
    let client = KvClient::connect(format!("http://{}", m.client_addr)).await.unwrap();
    let before = fsyncs(&m.client_addr);
    let mut tasks = Vec::new();
    for t in 0..IN_FLIGHT {
        let mut c = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let key = format!("gc-{t}-{i}").into_bytes();
                c.put(PutRequest { key, value: b"v".to_vec(), ..Default::default() }).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let puts = (IN_FLIGHT * PER_TASK) as u64;
    let synced = fsyncs(&m.client_addr) - before;
    assert!(synced > 0, "the fsync metric did not move");
    // Every acknowledged put was fsynced; one fsync per put would make these equal.
    assert!(synced * 2 < puts, "{puts} concurrent puts took {synced} fsyncs: no group commit");
    eprintln!("{puts} puts, {synced} fsyncs");
}
