//! etcd's flags: defaults, and clear failures for unknown or contradictory ones.

use cairn_e2e::harness::{cairn_bin, etcdctl, free_port, http_get};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn fails_with(args: &[&str], needle: &str) {
    let out = Command::new(cairn_bin()).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "cairn {args:?} should fail");
    assert!(stderr.contains(needle), "cairn {args:?}: expected {needle:?} in:\n{stderr}");
}

#[test]
fn unknown_and_contradictory_flags_fail_at_start() {
    fails_with(&["--bogus-flag"], "unexpected argument '--bogus-flag'");
    fails_with(
        &["--heartbeat-interval", "100", "--election-timeout", "400"],
        "should be at least as 5 times as --heartbeat-interval",
    );
    fails_with(&["--name", "x", "--initial-cluster", "y=http://127.0.0.1:2380"], "couldn't find local name \"x\"");
    fails_with(
        &[
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:2390",
            "--initial-cluster",
            "default=http://127.0.0.1:2380",
        ],
        "--initial-cluster has default=http://127.0.0.1:2380 but missing from --initial-advertise-peer-urls",
    );
    fails_with(&["--listen-client-urls", "127.0.0.1:2379"], "--listen-client-urls");
    fails_with(&["--listen-client-urls", "http://127.0.0.1:2379/v3"], "URL must not contain a path");
    fails_with(&["--initial-cluster-state", "maybe"], "invalid value 'maybe'");
    fails_with(&["--log-level", "loud"], "--log-level");
    fails_with(&["--snapshot-count=-1"], "invalid value '-1' for '--snapshot-count");
}

#[test]
fn default_data_dir_is_name_dot_cairn_and_restart_ignores_bootstrap_flags() {
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://localhost:{port}");
    // Tests run side by side: each needs a peer port of its own, not the default 2380.
    let peer = format!("http://localhost:{}", free_port());
    let run = |token: &str| {
        Command::new(cairn_bin())
            .current_dir(cwd.path())
            .args(["--listen-client-urls", &url, "--advertise-client-urls", &url, "--initial-cluster-token", token])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let addr = format!("127.0.0.1:{port}");
    let wait_healthy = || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(http_get(&addr, "/health"), Some((200, _))) {
            assert!(Instant::now() < deadline, "cairn never became healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let member_id = || {
        let o = etcdctl(&addr, &["put".into(), "k".into(), "v".into(), "-w".into(), "json".into()], None);
        assert!(o.success, "{}", o.errors);
        let v: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
        v["header"]["member_id"].as_u64().unwrap()
    };
    let mut first = run("etcd-cluster");
    wait_healthy();
    let id = member_id();
    assert!(cwd.path().join("default.cairn/member/wal").is_dir(), "data dir is not ./default.cairn");
    // SAFETY: plain signal to a child we own.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    assert!(first.wait().unwrap().success(), "SIGTERM should stop cairn cleanly");
    let mut second = run("another-token");
    wait_healthy();
    assert_eq!(member_id(), id, "a restart must keep its identity whatever the bootstrap flags say");
    let o = etcdctl(&addr, &["get".into(), "k".into(), "-w".into(), "json".into()], None);
    let v: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(v["kvs"][0]["version"], 2);
    second.kill().unwrap();
    second.wait().unwrap();
}

#[test]
fn every_listen_url_serves_and_limits_follow_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_port(), free_port());
    let urls = format!("http://127.0.0.1:{p1},http://127.0.0.1:{p2}");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let mut child = Command::new(cairn_bin())
        .current_dir(dir.path())
        .args(["--listen-client-urls", &urls, "--advertise-client-urls", &urls])
        .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
        .args(["--max-txn-ops", "2", "--max-request-bytes", "1000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (a1, a2) = (format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http_get(&a2, "/health"), Some((200, _))) {
        assert!(Instant::now() < deadline, "cairn never became healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ctl = |addr: &str, args: &[&str], stdin: Option<&str>| {
        etcdctl(addr, &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), stdin)
    };
    assert!(ctl(&a1, &["put", "k", "v"], None).success);
    assert_eq!(ctl(&a2, &["get", "k", "--print-value-only"], None).stdout, "v\n");
    let big = "x".repeat(2000);
    let o = ctl(&a1, &["put", "k", &big], None);
    assert_eq!(o.errors, "Error: etcdserver: request is too large");
    let o = ctl(&a1, &["txn"], Some("\nput a 1\nput b 2\nput c 3\n\n\n"));
    assert_eq!(o.errors, "Error: etcdserver: too many operations in txn request");
    assert!(ctl(&a1, &["txn"], Some("\nput a 1\nput b 2\n\n\n")).success);
    child.kill().unwrap();
    child.wait().unwrap();
}
