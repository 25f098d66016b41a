//! `etcdctl snapshot save` against Cairn (side by side with etcd for what etcdctl prints),
//! `cairn snapshot status`, and `cairn snapshot restore` into a new three-member cluster
//! that serves every key at its original revisions, history since the compaction included.

use cairn_e2e::harness::{cairn_bin, Kind, Member};
use std::path::Path;
use std::process::Command;

fn cairn(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(cairn_bin()).args(args).output().expect("run cairn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes some history, compacts part of it, saves a snapshot to `file`; returns what
/// etcdctl printed (the path masked).
fn save(m: &Member, file: &Path) -> String {
    for args in [
        ["put", "a", "1"],
        ["put", "b", "2"],
        ["put", "a", "3"],
        ["del", "b", ""],
        ["put", "c", "4"],
        ["put", "a", "5"],
    ] {
        let args: Vec<&str> = args.iter().copied().filter(|s| !s.is_empty()).collect();
        m.ctl(&args);
    }
    m.ctl(&["compaction", "4"]);
    let f = file.display().to_string();
    m.ctl(&["snapshot", "save", &f]).replace(&f, "FILE")
}

/// What a client sees of the data: every key now and at a past revision, and the hash.
fn view(m: &Member) -> String {
    let strip = |s: String| {
        regex::Regex::new(r#""(cluster_id|member_id|raft_term)":\d+,?"#).unwrap().replace_all(&s, "").into_owned()
    };
    let mut out = strip(m.ctl(&["get", "", "--prefix", "-w", "json"]));
    out += &m.ctl(&["get", "a", "--rev=5"]);
    out += &m.ctl(&["get", "a", "--rev=3"]);
    out += &m.ctl(&["endpoint", "hashkv", "--rev=7"]).replace(&m.client_addr, "ENDPOINT");
    out
}

#[test]
fn etcdctl_saves_a_snapshot_as_from_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Member::start(Kind::Etcd, &dir.path().join("etcd"), &[]);
    let cairn = Member::start(Kind::Cairn, &dir.path().join("cairn"), &[]);
    let from_etcd = save(&etcd, &dir.path().join("etcd.db"));
    let from_cairn = save(&cairn, &dir.path().join("cairn.db"));
    assert!(from_etcd.contains("Snapshot saved at FILE"), "{from_etcd}");
    assert_eq!(from_cairn, from_etcd);
}

#[test]
fn a_restored_cluster_serves_every_key_at_its_revisions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("restored")).unwrap();
    let original = Member::start(Kind::Cairn, &dir.path().join("original"), &[]);
    let file = dir.path().join("snap.db");
    save(&original, &file);
    let before = view(&original);
    assert!(before.contains("\"revision\":7"), "{before}");
    let f = file.display().to_string();

    let (ok, status, err) = cairn(&["snapshot", "status", &f, "-w", "json"]);
    assert!(ok, "{err}");
    assert!(status.contains("\"revision\":7,\"totalKey\":2,"), "{status}");

    // A damaged copy is refused.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0xff;
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    let (ok, _, err) = cairn(&[
        "snapshot",
        "restore",
        &damaged.display().to_string(),
        "--data-dir",
        &dir.path().join("x").display().to_string(),
    ]);
    assert!(!ok && err.contains("expected sha256"), "{err}");

    // A member that is not in the new cluster's list.
    let stranger = dir.path().join("stranger").display().to_string();
    let (ok, _, err) = cairn(&[
        "snapshot",
        "restore",
        &f,
        "--name",
        "x",
        "--data-dir",
        &stranger,
        "--initial-cluster",
        "y=http://127.0.0.1:1",
    ]);
    assert!(!ok && err.contains("couldn't find local name \"x\""), "{err}");
    assert!(!Path::new(&stranger).exists(), "a refused restore leaves no data dir behind");

    let restored = dir.path().join("restored");
    let mut ms = Member::plan_cluster(Kind::Cairn, &restored, &["127.0.0.1"; 3], &[]);
    for m in &ms {
        let (ok, _, err) = cairn(&[
            "snapshot",
            "restore",
            &f,
            "--name",
            &m.name(),
            "--data-dir",
            &m.data_dir.display().to_string(),
            "--initial-cluster",
            &m.initial_cluster(),
            "--initial-cluster-token",
            "e2e-cluster",
            "--initial-advertise-peer-urls",
            &m.peer_url,
        ]);
        assert!(ok, "restore for {}: {err}", m.name());
    }
    Member::start_all(&mut ms);
    for m in &ms {
        assert_eq!(view(m), before, "{} serves other data than the original", m.name());
    }
    assert_eq!(ms[1].ctl(&["member", "list"]).lines().count(), 3, "the new cluster's own three members");
    // The history goes on from the snapshot's revision.
    assert!(ms[2].ctl(&["put", "d", "6", "-w", "json"]).contains("\"revision\":8"));
}

