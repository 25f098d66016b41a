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

/// etcd's local-cluster Procfile, three members, each configured either by its flags or by
/// the same settings as ETCD_* variables alone: both start, and form the same cluster (same
/// member ids); a flag given both ways is refused with etcd's message.
#[test]
fn the_procfile_runs_by_flags_and_by_etcd_variables_alike() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let cluster: Vec<String> =
        ports.iter().enumerate().map(|(i, (_, p))| format!("infra{}=http://127.0.0.1:{p}", i + 1)).collect();
    let settings = |i: usize, run: &str| -> Vec<(String, String)> {
        let (c, p) = ports[i];
        [
            ("name", format!("infra{}", i + 1)),
            ("data-dir", dir.path().join(format!("{run}{i}")).display().to_string()),
            ("listen-client-urls", format!("http://127.0.0.1:{c}")),
            ("advertise-client-urls", format!("http://127.0.0.1:{c}")),
            ("listen-peer-urls", format!("http://127.0.0.1:{p}")),
            ("initial-advertise-peer-urls", format!("http://127.0.0.1:{p}")),
            ("initial-cluster-token", "etcd-cluster-1".into()),
            ("initial-cluster", cluster.join(",")),
            ("initial-cluster-state", "new".into()),
            ("enable-pprof", "true".into()),
            ("logger", "zap".into()),
            ("log-outputs", "stderr".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    let mut ids = Vec::new();
    for run in ["flags", "env"] {
        let mut children = Vec::new();
        for i in 0..3 {
            let mut cmd = Command::new(cairn_bin());
            for (k, v) in settings(i, run) {
                if run == "flags" {
                    cmd.arg(format!("--{k}={v}"));
                } else {
                    cmd.env(format!("ETCD_{}", k.to_uppercase().replace('-', "_")), v);
                }
            }
            let log = std::fs::File::create(dir.path().join(format!("{run}{i}.log"))).unwrap();
            children.push(cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap());
        }
        let endpoints: Vec<String> = ports.iter().map(|(c, _)| format!("127.0.0.1:{c}")).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !endpoints.iter().all(|e| matches!(http_get(e, "/health"), Some((200, _)))) {
            assert!(Instant::now() < deadline, "{run}: the cluster never became healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
        let list = etcdctl(&endpoints[0], &["member".into(), "list".into()], None).stdout;
        let mut members: Vec<&str> = list.lines().collect();
        members.sort_unstable();
        assert_eq!(members.len(), 3, "{run}: {list}");
        ids.push(members.join("\n"));
        // --enable-pprof serves /debug/pprof/; --logger zap writes etcd's JSON lines.
        assert!(matches!(http_get(&endpoints[0], "/debug/pprof/heap"), Some((200, b)) if b.contains("in_use_bytes")));
        let too_long = http_get(&endpoints[0], "/debug/pprof/profile?seconds=4000");
        assert!(matches!(&too_long, Some((400, b)) if b.contains("exceeds the server's limit")), "{too_long:?}");
        if run == "flags" {
            cpu_profile_opens_in_go_tool_pprof(&endpoints[1], dir.path());
        }
        let log = std::fs::read_to_string(dir.path().join(format!("{run}0.log"))).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(log.lines().next().unwrap_or_default()).expect("a zap line");
        assert!(first["level"].is_string() && first["ts"].is_string() && first["msg"].is_string(), "{log}");
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    assert_eq!(ids[1], ids[0], "the variables made another cluster than the flags");
    let out = Command::new(cairn_bin()).arg("--name=y").env("ETCD_NAME", "x").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains(
                "conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding command-line flag"
            ),
        "{stderr}"
    );
}

#[test]
fn etcd_flags_without_meaning_here_are_reported_and_unsafe_ones_refused() {
    fails_with(&["--enable-v2"], "--enable-v2: Cairn does not serve the v2 API");
    fails_with(&["--cors", "https://example.com"], "--cors: only \"*\"");
    fails_with(&["--discovery", "https://discovery.etcd.io/abc"], "--discovery and --discovery-srv are not supported");
    fails_with(&["--wal-dir", "/tmp/wal"], "--wal-dir is not supported");
    fails_with(&["--log-outputs", "stderr,stdout"], "one output");
}

/// --listen-metrics-urls serves /metrics and /health on its own port, and nothing else there,
/// on etcd and on cairn alike (kubeadm's static pods probe etcd this way).
#[test]
fn listen_metrics_urls_serve_metrics_and_health_only() {
    use cairn_e2e::harness::{Kind, Member};
    let dir = tempfile::tempdir().unwrap();
    for kind in [Kind::Etcd, Kind::Cairn] {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let _m = Member::start(kind, &dir.path().join(format!("{kind:?}")), &["--listen-metrics-urls", &url]);
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let health = loop {
            match http_get(&addr, "/health") {
                Some(h) => break h,
                None => assert!(Instant::now() < deadline, "{kind:?}: nothing on {url}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(health, (200, "{\"health\":\"true\"}".to_string()), "{kind:?}");
        let (status, body) = http_get(&addr, "/metrics").unwrap();
        assert!(status == 200 && body.contains("etcd_server_has_leader 1"), "{kind:?}: {status}");
        assert_eq!(
            http_get(&addr, "/v3/kv/range").map(|(s, _)| s),
            Some(404),
            "{kind:?}: the gateway is not served there"
        );
    }
}

/// etcd's YAML configuration file: its keys are the flags (TLS in transport-security maps),
/// and it replaces the other flags and the environment, as in etcd.
#[test]
fn a_config_file_configures_the_member_and_replaces_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = (free_port(), free_port());
    let file = dir.path().join("etcd.conf.yml");
    let data = dir.path().join("data");
    std::fs::write(
        &file,
        format!(
            "name: 'infra9'\ndata-dir: {}\nlisten-client-urls: http://127.0.0.1:{c}\nadvertise-client-urls: http://127.0.0.1:{c}\n\
             listen-peer-urls: http://127.0.0.1:{p}\ninitial-advertise-peer-urls: http://127.0.0.1:{p}\n\
             initial-cluster: infra9=http://127.0.0.1:{p}\nclient-transport-security:\n  client-cert-auth: false\n\
             log-outputs: [stderr]\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(cairn_bin())
        .args(["--config-file", file.to_str().unwrap(), "--name", "ignored"])
        .env("ETCD_SNAPSHOT_COUNT", "not-a-number")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{c}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http_get(&addr, "/health"), Some((200, _))) {
        assert!(Instant::now() < deadline, "the member of the config file never became healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    let list = etcdctl(&addr, &["member".into(), "list".into()], None).stdout;
    assert!(list.contains(", started, infra9, "), "{list}");
    assert!(data.join("member").exists(), "the data dir is the file's");
    let _ = child.kill();
    let _ = child.wait();
    fails_with(&["--config-file", "/nonexistent/etcd.yml"], "--config-file /nonexistent/etcd.yml");
}

/// GET /debug/pprof/profile?seconds=1: a CPU profile in pprof's format, which Go's own
/// `go tool pprof` reads.
fn cpu_profile_opens_in_go_tool_pprof(endpoint: &str, dir: &std::path::Path) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(endpoint).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET /debug/pprof/profile?seconds=1 HTTP/1.0\r\nHost: {endpoint}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer") + 4;
    assert!(raw.starts_with(b"HTTP/1.0 200"), "{}", String::from_utf8_lossy(&raw[..split]));
    let file = dir.join("cpu.pprof");
    std::fs::write(&file, &raw[split..]).unwrap();
    let go = cairn_e2e::harness::require_tool("go");
    let out = Command::new(go).args(["tool", "pprof", "-raw"]).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("PeriodType: cpu"), "{text}{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn pprof_is_off_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let m = cairn_e2e::harness::Member::start(cairn_e2e::harness::Kind::Cairn, dir.path(), &[]);
    assert_eq!(http_get(&m.client_addr, "/debug/pprof/").map(|(s, _)| s), Some(404));
}
