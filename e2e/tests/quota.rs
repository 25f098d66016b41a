//! --quota-backend-bytes, side by side with etcd 3.4: once the backend passes the quota a
//! NOSPACE alarm is raised for the cluster; puts, txns that put and lease grants fail with
//! etcd's error while reads and deletes are served; the alarm survives a restart, and
//! disarming it lets writes through again only once compaction and defragmentation gave the
//! space back.

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::PutRequest;
use cairn_e2e::harness::{Kind, Member};
use regex::Regex;

const QUOTA: &str = "8388608";

fn ctl(m: &Member, args: &[&str]) -> String {
    let out = m.ctl(args) + "\n";
    Regex::new(r"memberID:\d+").unwrap().replace_all(&out, "memberID:ID").into_owned()
}

/// Puts 256 KiB values until the quota refuses one; returns that error's message.
async fn fill(m: &Member) -> String {
    let ch = m.channel().await;
    let mut kv = KvClient::new(ch);
    for i in 0..400 {
        let put =
            PutRequest { key: format!("big/{i:03}").into_bytes(), value: vec![b'x'; 256 << 10], ..Default::default() };
        if let Err(e) = kv.put(put).await {
            return format!("{:?}: {}", e.code(), e.message());
        }
    }
    panic!("{:?}: 100 MiB went into an 8 MiB quota", m.kind);
}

async fn transcript(kind: Kind) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(kind, dir.path(), &["--quota-backend-bytes", QUOTA]);
    ctl(&m, &["put", "small", "1"]);
    let mut out = fill(&m).await + "\n";
    out += &ctl(&m, &["put", "k", "v"]);
    out += &ctl(&m, &["lease", "grant", "60"]);
    out += &ctl(&m, &["get", "small"]);
    out += &ctl(&m, &["del", "small"]);
    out += &ctl(&m, &["alarm", "list"]);
    m.restart_answering();
    out += &format!("health after restart: {:?}\n", cairn_e2e::harness::http_get(&m.client_addr, "/health"));
    out += &ctl(&m, &["alarm", "list"]);
    out += &ctl(&m, &["get", "small"]);
    out += &ctl(&m, &["alarm", "disarm"]);
    out += &ctl(&m, &["alarm", "list"]);
    // The space is still taken: the next put raises the alarm again.
    out += &ctl(&m, &["put", "k", "v"]);
    out += &ctl(&m, &["alarm", "list"]);
    // etcd's recovery: compact, defragment, disarm; then writes go through.
    let status = ctl(&m, &["get", "small", "-w", "json"]);
    let rev = Regex::new(r#""revision":(\d+)"#).unwrap().captures(&status).expect("a revision")[1].to_string();
    // How many values fit differs (sled takes more room than bolt for the same data).
    let deleted: u32 = ctl(&m, &["del", "big/", "--prefix"]).trim().parse().expect("a count");
    out += &format!("deleted the big values: {}\n", deleted > 0);
    let compacted = ctl(&m, &["compaction", &(rev.parse::<i64>().unwrap() + 1).to_string()]);
    out += &Regex::new(r"\d+").unwrap().replace_all(&compacted, "N");
    out += &ctl(&m, &["defrag"]).replace(&m.client_addr, "ENDPOINT");
    out += &ctl(&m, &["alarm", "disarm"]);
    out += &ctl(&m, &["put", "k", "v"]);
    out += &ctl(&m, &["alarm", "list"]);
    out += &ctl(&m, &["get", "", "--prefix", "--keys-only"]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nospace_behaves_as_on_etcd() {
    let etcd = transcript(Kind::Etcd).await;
    assert!(etcd.contains("alarm:NOSPACE"), "the reference run did not do what it should:\n{etcd}");
    let cairn = transcript(Kind::Cairn).await;
    assert_eq!(cairn, etcd);
}
