//! Auth as etcd 3.4 has it: every etcdctl user, role and permission command and every request
//! checked against a user's permissions, side by side with etcd (error strings included);
//! simple tokens that expire; JWTs signed by one member and accepted by the others; users and
//! roles kept through a snapshot restore.

use cairn_api::proto::etcdserverpb::auth_client::AuthClient;
use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::watch_client::WatchClient;
use cairn_api::proto::etcdserverpb::watch_request::RequestUnion;
use cairn_api::proto::etcdserverpb::{
    AuthenticateRequest, PutRequest, RangeRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use cairn_e2e::harness::{cairn_bin, Kind, Member};
use cairn_e2e::script::assert_same_as_etcd;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

#[test]
fn auth_commands_answer_as_etcd_does() {
    assert_same_as_etcd(include_str!("../scripts/auth.txt"));
}

/// Makes root (with the root role) and alice (reading `/app/`), and enables auth.
fn enable_auth(m: &Member) {
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["role", "add", "root"],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "alice:alicepw"],
        &["role", "add", "reader"],
        &["role", "grant-permission", "reader", "read", "/app/", "--prefix=true"],
        &["user", "grant-role", "alice", "reader"],
        &["put", "/app/a", "1"],
        &["put", "/secret", "s"],
    ] {
        let out = m.ctl(args);
        assert!(!out.contains("Error"), "{args:?}: {out}");
    }
    assert_eq!(m.ctl(&["auth", "enable"]).trim(), "Authentication Enabled");
}

async fn token(ch: &Channel, name: &str, password: &str) -> Result<String, tonic::Status> {
    let req = AuthenticateRequest { name: name.into(), password: password.into() };
    Ok(AuthClient::new(ch.clone()).authenticate(req).await?.into_inner().token)
}

fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert("token", token.parse().expect("a token is ASCII"));
    req
}

async fn get(ch: &Channel, key: &str, token: &str) -> Result<Vec<String>, tonic::Status> {
    let req = with_token(RangeRequest { key: key.into(), ..Default::default() }, token);
    let kvs = KvClient::new(ch.clone()).range(req).await?.into_inner().kvs;
    Ok(kvs.into_iter().map(|kv| String::from_utf8_lossy(&kv.value).into_owned()).collect())
}

async fn put(ch: &Channel, key: &str, value: &str, token: &str) -> Result<(), tonic::Status> {
    let req = with_token(PutRequest { key: key.into(), value: value.into(), ..Default::default() }, token);
    KvClient::new(ch.clone()).put(req).await.map(|_| ())
}

/// A simple token unused for longer than --auth-token-ttl is refused, on etcd and on cairn
/// alike; a new one works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_simple_token_expires_after_its_ttl() {
    for kind in [Kind::Etcd, Kind::Cairn] {
        let dir = tempfile::tempdir().unwrap();
        let m = tokio::task::block_in_place(|| {
            let m = Member::start(kind, &dir.path().join("m"), &["--auth-token-ttl", "2"]);
            enable_auth(&m);
            m
        });
        let ch = m.channel().await;
        let t = token(&ch, "alice", "alicepw").await.unwrap();
        assert_eq!(get(&ch, "/app/a", &t).await.unwrap(), ["1"], "{kind:?}");
        let denied = get(&ch, "/secret", &t).await.unwrap_err();
        assert_eq!(denied.message(), "etcdserver: permission denied", "{kind:?}");
        // Waiting out the TTL is the point here: nothing to poll without using the token.
        // etcd sweeps expired tokens once a second.
        tokio::time::sleep(Duration::from_millis(4500)).await;
        let expired = get(&ch, "/app/a", &t).await.unwrap_err();
        assert_eq!(expired.code(), tonic::Code::Unauthenticated, "{kind:?}: {expired:?}");
        assert_eq!(expired.message(), "etcdserver: invalid auth token", "{kind:?}");
        let t = token(&ch, "alice", "alicepw").await.unwrap();
        assert_eq!(get(&ch, "/app/a", &t).await.unwrap(), ["1"], "{kind:?}");
        let wrong = token(&ch, "alice", "nope").await.unwrap_err();
        assert_eq!(wrong.message(), "etcdserver: authentication failed, invalid user ID or password");
    }
}

fn ec_keys(dir: &std::path::Path) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let (private, public) = (dir.join("jwt.key"), dir.join("jwt.pub"));
    std::fs::write(&private, key.serialize_pem()).unwrap();
    std::fs::write(&public, key.public_key_pem()).unwrap();
    format!("jwt,pub-key={},priv-key={},sign-method=ES256,ttl=10m", public.display(), private.display())
}

