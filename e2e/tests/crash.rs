//! SIGKILL under concurrent writes: after every restart each acknowledged put is present with
//! its value at exactly the revision its response carried, and no entry was applied twice.

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::{PutRequest, RangeRequest};
use cairn_e2e::harness::{Kind, Member};
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WRITERS: usize = 16;

/// Writes unique keys until the server goes away; returns what was acknowledged.
async fn write_until_killed(addr: String, round: usize, acked: Arc<Mutex<HashMap<String, (String, i64)>>>) {
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (addr, acked) = (addr.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut c) = KvClient::connect(format!("http://{addr}")).await else {
                return;
            };
            for i in 0.. {
                let key = format!("r{round}-w{w}-{i:06}");
                let value = format!("{key}-value");
                match c
                    .put(PutRequest { key: key.clone().into(), value: value.clone().into(), ..Default::default() })
                    .await
                {
                    Ok(r) => {
                        let rev = r.into_inner().header.expect("header").revision;
                        acked.lock().unwrap().insert(key, (value, rev));
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn verify(addr: &str, acked: &HashMap<String, (String, i64)>) {
    let mut c = KvClient::connect(format!("http://{addr}")).await.unwrap().max_decoding_message_size(256 << 20);
    let all =
        c.range(RangeRequest { key: vec![0], range_end: vec![0], ..Default::default() }).await.unwrap().into_inner();
    let stored: HashMap<String, _> =
        all.kvs.iter().map(|kv| (String::from_utf8(kv.key.clone()).unwrap(), kv.clone())).collect();
    for (k, (v, rev)) in acked {
        let kv = stored.get(k).unwrap_or_else(|| panic!("acknowledged key {k} (revision {rev}) is lost"));
        assert_eq!(&String::from_utf8_lossy(&kv.value), v, "value of {k}");
        assert_eq!(kv.mod_revision, *rev, "revision of {k}");
        assert_eq!(kv.version, 1, "{k} was applied more than once");
    }
    // Each put is one revision on an empty store; a replayed entry would add one more.
    let header = all.header.unwrap();
    assert_eq!(header.revision, all.kvs.len() as i64 + 1, "revision counter and key count disagree");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(Kind::Cairn, dir.path(), &["--snapshot-count", "500"]);
    let acked = Arc::new(Mutex::new(HashMap::new()));
    for round in 0..3 {
        let writer = tokio::spawn(write_until_killed(m.client_addr.clone(), round, acked.clone()));
        // Let a few hundred writes land before the kill, wherever the kill falls.
        let before = acked.lock().unwrap().len();
        let want = before + rand::thread_rng().gen_range(200..1200);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().len() < want {
            assert!(std::time::Instant::now() < deadline, "writes stalled:\n{}", m.log_tail());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        m.kill9();
        writer.await.unwrap();
        m.restart();
        let snapshot = acked.lock().unwrap().clone();
        assert!(snapshot.len() >= want);
        verify(&m.client_addr, &snapshot).await;
    }
}
