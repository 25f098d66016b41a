//! What each KV request needs, in the order etcd checks it (the first refusal is the error a
//! client sees). The lease a put attaches to needs more (write on the lease's keys): the
//! applier, which knows the lease, adds that.

use super::Need;
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};

pub fn range_needs(r: &RangeRequest) -> Vec<Need<'_>> {
    vec![Need::Read(&r.key, &r.range_end)]
}

/// Write on the key, then (asking for the previous value) read on it.
pub fn put_needs(p: &PutRequest) -> Vec<Need<'_>> {
    let mut needs = vec![Need::Write(&p.key, &[])];
    if p.prev_kv {
        needs.push(Need::Read(&p.key, &[]));
    }
    needs
}

pub fn delete_needs(d: &DeleteRangeRequest) -> Vec<Need<'_>> {
    let mut needs = vec![Need::Write(&d.key, &d.range_end)];
    if d.prev_kv {
        needs.push(Need::Read(&d.key, &d.range_end));
    }
    needs
}

/// Read on every compared key, then each operation of both branches. Stricter than etcd 3.4
/// in two places that leak otherwise: nested txns are checked (3.4 lets them past every
/// permission), and a put's previous value needs read inside a txn as outside.
pub fn txn_needs(t: &TxnRequest) -> Vec<Need<'_>> {
    let mut needs: Vec<Need<'_>> = t.compare.iter().map(|c| Need::Read(&c.key, &c.range_end)).collect();
    for op in t.success.iter().chain(&t.failure) {
        needs.extend(op_needs(op));
    }
    needs
}

fn op_needs(op: &RequestOp) -> Vec<Need<'_>> {
    match &op.request {
        Some(Op::RequestRange(r)) => range_needs(r),
        Some(Op::RequestPut(p)) => put_needs(p),
        // etcd checks a txn's delete for read first.
        Some(Op::RequestDeleteRange(d)) => {
            let mut needs = Vec::new();
            if d.prev_kv {
                needs.push(Need::Read(&d.key, &d.range_end));
            }
            needs.push(Need::Write(&d.key, &d.range_end));
            needs
        }
        Some(Op::RequestTxn(inner)) => txn_needs(inner),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::Compare;

    #[test]
    fn txn_needs_compares_then_ops_including_nested() {
        let put = |k: &str| RequestOp {
            request: Some(Op::RequestPut(PutRequest { key: k.into(), prev_kv: true, ..Default::default() })),
        };
        let inner = TxnRequest { success: vec![put("deep")], ..Default::default() };
        let t = TxnRequest {
            compare: vec![Compare { key: b"c".to_vec(), ..Default::default() }],
            success: vec![put("a")],
            failure: vec![RequestOp { request: Some(Op::RequestTxn(inner)) }],
        };
        assert_eq!(
            txn_needs(&t),
            vec![
                Need::Read(b"c", b""),
                Need::Write(b"a", b""),
                Need::Read(b"a", b""),
                Need::Write(b"deep", b""),
                Need::Read(b"deep", b"")
            ]
        );
    }

    #[test]
    fn prev_kv_needs_read() {
        let p = PutRequest { key: b"k".to_vec(), prev_kv: true, ..Default::default() };
        assert_eq!(put_needs(&p), vec![Need::Write(b"k", b""), Need::Read(b"k", b"")]);
        let d = DeleteRangeRequest { key: b"a".to_vec(), range_end: b"b".to_vec(), prev_kv: false };
        assert_eq!(delete_needs(&d), vec![Need::Write(b"a", b"b")]);
    }
}
