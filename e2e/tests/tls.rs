//! TLS with certificates made in the test (a CA, a server pair, a client pair, and a client of
//! another CA): client mutual TLS accepted and refused, side by side with etcd 3.4 and the
//! same certificates; /health over https; three members on peer mutual TLS that elect,
//! replicate, take a learner and survive a SIGKILL; a certificate replaced on disk served to
//! the next connection without a restart; bad TLS flags refused with the flag and the file.

use cairn_e2e::certs::{self, Certs};
use cairn_e2e::harness::{etcdctl, free_port, Kind, Member};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// etcdctl over TLS with the given client pair (or none).
fn ctl(endpoint: &str, certs: &Certs, client: Option<(String, String)>, args: &[&str]) -> (bool, String) {
    let mut all: Vec<String> = vec!["--cacert".into(), certs.ca(), "--dial-timeout=3s".into()];
    if let Some((cert, key)) = client {
        all.extend(["--cert".into(), cert, "--key".into(), key]);
    }
    all.extend(args.iter().map(|s| s.to_string()));
    let o = etcdctl(endpoint, &all, None);
    (o.success, format!("{}{}", o.stdout, o.errors))
}

/// A single member serving clients over https with client certificates required.
fn start_mtls(kind: Kind, dir: &std::path::Path, certs: &Certs) -> Member {
    let (cert, key) = certs.server();
    let ca = certs.ca();
    let flags = ["--cert-file", &cert, "--key-file", &key, "--trusted-ca-file", &ca, "--client-cert-auth"];
    let m = Member::launch(kind, dir, &flags);
    let endpoint = format!("https://{}", m.client_addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ctl(&endpoint, certs, Some(certs.client()), &["endpoint", "health"]).0 {
        assert!(Instant::now() < deadline, "{kind:?} never became healthy over TLS:\n{}", m.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    m
}

#[test]
fn client_mutual_tls_accepts_the_trusted_ca_only_as_etcd_does() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs::make(&dir.path().join("certs"));
    for kind in [Kind::Etcd, Kind::Cairn] {
        let m = start_mtls(kind, &dir.path().join(format!("{kind:?}")), &certs);
        let endpoint = format!("https://{}", m.client_addr);
        let (ok, out) = ctl(&endpoint, &certs, Some(certs.client()), &["put", "k", "v"]);
        assert!(ok && out.trim() == "OK", "{kind:?}: {out}");
        let (ok, out) = ctl(&endpoint, &certs, Some(certs.client()), &["get", "k", "--print-value-only"]);
        assert!(ok && out.trim() == "v", "{kind:?}: {out}");
        // Without a certificate, or with one of another CA: refused at the handshake.
        let (ok, out) = ctl(&endpoint, &certs, None, &["get", "k"]);
        assert!(!ok, "{kind:?} served a client without a certificate: {out}");
        let (ok, out) = ctl(&endpoint, &certs, Some(certs.stranger()), &["get", "k"]);
        assert!(!ok, "{kind:?} served a client of another CA: {out}");
    }
}

/// An HTTP/1.1 GET over TLS (trusting `ca`, presenting `client` if given): status and body.
async fn https_get(
    addr: &str,
    path: &str,
    certs: &Certs,
    client: Option<(String, String)>,
) -> Result<(u16, String), String> {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(certs.ca()).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert).unwrap().map(|c| c.unwrap()).collect();
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls =
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| e.to_string())?;
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or(text.clone())?;
    Ok((status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_version_and_metrics_are_served_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs::make(&dir.path().join("certs"));
    let m = tokio::task::block_in_place(|| start_mtls(Kind::Cairn, &dir.path().join("m"), &certs));
    let (status, body) = https_get(&m.client_addr, "/health", &certs, Some(certs.client())).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "{\"health\":\"true\"}"));
    let (status, body) = https_get(&m.client_addr, "/metrics", &certs, Some(certs.client())).await.unwrap();
    assert!(status == 200 && body.contains("etcd_server_has_leader 1"), "{status}: {body}");
    assert!(https_get(&m.client_addr, "/health", &certs, None).await.is_err(), "no client certificate, and served");
}