/// A JWT is signed by the member that authenticates and checked by every member with the
/// shared key: a token from one member works on the others; a tampered one does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_from_one_member_is_accepted_by_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let flag = ec_keys(dir.path());
    let ms = tokio::task::block_in_place(|| {
        let ms = Member::start_cluster(Kind::Cairn, dir.path(), 3, &["--auth-token", &flag]);
        enable_auth(&ms[0]);
        ms
    });
    let chs = [ms[0].channel().await, ms[1].channel().await, ms[2].channel().await];
    let root = token(&chs[0], "root", "rootpw").await.unwrap();
    assert_eq!(root.split('.').count(), 3, "not a JWT: {root}");
    put(&chs[1], "/app/b", "2", &root).await.unwrap();
    let alice = token(&chs[2], "alice", "alicepw").await.unwrap();
    // A follower may serve the read before it applied the put: poll.
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&chs[0], "/app/b", &alice).await.unwrap() != ["2"] {
        assert!(Instant::now() < deadline, "the put never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let denied = put(&chs[1], "/app/c", "3", &alice).await.unwrap_err();
    assert_eq!(denied.message(), "etcdserver: permission denied");
    // The signature covers the claims: a token naming root with alice's signature is refused.
    let (a, r): (Vec<&str>, Vec<&str>) = (alice.split('.').collect(), root.split('.').collect());
    let forged = format!("{}.{}.{}", a[0], r[1], a[2]);
    let refused = get(&chs[1], "/secret", &forged).await.unwrap_err();
    assert_eq!(refused.message(), "etcdserver: invalid auth token");
}

/// Users, roles, permissions and the enabled flag travel in a snapshot: the restored member
/// enforces them as the original did.
#[test]
fn a_restored_snapshot_keeps_users_roles_and_auth() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, &dir.path().join("m"), &[]);
    enable_auth(&m);
    let file = dir.path().join("snap.db").display().to_string();
    let saved = m.ctl(&["--user", "root:rootpw", "snapshot", "save", &file]);
    assert!(saved.contains("Snapshot saved"), "{saved}");
    assert!(m.ctl(&["--user", "alice:alicepw", "snapshot", "save", "x.db"]).contains("permission denied"));
    drop(m);
    let restored = Member::plan_cluster(Kind::Cairn, &dir.path().join("r"), &["127.0.0.1"], &[]);
    let r = &restored[0];
    let out = std::process::Command::new(cairn_bin())
        .args(["snapshot", "restore", &file, "--name", &r.name(), "--data-dir"])
        .arg(&r.data_dir)
        .args(["--initial-cluster", &r.initial_cluster(), "--initial-advertise-peer-urls", &r.peer_url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut restored = restored;
    Member::start_all(&mut restored);
    let r = &restored[0];
    assert!(r.ctl(&["get", "/app/a"]).contains("user name is empty"), "auth is off after the restore");
    assert_eq!(r.ctl(&["--user", "alice:alicepw", "get", "/app/a", "--print-value-only"]).trim(), "1");
    assert!(r.ctl(&["--user", "alice:alicepw", "get", "/secret"]).contains("permission denied"));
    assert!(r.ctl(&["--user", "root:rootpw", "role", "get", "reader"]).contains("[/app/, /app0) (prefix /app/)"));
}

fn create(key: &str, end: &str) -> WatchRequest {
    let c = WatchCreateRequest { key: key.into(), range_end: end.into(), ..Default::default() };
    WatchRequest { request_union: Some(RequestUnion::CreateRequest(c)) }
}

/// What a watch creation answers: (created, canceled, cancel reason).
fn outcome(r: &WatchResponse) -> (bool, bool, String) {
    (r.created, r.canceled, r.cancel_reason.clone())
}

/// A user whose role reads `/app/` only: a watch on `/app/` sees root's writes; one on a key
/// or a range outside is refused as etcd refuses it (same answer, same reason).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_limited_to_a_prefix_cannot_watch_outside_it() {
    let mut answers = Vec::new();
    for kind in [Kind::Etcd, Kind::Cairn] {
        let dir = tempfile::tempdir().unwrap();
        let m = tokio::task::block_in_place(|| {
            let m = Member::start(kind, &dir.path().join("m"), &[]);
            enable_auth(&m);
            m
        });
        let ch = m.channel().await;
        let alice = token(&ch, "alice", "alicepw").await.unwrap();
        let root = token(&ch, "root", "rootpw").await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let watches = [("/secret", ""), ("/a", "/z"), ("/app/", "/app0")];
        // etcd sends the response headers with its first answer: ask before awaiting them.
        for (key, end) in watches {
            tx.send(create(key, end)).await.unwrap();
        }
        let req = with_token(tokio_stream::wrappers::ReceiverStream::new(rx), &alice);
        let mut stream = WatchClient::new(ch.clone()).watch(req).await.unwrap().into_inner();
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(10), stream.message()).await.expect("an answer").unwrap().unwrap()
        };
        let mut seen = Vec::new();
        for _ in watches {
            seen.push(outcome(&next().await));
        }
        put(&ch, "/app/new", "x", &root).await.unwrap();
        let event = next().await;
        assert_eq!(event.events.len(), 1, "{kind:?}: {event:?}");
        assert_eq!(event.events[0].kv.as_ref().unwrap().key, b"/app/new", "{kind:?}");
        assert_eq!(seen[2], (true, false, String::new()), "{kind:?}: the watch inside /app/ is refused");
        assert!(seen[0].1 && seen[1].1, "{kind:?}: a watch outside /app/ is not refused: {seen:?}");
        answers.push(seen);
    }
    assert_eq!(answers[1], answers[0], "cairn answers otherwise than etcd");
}
