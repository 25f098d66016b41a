//! A member cut off from the others by iptables (members on 127.0.0.11-13; connections leave
//! from each member's own address, so the rules can single one out). The cut-off minority
//! must take no write and serve no stale linearizable read; the majority goes on; once the
//! cut heals every member holds the same data at the same revisions, and HashKV agrees.

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cairn_api::proto::etcdserverpb::{HashKvRequest, PutRequest, RangeRequest};
use cairn_e2e::harness::{require_tool, Kind, Member};
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

const HOSTS: [&str; 3] = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];

/// iptables rules dropping all traffic between `isolated` and `others`, removed on drop.
struct Cut {
    rules: Vec<Vec<String>>,
}

impl Cut {
    fn new(isolated: &str, others: &[&str]) -> Cut {
        let mut rules = Vec::new();
        for o in others {
            for (s, d) in [(isolated, *o), (*o, isolated)] {
                rules.push(vec![
                    "INPUT".into(),
                    "-s".into(),
                    s.into(),
                    "-d".into(),
                    d.into(),
                    "-j".into(),
                    "DROP".into(),
                ]);
            }
        }
        let cut = Cut { rules };
        for r in &cut.rules {
            iptables("-I", r);
        }
        cut
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        for r in &self.rules {
            iptables("-D", r);
        }
    }
}

fn iptables(op: &str, rule: &[String]) {
    let out = Command::new(require_tool("iptables")).arg(op).args(rule).output().expect("run iptables");
    assert!(out.status.success(), "iptables {op} {rule:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A client of `m` whose connection leaves from m's own address (not cut by the rules).
async fn client(m: &Member, timeout: Duration) -> KvClient<Channel> {
    let host: IpAddr = m.client_addr.split(':').next().unwrap().parse().unwrap();
    let ch = Endpoint::from_shared(format!("http://{}", m.client_addr))
        .unwrap()
        .local_address(Some(host))
        .timeout(timeout)
        .connect()
        .await
        .unwrap();
    KvClient::new(ch)
}

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest { key: key.into(), value: value.into(), ..Default::default() }
}

fn get(key: &str, serializable: bool) -> RangeRequest {
    RangeRequest { key: key.into(), serializable, ..Default::default() }
}

/// (key, value, create, mod, version) of every key, as `m` has it (serializable).
async fn contents(kv: &mut KvClient<Channel>) -> (i64, Vec<(Vec<u8>, Vec<u8>, i64, i64, i64)>) {
    let r = RangeRequest { key: vec![0], range_end: vec![0], serializable: true, ..Default::default() };
    let resp = kv.range(r).await.unwrap().into_inner();
    let kvs = resp.kvs.into_iter().map(|k| (k.key, k.value, k.create_revision, k.mod_revision, k.version)).collect();
    (resp.header.unwrap().revision, kvs)
}

async fn until<T>(what: &str, within: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_takes_no_write_and_serves_no_stale_read() {
    require_tool("iptables");
    let dir = tempfile::tempdir().unwrap();
    let ms = Member::start_cluster_on(Kind::Cairn, dir.path(), &HOSTS, &[]);
    let mut kv0 = client(&ms[0], Duration::from_secs(10)).await;
    kv0.put(put("k", "before")).await.unwrap();
    let leader = ms.iter().position(|m| m.is_leader()).expect("a leader");
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    let cut = Cut::new(HOSTS[leader], &[HOSTS[a], HOSTS[b]]);

    // The majority elects a leader of its own and takes writes.
    let mut majority = client(&ms[a], Duration::from_secs(3)).await;
    until("a write through the majority", Duration::from_secs(30), async || {
        majority.put(put("k", "during")).await.ok()
    })
    .await;
    let mut seen = client(&ms[b], Duration::from_secs(3)).await;
    let during = seen.range(get("k", false)).await.unwrap().into_inner();
    assert_eq!(during.kvs[0].value, b"during");

    // The old leader, alone: no write, no linearizable read (it would be stale), a
    // serializable read of what it had.
    let mut minority = client(&ms[leader], Duration::from_secs(3)).await;
    let w = minority.put(put("minority", "1")).await;
    assert!(w.is_err(), "the cut-off member acknowledged a write: {w:?}");
    for _ in 0..3 {
        let r = minority.range(get("k", false)).await;
        assert!(r.is_err(), "the cut-off member answered a linearizable read: {r:?}");
    }
    let stale = minority.range(get("k", true)).await.unwrap().into_inner();
    assert_eq!(stale.kvs[0].value, b"before", "a serializable read answers from local state");

    drop(cut);
    let mut healed = client(&ms[leader], Duration::from_secs(3)).await;
    until("the healed member reads the majority's write", Duration::from_secs(30), async || {
        let r = healed.range(get("k", false)).await.ok()?.into_inner();
        (r.kvs.first()?.value == b"during").then_some(())
    })
    .await;
    // Every member converges on the same keys, values and revisions.
    let mut all = Vec::new();
    for m in &ms {
        all.push(client(m, Duration::from_secs(3)).await);
    }
    let want = contents(&mut majority).await;
    for (i, kv) in all.iter_mut().enumerate() {
        let got = until("members converge", Duration::from_secs(30), async || {
            let c = contents(kv).await;
            (c.0 == want.0).then_some(c)
        })
        .await;
        assert_eq!(got, want, "m{i} differs from the majority");
    }
    // And HashKV, etcd's consistency check, agrees.
    let mut hashes = Vec::new();
    for m in &ms {
        let host: IpAddr = m.client_addr.split(':').next().unwrap().parse().unwrap();
        let ch = Endpoint::from_shared(format!("http://{}", m.client_addr)).unwrap().local_address(Some(host));
        let mut maint = MaintenanceClient::new(ch.connect().await.unwrap());
        let h = maint.hash_kv(HashKvRequest { revision: want.0 }).await.unwrap().into_inner();
        hashes.push(h.hash);
    }
    assert!(hashes.iter().all(|h| *h == hashes[0]), "HashKV differs between members: {hashes:?}");
    assert!(want.1.iter().all(|(k, ..)| k != b"minority"), "the refused write came back after the heal");
}