#[test]
fn three_members_on_peer_mutual_tls_elect_replicate_take_a_learner_and_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs::make(&dir.path().join("certs"));
    let (cert, key) = certs.server();
    let ca = certs.ca();
    let peer = [
        "--peer-cert-file",
        cert.as_str(),
        "--peer-key-file",
        key.as_str(),
        "--peer-trusted-ca-file",
        ca.as_str(),
        "--peer-client-cert-auth",
    ];
    let mut ms = Member::start_cluster(Kind::Cairn, dir.path(), 3, &peer);
    assert!(ms[0].peer_url.starts_with("https://"), "{}", ms[0].peer_url);
    let list = ms[0].ctl(&["member", "list"]);
    assert_eq!(list.matches("https://").count(), 3, "{list}");
    for (i, m) in ms.iter().enumerate() {
        assert_eq!(m.ctl(&["put", &format!("k{i}"), "v"]).trim(), "OK", "{}", m.log_tail());
    }
    // A learner joins over peer TLS, catches up, and is promoted.
    let ports = (free_port(), free_port());
    let peer_url = format!("--peer-urls=https://127.0.0.1:{}", ports.1);
    // Refused ("unhealthy cluster") until every voter has been connected a while, as on etcd.
    let deadline = Instant::now() + Duration::from_secs(30);
    let added = loop {
        let out = ms[0].ctl(&["member", "add", "m3", "--learner", &peer_url]);
        if !out.contains("unhealthy cluster") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(added.contains("added"), "{added}");
    // "Member <id> added to cluster <id>": ids are printed without leading zeros.
    let id = added.split_whitespace().skip_while(|w| *w != "Member").nth(1).expect("the new member's id");
    let learner = Member::join_with(Kind::Cairn, dir.path(), "m3", ports, &ms, &peer);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = ms[0].ctl(&["member", "promote", id]);
        if out.contains("promoted") {
            break;
        }
        assert!(Instant::now() < deadline, "never promoted: {out}\n{}", learner.log_tail());
        std::thread::sleep(Duration::from_millis(200));
    }
    // A member killed and restarted catches up over TLS.
    ms[1].kill9();
    // Killing the leader costs an election; the write goes through once there is a new one.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = ms[0].ctl(&["put", "after-kill", "v"]);
        if out.trim() == "OK" {
            break;
        }
        let transient = ["request timed out", "leader changed", "no leader"].iter().any(|e| out.contains(e));
        assert!(transient && Instant::now() < deadline, "{out}\n{}", ms[0].log_tail());
    }
    ms[1].restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ms[1].ctl(&["get", "after-kill", "--print-value-only", "--consistency=s"]).trim() != "v" {
        assert!(Instant::now() < deadline, "the restarted member never caught up:\n{}", ms[1].log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    let keys = learner.ctl(&["get", "k", "--prefix", "--keys-only", "--consistency=s"]);
    assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), 3, "{keys}");
    drop(learner);
}

/// The common name of the certificate a server presents to a new connection.
async fn served_cn(addr: &str, certs: &Certs) -> String {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(certs.ca()).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).unwrap();
    let cn = parsed.subject().iter_common_name().next().unwrap().as_str().unwrap().to_string();
    cn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_on_disk_is_served_to_the_next_connection() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs::make(&dir.path().join("certs"));
    let (cert, key) = certs.server();
    let m = tokio::task::block_in_place(|| {
        let mut m = Member::launch(Kind::Cairn, &dir.path().join("m"), &["--cert-file", &cert, "--key-file", &key]);
        let endpoint = format!("https://{}", m.client_addr);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ctl(&endpoint, &certs, None, &["endpoint", "health"]).0 {
            assert!(m.exit_status(Duration::from_millis(100)).is_none(), "exited:\n{}", m.log_tail());
            assert!(Instant::now() < deadline, "never healthy:\n{}", m.log_tail());
        }
        m
    });
    assert_eq!(served_cn(&m.client_addr, &certs).await, "server");
    certs.reissue_server("rotated");
    assert_eq!(served_cn(&m.client_addr, &certs).await, "rotated", "{}", m.log_tail());
    // A broken file (a rotation caught half-written) keeps the last good pair in use.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    assert_eq!(served_cn(&m.client_addr, &certs).await, "rotated");
    assert!(m.log_text().contains("keeping the last good certificate"), "{}", m.log_tail());
    // Clients kept working throughout.
    let endpoint = format!("https://{}", m.client_addr);
    let (ok, out) = ctl(&endpoint, &certs, None, &["put", "k", "v"]);
    assert!(ok, "{out}");
}

