//! Maintenance commands of etcdctl 3.4 against Debian's etcd 3.4 and against cairn: outputs
//! must match step for step (ids and endpoints aside).

use cairn_e2e::harness::{Kind, Member};
use cairn_e2e::script::assert_same_as_etcd;

#[test]
fn hashkv_answers_as_etcd_does() {
    assert_same_as_etcd(include_str!("../scripts/hashkv.txt"));
}

/// What differs between any two servers in `endpoint status` and `endpoint health`: ids,
/// sizes, timings, the version (Cairn reports the etcd API level it speaks, 3.5.0) and the
/// raft index (etcd's first entries are not Cairn's; its movement is checked apart).
fn mask_status(s: &str, member_id: u64, cluster_id: u64) -> String {
    let own = [
        (format!(r"\b({member_id}|{member_id:x})\b"), "<SELF>"),
        (format!(r"\b({cluster_id}|{cluster_id:x})\b"), "<CLUSTER>"),
    ];
    let rules = [
        (r"\b3\.[45]\.\d+\b", "<VERSION>"),
        (r#"("dbSize(InUse)?"|"DBSize") ?: ?\d+"#, "$1:<BYTES>"),
        (r"\b\d+(\.\d+)? [kMG]?B\b", "<BYTES>"),
        (r#"("raftIndex"|"raftAppliedIndex"|"RaftIndex"|"RaftAppliedIndex") ?: ?\d+"#, "$1:<INDEX>"),
        (r"took = [0-9.]+[µnm]?s", "took = <T>"),
        (r#""took":"[0-9.]+[µnm]?s""#, r#""took":"<T>""#),
        (r"\| [0-9.]+[µnm]?s \|", "| <T> |"),
        // The plain and table forms: is leader, is learner, term, index, applied index.
        (
            r"\b(true|false)(,? \|?) ?(true|false)(,? \|?) ?(\d+)(,? \|?) ?\d+(,? \|?) ?\d+\b",
            "$1$2 $3$4 $5$6 <INDEX>$7 <INDEX>",
        ),
        (r"127\.0\.0\.1:\d+", "<ENDPOINT>"),
    ];
    // Table columns are as wide as their widest cell: masked cells differ in width.
    let mut out = regex::Regex::new(r"[ -]{2,}").expect("valid regex").replace_all(s, " ").into_owned();
    for (re, with) in own.iter().map(|(r, w)| (r.as_str(), *w)).chain(rules) {
        out = regex::Regex::new(re).expect("valid regex").replace_all(&out, with).into_owned();
    }
    out
}

/// The status as JSON: (member id, cluster id, raftIndex, raftAppliedIndex, revision).
fn status_of(m: &Member) -> (u64, u64, u64, u64, i64) {
    let out = m.ctl(&["endpoint", "status", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let s = &v[0]["Status"];
    let n = |x: &serde_json::Value| x.as_u64().unwrap_or_else(|| panic!("not a number in {out}"));
    (
        n(&s["header"]["member_id"]),
        n(&s["header"]["cluster_id"]),
        n(&s["raftIndex"]),
        n(&s["raftAppliedIndex"]),
        n(&s["header"]["revision"]) as i64,
    )
}

#[test]
fn endpoint_status_and_health_answer_as_etcd_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let etcd = Member::start(Kind::Etcd, &dir.path().join("etcd"), &[]);
    let cairn = Member::start(Kind::Cairn, &dir.path().join("cairn"), &[]);
    let forms: &[&[&str]] = &[
        &["endpoint", "status"],
        &["endpoint", "status", "-w", "json"],
        &["endpoint", "status", "-w", "fields"],
        &["endpoint", "status", "-w", "table"],
        &["endpoint", "status", "--cluster", "-w", "table"],
        &["endpoint", "health"],
        &["endpoint", "health", "-w", "json"],
        &["endpoint", "health", "-w", "table"],
        &["endpoint", "health", "--cluster"],
        &["alarm", "list"],
    ];
    let transcript = |m: &Member| {
        let (member, cluster, ..) = status_of(m);
        let text: String = forms.iter().map(|f| format!("$ {}\n{}", f.join(" "), m.ctl(f))).collect();
        mask_status(&text, member, cluster)
    };
    assert_eq!(transcript(&etcd), transcript(&cairn));
    let before = [status_of(&etcd), status_of(&cairn)];
    for m in [&etcd, &cairn] {
        for i in 0..5 {
            m.ctl(&["put", &format!("k{i}"), "v"]);
        }
    }
    let after = [status_of(&etcd), status_of(&cairn)];
    for (name, b, a) in [("etcd", before[0], after[0]), ("cairn", before[1], after[1])] {
        assert_eq!(a.4, b.4 + 5, "{name}: five puts are five revisions");
        assert_eq!(a.2, a.3, "{name}: a single member applies what it commits");
    }
    // etcd appends entries of its own after it starts (its attributes, the cluster version),
    // whenever it gets to them; Cairn's raft index moves by the puts alone.
    assert!(after[0].2 >= before[0].2 + 5, "etcd: {before:?} -> {after:?}");
    assert_eq!(after[1].2, before[1].2 + 5, "cairn: five puts are five raft entries");
    assert_eq!(transcript(&etcd), transcript(&cairn));
}