/// `cairn snapshot save` writes what `etcdctl snapshot save` writes, byte for byte, and
/// refuses what etcdctl refuses.
#[test]
fn cairn_saves_the_same_file_as_etcdctl() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, &dir.path().join("cairn"), &[]);
    let by_etcdctl = dir.path().join("etcdctl.db");
    save(&m, &by_etcdctl);
    let by_cairn = dir.path().join("cairn.db");
    let (ok, out, err) = cairn(&["snapshot", "save", by_cairn.to_str().unwrap(), "--endpoints", &m.client_addr]);
    assert!(ok, "{out}{err}");
    assert_eq!(out, format!("Snapshot saved at {}\n", by_cairn.display()));
    assert!(std::fs::read(&by_cairn).unwrap() == std::fs::read(&by_etcdctl).unwrap(), "the two files differ");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&by_cairn).unwrap().permissions().mode() & 0o777, 0o600, "a snapshot holds secrets");
    let two = format!("{},127.0.0.1:1", m.client_addr);
    let (ok, _, err) = cairn(&["snapshot", "save", "x.db", "--endpoints", &two]);
    assert!(!ok && err.contains("snapshot must be requested to one selected node, not multiple"), "{err}");
    let (ok, _, err) =
        cairn(&["snapshot", "save", dir.path().join("y.db").to_str().unwrap(), "--endpoints", "127.0.0.1:1"]);
    assert!(!ok && err.contains("dial 127.0.0.1:1"), "{err}");
    assert!(!dir.path().join("y.db.part").exists(), "a failed save leaves no part file");
}

/// `--bump-revision` with `--mark-compacted` (etcd 3.6's flags, for restoring under clients
/// that remember revisions): the keys keep their revisions, the store's revision jumps past
/// the bump, and reads from before it are told they were compacted.
#[test]
fn a_restore_with_a_bumped_revision_goes_on_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let original = Member::start(Kind::Cairn, &dir.path().join("original"), &[]);
    let file = dir.path().join("snap.db");
    save(&original, &file);
    let header = ["\"ClusterID\"", "\"MemberID\"", "\"Revision\"", "\"RaftTerm\""];
    let keys = |m: &Member| -> Vec<String> {
        let out = m.ctl(&["get", "", "--prefix", "-w", "fields"]);
        out.lines().filter(|l| !header.iter().any(|h| l.starts_with(h))).map(str::to_string).collect()
    };
    let before = keys(&original);
    drop(original);
    let f = file.display().to_string();
    let mut ms = Member::plan_cluster(Kind::Cairn, &dir.path().join("bumped"), &["127.0.0.1"], &[]);
    let (data_dir, peer) = (ms[0].data_dir.display().to_string(), ms[0].peer_url.clone());
    let restore = |extra: &[&str]| {
        let mut args = vec!["snapshot", "restore", &f, "--name", "m0", "--data-dir", &data_dir];
        args.extend(["--initial-advertise-peer-urls", &peer]);
        args.extend(extra);
        cairn(&args)
    };
    let (ok, _, err) = restore(&["--bump-revision", "1000"]);
    assert!(!ok && err.contains("--mark-compacted required if --bump-revision > 0"), "{err}");
    let (ok, _, err) = restore(&["--bump-revision", "1000", "--mark-compacted"]);
    assert!(ok && err.contains("(revision 7, bumped by 1000 and compacted there)"), "{err}");
    Member::start_all(&mut ms);
    let m = &ms[0];
    assert_eq!(keys(m), before, "every key at its revisions");
    assert!(m.ctl(&["get", "a", "-w", "json"]).contains("\"revision\":1007"));
    assert!(m.ctl(&["get", "a", "--rev=7"]).contains("required revision has been compacted"));
    assert!(m.ctl(&["put", "d", "6", "-w", "json"]).contains("\"revision\":1008"));
}
