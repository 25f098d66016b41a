//! Request checks done before anything is proposed, with etcd's rules and errors: empty
//! keys, ignore_* with a value or lease, txn size, and puts/deletes that touch the same key
//! twice in one txn.

use crate::error::EtcdError;
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};
use std::collections::HashSet;

pub fn check_range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

pub fn check_put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

pub fn check_txn(r: &TxnRequest, max_ops: usize) -> Result<(), EtcdError> {
    check_txn_ops(r, max_ops)?;
    // After the per-op checks, so a huge txn is rejected before the quadratic part.
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_txn_ops(r: &TxnRequest, max_ops: usize) -> Result<(), EtcdError> {
    if r.compare.len().max(r.success.len()).max(r.failure.len()) > max_ops {
        return Err(EtcdError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(Request::RequestRange(x)) => check_range(x)?,
            Some(Request::RequestPut(x)) => check_put(x)?,
            Some(Request::RequestDeleteRange(x)) => check_delete(x)?,
            Some(Request::RequestTxn(x)) => check_txn_ops(x, max_ops)?,
            None => return Err(EtcdError::KeyNotFound),
        }
    }
    Ok(())
}

/// A deleted span: `[start, end)`, or the single key `start` when `end` is empty.
struct Span {
    start: Vec<u8>,
    end: Vec<u8>,
}

impl Span {
    fn covers(&self, k: &[u8]) -> bool {
        if self.end.is_empty() {
            self.start == k
        } else {
            self.start.as_slice() <= k && k < self.end.as_slice()
        }
    }
}

/// etcd's rule: within one branch (nested txns included) a key may be put at most once and
/// never both put and deleted. The two branches of a nested txn exclude each other, so the
/// same key may be put in both.
fn check_intervals(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<Span>), EtcdError> {
    let mut dels: Vec<Span> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) => Some(Span { start: d.key.clone(), end: d.range_end.clone() }),
            _ => None,
        })
        .collect();
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in ops {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || dels.iter().any(|d| d.covers(k)) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || dels.iter().any(|d| d.covers(k)) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || dels.iter().any(|d| d.covers(&p.key)) {
            return Err(EtcdError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}
