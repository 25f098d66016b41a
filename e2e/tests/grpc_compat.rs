//! KV requests etcdctl 3.4 cannot express (count_only, min/max revision filters, nested txns,
//! range and lease compares, size limits), sent by a gRPC client to etcd 3.4 and to cairn:
//! responses must be equal once member and cluster ids are cleared.

use cairn_api::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::request_op::Request;
use cairn_api::proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use cairn_e2e::harness::{Kind, Member};
use tonic::transport::Channel;

#[derive(Clone, Debug)]
enum Op {
    Put(PutRequest),
    Range(RangeRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactionRequest),
}

fn put(k: &str, v: &str) -> Op {
    Op::Put(PutRequest { key: k.into(), value: v.into(), ..Default::default() })
}

fn range(k: &str, end: &str) -> RangeRequest {
    RangeRequest { key: k.into(), range_end: end.into(), ..Default::default() }
}

fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest { key: k.into(), value: v.into(), ..Default::default() })),
    }
}

fn op_range(r: RangeRequest) -> RequestOp {
    RequestOp { request: Some(Request::RequestRange(r)) }
}

fn op_txn(t: TxnRequest) -> RequestOp {
    RequestOp { request: Some(Request::RequestTxn(t)) }
}

fn txn(compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>) -> Op {
    Op::Txn(TxnRequest { compare, success, failure })
}

fn cmp(key: &str, end: &str, target: CompareTarget, result: CompareResult, u: TargetUnion) -> Compare {
    Compare {
        key: key.into(),
        range_end: end.into(),
        target: target as i32,
        result: result as i32,
        target_union: Some(u),
    }
}

fn clear_ids(s: String) -> String {
    regex::Regex::new(r"(cluster_id|member_id): \d+").unwrap().replace_all(&s, "$1: _").into_owned()
}

async fn send(c: &mut KvClient<Channel>, op: &Op) -> String {
    let r = match op.clone() {
        Op::Put(r) => c.put(r).await.map(|r| format!("{:?}", r.into_inner())),
        Op::Range(r) => c.range(r).await.map(|r| format!("{:?}", r.into_inner())),
        Op::Delete(r) => c.delete_range(r).await.map(|r| format!("{:?}", r.into_inner())),
        Op::Txn(r) => c.txn(r).await.map(|r| format!("{:?}", r.into_inner())),
        Op::Compact(r) => c.compact(r).await.map(|r| format!("{:?}", r.into_inner())),
    };
    match r {
        Ok(s) => clear_ids(s),
        Err(st) => format!("error {:?}: {}", st.code(), st.message()),
    }
}

