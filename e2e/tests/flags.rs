//! etcd's flags: defaults, and clear failures for unknown or contradictory ones.

use cairn_e2e::harness::{cairn_bin, etcdctl, free_port, http_get};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn fails_with(args: &[&str], needle: &str) {
    let out = Command::new(cairn_bin()).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "cairn {args:?} should fail");
    assert!(
        stderr.contains(needle),
        "cairn {args:?}: expected {needle:?} in:\n{stderr}"
    );
}

#[test]
fn unknown_and_contradictory_flags_fail_at_start() {
    fails_with(&["--bogus-flag"], "unexpected argument '--bogus-flag'");
    fails_with(
        &["--heartbeat-interval", "100", "--election-timeout", "400"],
        "should be at least as 5 times as --heartbeat-interval",
    );
    fails_with(
        &[
            "--name",
            "x",
            "--initial-cluster",
            "y=http://127.0.0.1:2380",
        ],
        "couldn't find local name \"x\"",
    );
    fails_with(
        &["--initial-advertise-peer-urls", "http://127.0.0.1:2390", "--initial-cluster", "default=http://127.0.0.1:2380"],
        "--initial-cluster has default=http://127.0.0.1:2380 but missing from --initial-advertise-peer-urls",
    );
    fails_with(
        &["--listen-client-urls", "127.0.0.1:2379"],
        "--listen-client-urls",
    );
    fails_with(
        &["--listen-client-urls", "http://127.0.0.1:2379/v3"],
        "URL must not contain a path",
    );
    fails_with(
        &["--initial-cluster-state", "maybe"],
        "invalid value 'maybe'",
    );
    fails_with(
        &["--snapshot-count=-1"],
        "invalid value '-1' for '--snapshot-count",
    );
}

#[test]
fn default_data_dir_is_name_dot_cairn_and_restart_ignores_bootstrap_flags() {
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://localhost:{port}");
    let run = |token: &str| {
        Command::new(cairn_bin())
            .current_dir(cwd.path())
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
                "--initial-cluster-token",
                token,
            ])
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
        let o = etcdctl(
            &addr,
            &[
                "put".into(),
                "k".into(),
                "v".into(),
                "-w".into(),
                "json".into(),
            ],
            None,
        );
        assert!(o.success, "{}", o.errors);
        let v: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
        v["header"]["member_id"].as_u64().unwrap()
    };
    let mut first = run("etcd-cluster");
    wait_healthy();
    let id = member_id();
    assert!(
        cwd.path().join("default.cairn/member/wal").is_dir(),
        "data dir is not ./default.cairn"
    );
    // SAFETY: plain signal to a child we own.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    assert!(
        first.wait().unwrap().success(),
        "SIGTERM should stop cairn cleanly"
    );
    let mut second = run("another-token");
    wait_healthy();
    assert_eq!(
        member_id(),
        id,
        "a restart must keep its identity whatever the bootstrap flags say"
    );
    let o = etcdctl(
        &addr,
        &["get".into(), "k".into(), "-w".into(), "json".into()],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(v["kvs"][0]["version"], 2);
    second.kill().unwrap();
    second.wait().unwrap();
}
