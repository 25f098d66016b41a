//! Txn evaluation as etcd does it: every compare of the taken path (nested txns included) is
//! decided against the store as it was before the txn, then the path is checked (leases,
//! ignore_*, read revisions) so that nothing fails half-way, then the ops run in order.

use super::ops::{self, KvTarget};
use crate::error::EtcdError;
use crate::lease::Lessor;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::{Compare, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse};
use crate::proto::mvccpb::KeyValue;
use crate::storage::mvcc::{KeyRange, RangeOptions, RangeView};
use std::cmp::Ordering;

/// The branch each txn on the taken path takes; `nested` follows the order of the nested txn
/// ops in that branch.
struct Path {
    succeeded: bool,
    nested: Vec<Path>,
}

fn branch(t: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &t.success
    } else {
        &t.failure
    }
}

fn decide(view: &impl RangeView, t: &TxnRequest) -> Result<Path, EtcdError> {
    let mut succeeded = true;
    for c in &t.compare {
        if !compare(view, c)? {
            succeeded = false;
            break;
        }
    }
    let mut nested = Vec::new();
    for op in branch(t, succeeded) {
        if let Some(Request::RequestTxn(inner)) = &op.request {
            nested.push(decide(view, inner)?);
        }
    }
    Ok(Path { succeeded, nested })
}

fn compare(view: &impl RangeView, c: &Compare) -> Result<bool, EtcdError> {
    let res = view.range(&KeyRange::from_request(&c.key, &c.range_end), RangeOptions::default())?;
    if res.kvs.is_empty() {
        // A missing key has no value to compare: etcd fails value compares outright and
        // compares the other targets against zero.
        if c.target() == CompareTarget::Value {
            return Ok(false);
        }
        return Ok(compare_kv(c, &KeyValue::default()));
    }
    Ok(res.kvs.iter().all(|kv| compare_kv(c, kv)))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let ord = match c.target() {
        CompareTarget::Value => {
            let want: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(want)
        }
        target => {
            let want = match (&c.target_union, target) {
                (Some(TargetUnion::Version(v)), CompareTarget::Version)
                | (Some(TargetUnion::CreateRevision(v)), CompareTarget::Create)
                | (Some(TargetUnion::ModRevision(v)), CompareTarget::Mod)
                | (Some(TargetUnion::Lease(v)), CompareTarget::Lease) => *v,
                _ => 0,
            };
            let have = match target {
                CompareTarget::Version => kv.version,
                CompareTarget::Create => kv.create_revision,
                CompareTarget::Mod => kv.mod_revision,
                _ => kv.lease,
            };
            have.cmp(&want)
        }
    };
    match c.result() {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}

fn check(view: &impl KvTarget, lessor: &Lessor, t: &TxnRequest, path: &Path) -> Result<(), EtcdError> {
    let mut nested = path.nested.iter();
    for op in branch(t, path.succeeded) {
        match &op.request {
            Some(Request::RequestPut(p)) => ops::check_put(view, lessor, p)?,
            Some(Request::RequestRange(r)) => ops::check_range_revision(view, r.revision)?,
            Some(Request::RequestTxn(inner)) => {
                check(view, lessor, inner, nested.next().expect("a path per nested txn"))?;
            }
            Some(Request::RequestDeleteRange(_)) | None => {}
        }
    }
    Ok(())
}

fn execute(target: &mut impl KvTarget, t: &TxnRequest, path: &Path) -> Result<TxnResponse, EtcdError> {
    let mut nested = path.nested.iter();
    let mut responses = Vec::new();
    for op in branch(t, path.succeeded) {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Response::ResponseRange(ops::range(target, r)?),
            Some(Request::RequestPut(p)) => Response::ResponsePut(ops::put(target, p)?),
            Some(Request::RequestDeleteRange(d)) => Response::ResponseDeleteRange(ops::delete_range(target, d)?),
            Some(Request::RequestTxn(inner)) => {
                let mut resp = execute(target, inner, nested.next().expect("a path per nested txn"))?;
                // etcd leaves the header of a nested txn empty.
                resp.header = Some(ResponseHeader::default());
                Response::ResponseTxn(resp)
            }
            None => continue,
        };
        responses.push(ResponseOp { response: Some(response) });
    }
    Ok(TxnResponse { header: None, succeeded: path.succeeded, responses })
}

/// Whether some branch puts a key (a txn that would grow the store).
pub fn has_puts(t: &TxnRequest) -> bool {
    t.success.iter().chain(&t.failure).any(|op| match &op.request {
        Some(Request::RequestPut(_)) => true,
        Some(Request::RequestTxn(inner)) => has_puts(inner),
        _ => false,
    })
}

/// True when no op on either branch, at any depth, writes.
pub fn is_read_only(t: &TxnRequest) -> bool {
    t.success.iter().chain(&t.failure).all(|op| match &op.request {
        Some(Request::RequestPut(_)) | Some(Request::RequestDeleteRange(_)) => false,
        Some(Request::RequestTxn(inner)) => is_read_only(inner),
        Some(Request::RequestRange(_)) | None => true,
    })
}

pub fn txn(target: &mut impl KvTarget, lessor: &Lessor, t: &TxnRequest) -> Result<TxnResponse, EtcdError> {
    crate::metrics::get().mvcc.txn.inc();
    let path = decide(target, t)?;
    check(target, lessor, t, &path)?;
    let mut resp = execute(target, t, &path)?;
    resp.header = Some(ResponseHeader { revision: target.view_rev(), ..Default::default() });
    Ok(resp)
}
