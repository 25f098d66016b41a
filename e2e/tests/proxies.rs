//! etcd's proxies, run as `cairn gateway start` and `cairn grpc-proxy start` in front of Cairn
//! members and driven by etcdctl 3.4: the gateway skips a member that is down; the gRPC proxy
//! passes every kind of call on (KV, txn, watch, lease keep-alive, cluster, auth tokens), to
//! TLS members too; and a proxy certificate with a Common Name is refused, as etcd refuses it.

use cairn_e2e::harness::{cairn_bin, etcdctl, etcdctl_until_quiet, free_port, Kind, Member};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Proxy {
    child: Child,
    log: PathBuf,
    addr: String,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// Starts `cairn <args>` and waits for `ready` in its log.
    fn start(dir: &Path, name: &str, addr: String, args: &[String], ready: &str) -> Proxy {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(cairn_bin())
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the proxy");
        let mut p = Proxy { child, log, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !p.log_text().contains(ready) {
            let exited = p.child.try_wait().unwrap();
            assert!(exited.is_none() && Instant::now() < deadline, "{name} not ready ({exited:?}):\n{}", p.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn ctl(&self, args: &[&str]) -> String {
        let o = etcdctl(&self.addr, &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), None);
        format!("{}{}", o.stdout, o.errors)
    }
}

#[test]
fn the_gateway_reaches_the_cluster_past_a_member_that_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = Member::start_cluster(Kind::Cairn, dir.path(), 3, &[]);
    let endpoints: Vec<String> = members.iter().map(|m| m.client_addr.clone()).collect();
    let addr = format!("127.0.0.1:{}", free_port());
    // etcd's suite gives the endpoints before `start`; both places work.
    let args = [
        "gateway".to_string(),
        format!("--endpoints={}", endpoints.join(",")),
        "start".into(),
        format!("--listen-addr={addr}"),
    ];
    let gateway = Proxy::start(dir.path(), "gateway", addr, &args, "ready to proxy client requests");
    assert_eq!(gateway.ctl(&["put", "foo", "bar"]).trim(), "OK");
    assert_eq!(gateway.ctl(&["get", "foo", "--print-value-only"]).trim(), "bar");

    // A follower goes down; every connection still reaches a member that is up.
    let down = members.iter().position(|m| !m.is_leader()).unwrap();
    members[down].kill9();
    for i in 0..6 {
        assert_eq!(gateway.ctl(&["put", &format!("k{i}"), "v"]).trim(), "OK", "put {i}");
    }
    let log = gateway.log_text();
    assert!(log.contains(&format!("deactivated endpoint [{}]", endpoints[down])), "{log}");
}

#[test]
fn the_grpc_proxy_passes_every_call_on() {
    let dir = tempfile::tempdir().unwrap();
    let members = Member::start_cluster(Kind::Cairn, dir.path(), 3, &[]);
    let endpoints: Vec<String> = members.iter().map(|m| m.client_addr.clone()).collect();
    let addr = format!("127.0.0.1:{}", free_port());
    let args = [
        "grpc-proxy".to_string(),
        "start".into(),
        format!("--endpoints={}", endpoints.join(",")),
        format!("--listen-addr={addr}"),
    ];
    let proxy = Proxy::start(dir.path(), "grpc-proxy", addr.clone(), &args, "started gRPC proxy");

    assert_eq!(proxy.ctl(&["put", "k", "v1"]).trim(), "OK");
    assert_eq!(proxy.ctl(&["get", "k", "--print-value-only"]).trim(), "v1");
    let txn = "value(\"k\") = \"v1\"\n\nput k v2\n\nput k nope\n\n";
    let o = etcdctl(&addr, &["txn".to_string()], Some(txn));
    assert_eq!(o.stdout.trim(), "SUCCESS\n\nOK", "{}", o.errors);
    let args = ["watch", "k", "--rev", "1"].map(String::from);
    let w = etcdctl_until_quiet(&addr, &args, None, Duration::from_secs(1));
    assert!(w.stdout.contains("PUT\nk\nv1\nPUT\nk\nv2"), "{}{}", w.stdout, w.errors);
    let granted = proxy.ctl(&["lease", "grant", "30"]);
    let id = granted.split_whitespace().nth(1).expect("lease <id> granted");
    assert!(proxy.ctl(&["lease", "keep-alive", "--once", id]).contains("keepalived with TTL(30)"));
    assert_eq!(proxy.ctl(&["member", "list"]).lines().count(), 3);

    // Auth: the token etcdctl gets goes with each later call, through the proxy.
    assert!(proxy.ctl(&["user", "add", "root:secret"]).contains("User root created"));
    assert!(proxy.ctl(&["auth", "enable"]).contains("Authentication Enabled"));
    assert!(proxy.ctl(&["put", "k", "v3"]).contains("user name is empty"));
    assert_eq!(proxy.ctl(&["--user", "root:secret", "put", "k", "v3"]).trim(), "OK");
    assert!(proxy.ctl(&["--user", "root:wrong", "get", "k"]).contains("authentication failed"));
}

#[test]
fn the_grpc_proxy_reaches_tls_members_with_a_certificate_without_common_name() {
    let dir = tempfile::tempdir().unwrap();
    let certs = cairn_e2e::certs::make(&dir.path().join("certs"));
    let (cert, key) = certs.server();
    let ca = certs.ca();
    let tls = ["--cert-file", &cert, "--key-file", &key, "--trusted-ca-file", &ca, "--client-cert-auth"];
    let member = Member::launch(Kind::Cairn, &dir.path().join("m"), &tls);
    let (client_cert, client_key) = certs.client();
    let direct = |args: &[&str]| {
        let mut all = vec!["--cacert", ca.as_str(), "--cert", client_cert.as_str(), "--key", client_key.as_str()];
        all.extend_from_slice(args);
        member.ctl(&all)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !direct(&["endpoint", "health"]).contains("is healthy") {
        assert!(Instant::now() < deadline, "the TLS member never became healthy:\n{}", member.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (named_cert, named_key) = certs.issue("proxy-named", "someone");
    let (cert, key) = certs.issue("proxy", "");
    let start = |cert: &str, key: &str| {
        let addr = format!("127.0.0.1:{}", free_port());
        let args = vec![
            "grpc-proxy".to_string(),
            "start".into(),
            format!("--endpoints=https://{}", member.client_addr),
            format!("--listen-addr={addr}"),
            format!("--cert={cert}"),
            format!("--key={key}"),
            format!("--cacert={ca}"),
        ];
        (addr, args)
    };

    let (_, args) = start(&named_cert, &named_key);
    let out = Command::new(cairn_bin()).args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("cert has non empty Common Name (someone)"), "{stderr}");

    let (addr, args) = start(&cert, &key);
    let proxy = Proxy::start(dir.path(), "grpc-proxy", addr, &args, "started gRPC proxy");
    assert_eq!(proxy.ctl(&["put", "k", "v"]).trim(), "OK");
    assert_eq!(direct(&["get", "k", "--print-value-only"]).trim(), "v");
}

#[test]
fn the_proxies_refuse_what_they_cannot_do_as_asked() {
    let fails = |args: &[&str], needle: &str| {
        let out = Command::new(cairn_bin()).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(needle), "cairn {args:?}: expected {needle:?} in:\n{stderr}");
    };
    let addr = format!("127.0.0.1:{}", free_port());
    fails(
        &["grpc-proxy", "start", "--namespace=/tenant/", &format!("--listen-addr={addr}")],
        "--namespace is not supported",
    );
    fails(&["gateway", "start", "--endpoints=no-port", &format!("--listen-addr={addr}")], "error parsing endpoint");
    fails(
        &["gateway", &format!("--endpoints={addr}"), "start", &format!("--listen-addr={addr}")],
        "should not be the gateway listen addr",
    );
}