fn script() -> Vec<Op> {
    let mut ops = vec![
        put("a", "1"),
        put("b", "2"),
        put("c", "3"),
        put("a", "10"),
        put("d", "4"),
        put("b", "20"),
        put("e", "5"),
        put("c", "30"),
    ];
    let all = || range("\0", "\0");
    ops.push(Op::Range(RangeRequest { count_only: true, ..all() }));
    ops.push(Op::Range(RangeRequest { count_only: true, limit: 2, ..range("a", "d") }));
    ops.push(Op::Range(RangeRequest { count_only: true, revision: 4, ..all() }));
    ops.push(Op::Range(RangeRequest { keys_only: true, limit: 3, ..all() }));
    ops.push(Op::Range(RangeRequest { min_mod_revision: 5, ..all() }));
    ops.push(Op::Range(RangeRequest { max_mod_revision: 5, ..all() }));
    ops.push(Op::Range(RangeRequest { min_create_revision: 3, max_create_revision: 6, ..all() }));
    ops.push(Op::Range(RangeRequest { min_mod_revision: 4, limit: 2, ..all() }));
    ops.push(Op::Range(RangeRequest { min_mod_revision: 4, limit: 2, sort_order: 2, sort_target: 3, ..all() }));
    ops.push(Op::Range(RangeRequest { max_create_revision: 4, revision: 6, ..all() }));
    ops.push(Op::Range(RangeRequest { sort_target: 4, limit: 2, ..all() }));
    ops.push(Op::Range(RangeRequest { serializable: true, ..range("a", "") }));
    ops.push(Op::Range(range("", "")));
    ops.push(Op::Range(RangeRequest { revision: -5, ..range("a", "") }));
    // Compares over a range: every key must satisfy them.
    ops.push(txn(
        vec![cmp("a", "c", CompareTarget::Version, CompareResult::Equal, TargetUnion::Version(2))],
        vec![op_put("r1", "yes")],
        vec![op_put("r1", "no")],
    ));
    ops.push(txn(
        vec![cmp("a", "z", CompareTarget::Mod, CompareResult::Greater, TargetUnion::ModRevision(1))],
        vec![op_put("r2", "yes")],
        vec![op_put("r2", "no")],
    ));
    ops.push(txn(
        vec![cmp("a", "", CompareTarget::Lease, CompareResult::Equal, TargetUnion::Lease(0))],
        vec![op_range(range("a", ""))],
        vec![],
    ));
    // A target union that does not match the target compares against zero.
    ops.push(txn(
        vec![cmp("a", "", CompareTarget::Version, CompareResult::Greater, TargetUnion::ModRevision(100))],
        vec![op_put("r3", "yes")],
        vec![op_put("r3", "no")],
    ));
    ops.push(txn(
        vec![cmp("zz", "zzz", CompareTarget::Value, CompareResult::NotEqual, TargetUnion::Value(b"x".to_vec()))],
        vec![op_put("r4", "yes")],
        vec![op_put("r4", "no")],
    ));
    // Nested txns: inner compares see the store as it was before the outer txn's writes.
    let inner = |then_key: &str, else_key: &str| TxnRequest {
        compare: vec![cmp("n", "", CompareTarget::Version, CompareResult::Equal, TargetUnion::Version(0))],
        success: vec![op_put(then_key, "inner-then"), op_range(range("n", ""))],
        failure: vec![op_put(else_key, "inner-else")],
    };
    ops.push(txn(vec![], vec![op_put("n", "outer"), op_txn(inner("n1", "n2")), op_range(range("n", "o"))], vec![]));
    ops.push(txn(vec![], vec![op_txn(inner("n3", "n3")), op_txn(inner("n4", "n5"))], vec![]));
    // The same key put in both branches of one nested txn is allowed; twice on a path is not.
    ops.push(txn(vec![], vec![op_txn(inner("n6", "n6")), op_put("n6", "x")], vec![]));
    ops.push(txn(
        vec![],
        vec![
            RequestOp {
                request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                    key: "n".into(),
                    range_end: "o".into(),
                    ..Default::default()
                })),
            },
            op_txn(inner("n7", "n8")),
        ],
        vec![],
    ));
    ops.push(txn(vec![], vec![RequestOp { request: None }], vec![]));
    ops.push(txn(
        vec![cmp("", "", CompareTarget::Version, CompareResult::Equal, TargetUnion::Version(0))],
        vec![],
        vec![],
    ));
    // Limits.
    let many = |n: usize| (0..n).map(|i| op_put(&format!("m{i}"), "v")).collect::<Vec<_>>();
    ops.push(txn(vec![], many(128), vec![]));
    ops.push(txn(vec![], many(129), vec![]));
    ops.push(txn(vec![], vec![], many(129)));
    ops.push(Op::Put(PutRequest { key: "big".into(), value: vec![b'x'; 1_600_000], ..Default::default() }));
    ops.push(Op::Put(PutRequest { key: "fits".into(), value: vec![b'x'; 1_000_000], ..Default::default() }));
    ops.push(Op::Range(RangeRequest { keys_only: true, ..range("fits", "") }));
    // Deletes from a key on, and compaction with physical.
    ops.push(Op::Delete(DeleteRangeRequest { key: "m5".into(), range_end: vec![0], prev_kv: false }));
    ops.push(Op::Range(RangeRequest { count_only: true, ..all() }));
    ops.push(Op::Compact(CompactionRequest { revision: 10, physical: true }));
    ops.push(Op::Range(RangeRequest { revision: 9, ..all() }));
    ops.push(Op::Range(RangeRequest { revision: 10, count_only: true, ..all() }));
    ops.push(Op::Compact(CompactionRequest { revision: 0, physical: false }));
    ops.push(Op::Compact(CompactionRequest { revision: -1, physical: false }));
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_kv_requests_answer_as_etcd_does() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Member::start(Kind::Etcd, &dir.path().join("etcd"), &[]);
    let cairn = Member::start(Kind::Cairn, &dir.path().join("cairn"), &[]);
    let connect = |addr: String| async move {
        KvClient::connect(format!("http://{addr}")).await.unwrap().max_decoding_message_size(64 << 20)
    };
    let mut e = connect(etcd.client_addr.clone()).await;
    let mut c = connect(cairn.client_addr.clone()).await;
    let mut diffs = Vec::new();
    let mut errors = 0;
    let ops = script();
    for op in &ops {
        let want = send(&mut e, op).await;
        let got = send(&mut c, op).await;
        errors += want.starts_with("error") as usize;
        if want != got {
            let shown = format!("{op:?}");
            diffs.push(format!("{}\n--- etcd:  {want}\n--- cairn: {got}\n", &shown[..shown.len().min(300)]));
        }
    }
    assert!(diffs.is_empty(), "{} request(s) differ:\n{}", diffs.len(), diffs.join("\n"));
    assert!(errors * 3 < ops.len(), "too many requests failed on etcd ({errors} of {})", ops.len());
}

/// What a gRPC health probe sees: Check and the first answer of Watch, for the whole server
/// and for a name no one serves.
async fn health(addr: &str) -> Vec<String> {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut h = HealthClient::new(channel);
    let mut out = Vec::new();
    for service in ["", "etcdserverpb.KV", "nosuch"] {
        let req = || HealthCheckRequest { service: service.into() };
        out.push(match h.check(req()).await {
            Ok(r) => format!("check {service:?}: {:?}", r.into_inner().status()),
            Err(s) => format!("check {service:?}: {:?} {}", s.code(), s.message()),
        });
        let mut stream = h.watch(req()).await.unwrap().into_inner();
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message()).await;
        out.push(format!("watch {service:?}: {:?}", first.expect("an answer").unwrap().unwrap().status()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_health_service_answers_as_etcd_does() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Member::start(Kind::Etcd, &dir.path().join("etcd"), &[]);
    let cairn = Member::start(Kind::Cairn, &dir.path().join("cairn"), &[]);
    let want = health(&etcd.client_addr).await;
    assert_eq!(want[0], "check \"\": Serving", "etcd itself: {want:?}");
    assert_eq!(health(&cairn.client_addr).await, want);
}
