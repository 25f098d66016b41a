//! Answers at the edges, side by side with etcd 3.4: requests over the gRPC size limit (every
//! service, etcd's one limit), unknown HTTP paths and plain-HTTP requests to gRPC paths (404,
//! never an empty 200), Compact(0) on a fresh store, and --quota-backend-bytes -1.

use cairn_api::proto::etcdserverpb::cluster_client::ClusterClient;
use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::{MemberAddRequest, PutRequest, StatusResponse};
use cairn_e2e::harness::{Kind, Member};
use std::io::{Read, Write};
use std::time::Duration;

/// StatusRequest has no fields: an unknown one (which decoders skip) makes it large.
#[derive(Clone, PartialEq, prost::Message)]
struct PaddedStatusRequest {
    #[prost(bytes = "vec", tag = "1000")]
    pad: Vec<u8>,
}

async fn padded_status(channel: tonic::transport::Channel, bytes: usize) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX);
    grpc.ready().await.map_err(|e| tonic::Status::unknown(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<PaddedStatusRequest, StatusResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/etcdserverpb.Maintenance/Status");
    grpc.unary(tonic::Request::new(PaddedStatusRequest { pad: vec![7; bytes] }), path, codec).await.map(|_| ())
}

/// (code, message) of each over-size request, in order.
async fn over_size_answers(m: &Member) -> Vec<(tonic::Code, String)> {
    let channel = m.channel().await;
    let mut out = Vec::new();
    let mut kv = KvClient::new(channel.clone()).max_encoding_message_size(usize::MAX);
    // Over the gRPC limit (--max-request-bytes + 512 KiB), then over --max-request-bytes only.
    for size in [3_000_000, 1_900_000] {
        let put = PutRequest { key: b"big".to_vec(), value: vec![b'a'; size], ..Default::default() };
        let e = kv.put(put).await.expect_err("an over-size put");
        out.push((e.code(), e.message().to_string()));
    }
    let mut cluster = ClusterClient::new(channel.clone()).max_encoding_message_size(usize::MAX);
    let add = MemberAddRequest { peer_ur_ls: vec![format!("http://{}:2380", "h".repeat(3_000_000))], is_learner: true };
    let e = cluster.member_add(add).await.expect_err("an over-size member add");
    out.push((e.code(), e.message().to_string()));
    let e = padded_status(channel.clone(), 3_000_000).await.expect_err("an over-size status");
    out.push((e.code(), e.message().to_string()));
    // Under the limit, Maintenance takes it (the unknown field is skipped).
    padded_status(channel, 1_000_000).await.expect("a 1 MB status request");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_size_requests_are_answered_as_etcd_answers_them() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Member::start(Kind::Etcd, &dir.path().join("etcd"), &[]);
    let cairn = Member::start(Kind::Cairn, &dir.path().join("cairn"), &[]);
    let want = over_size_answers(&etcd).await;
    assert_eq!(want[0].0, tonic::Code::ResourceExhausted, "{want:?}");
    assert!(want[0].1.starts_with("grpc: received message larger than max ("), "{want:?}");
    assert_eq!(over_size_answers(&cairn).await, want);
}

/// (status, body) of a raw HTTP/1.1 request.
fn http(addr: &str, request: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.replace("{addr}", addr).as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn peer_addr(m: &Member) -> String {
    m.peer_url.trim_start_matches("http://").to_string()
}

#[test]
fn unknown_paths_and_plain_http_to_grpc_paths_answer_404_as_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Member::start(Kind::Etcd, &dir.path().join("etcd"), &[]);
    let cairn = Member::start(Kind::Cairn, &dir.path().join("cairn"), &[]);
    let requests = [
        "GET /no-such-path HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        "GET /metrics/x HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        "POST /etcdserverpb.KV/Range HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nxx",
    ];
    for r in requests {
        let want = http(&etcd.client_addr, r);
        assert_eq!(want, (404, "404 page not found\n".to_string()), "etcd: {r}");
        assert_eq!(http(&cairn.client_addr, r), want, "{r}");
    }
    let r = requests[0];
    let want = http(&peer_addr(&etcd), r);
    assert_eq!(want.0, 404);
    assert_eq!(http(&peer_addr(&cairn), r), want, "peer port: {r}");
    // What is served still is.
    assert_eq!(http(&cairn.client_addr, "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").0, 200);
}

#[test]
fn compaction_at_zero_and_a_negative_quota_behave_as_on_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for kind in [Kind::Etcd, Kind::Cairn] {
        let m = Member::start(kind, &dir.path().join(format!("{kind:?}")), &["--quota-backend-bytes", "-1"]);
        let steps = [
            vec!["compaction", "0"],
            vec!["compaction", "0"],
            vec!["put", "a", "1"],
            vec!["compaction", "1"],
            vec!["compaction", "1"],
            vec!["compaction", "5"],
            vec!["endpoint", "hashkv", "-w", "json"],
        ];
        let out: Vec<String> = steps.iter().map(|s| m.ctl(s)).collect();
        outputs.push(out);
    }
    // hashkv's header carries the ids: compare its compact revision alone.
    let compact = |s: &str| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{s}: {e}"));
        v[0]["HashKV"]["compact_revision"].clone()
    };
    let (etcd, cairn) = (&outputs[0], &outputs[1]);
    assert_eq!(etcd[0].trim(), "compacted revision 0");
    assert_eq!(cairn[..6], etcd[..6]);
    assert_eq!(compact(&cairn[6]), compact(&etcd[6]));
}