/// Runs cairn with `flags` expecting it to refuse to start: its message.
fn refused(dir: &std::path::Path, flags: &[&str]) -> String {
    let mut m = Member::launch(Kind::Cairn, dir, flags);
    let status = m.exit_status(Duration::from_secs(30)).unwrap_or_else(|| panic!("still running:\n{}", m.log_tail()));
    assert!(!status.success());
    let log = m.log_text();
    assert!(!log.contains("panicked"), "{log}");
    log
}

#[test]
fn bad_tls_flags_fail_the_start_naming_the_flag_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs::make(&dir.path().join("certs"));
    let (cert, key) = certs.server();
    let (other_cert, _) = certs.client();
    let missing = dir.path().join("missing.crt").display().to_string();
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (vec!["--cert-file", &missing, "--key-file", &key], vec!["--cert-file".into(), missing.clone()]),
        (vec!["--cert-file", &other_cert, "--key-file", &key], vec!["--key-file".into(), "does not go with".into()]),
        (vec!["--client-cert-auth", "--cert-file", &cert, "--key-file", &key], vec!["--trusted-ca-file".into()]),
        (vec!["--cert-file", &cert], vec!["--key-file".into()]),
    ];
    for (i, (flags, wants)) in cases.into_iter().enumerate() {
        let log = refused(&dir.path().join(format!("case{i}")), &flags);
        for want in wants {
            assert!(log.contains(&want), "case {i}: {want:?} not in:\n{log}");
        }
    }
    // https URLs without certificates (the harness makes its URLs https with a cert flag, so
    // this one is spelled out).
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let out = std::process::Command::new(cairn_e2e::harness::cairn_bin())
        .args(["--data-dir", &dir.path().join("https").display().to_string(), "--listen-client-urls", &url])
        .args(["--advertise-client-urls", &url])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("must be provided for client url"), "{err}");
}

/// `cairn snapshot save` and `cairn bench` take etcdctl's --cacert/--cert/--key/--user: the
/// certificate's CN is the user when no --user is given (root here), a user is held to its
/// permissions, and a wrong password is refused.
#[test]
fn cairns_tools_take_etcdctls_tls_and_user_flags() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs::make(&dir.path().join("certs"));
    let m = start_mtls(Kind::Cairn, &dir.path().join("m"), &certs);
    let endpoint = format!("https://{}", m.client_addr);
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["role", "add", "root"],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "alice:alicepw"],
        &["auth", "enable"],
    ] {
        let (ok, out) = ctl(&endpoint, &certs, Some(certs.client()), args);
        assert!(ok, "{args:?}: {out}");
    }
    let (cert, key) = certs.client();
    let tool = |args: &[&str], user: Option<&str>| {
        let mut cmd = std::process::Command::new(cairn_e2e::harness::cairn_bin());
        cmd.args(args).args(["--endpoints", &m.client_addr, "--cacert", &certs.ca(), "--cert", &cert, "--key", &key]);
        if let Some(u) = user {
            cmd.args(["--user", u]);
        }
        let out = cmd.output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let file = dir.path().join("s.db").display().to_string();
    let (ok, out) = tool(&["snapshot", "save", &file], None);
    assert!(ok && out.contains("Snapshot saved"), "as the certificate's CN (root): {out}");
    let (ok, out) = tool(&["snapshot", "save", &file], Some("alice:alicepw"));
    assert!(!ok && out.contains("auth: permission denied"), "{out}");
    let (ok, out) = tool(&["snapshot", "save", &file], Some("alice:wrong"));
    assert!(!ok && out.contains("etcdserver: authentication failed, invalid user ID or password"), "{out}");
    let (ok, out) = tool(&["bench", "put", "--total", "200", "--clients", "4", "--json"], Some("root:rootpw"));
    assert!(ok && out.contains("\"errors\":0"), "{out}");
    let (ok, out) = tool(&["bench", "put", "--total", "20", "--json"], Some("alice:alicepw"));
    assert!(ok && out.contains("\"errors\":20"), "alice may not write there: {out}");
    let (_, out) = ctl(&endpoint, &certs, Some(certs.client()), &["get", "00000199", "--print-value-only"]);
    assert_eq!(out.trim(), "vvvvvvvv", "root's last put");
}
