//! Put, DeleteRange and Range as the applier runs them, alone or inside a txn.

use crate::error::EtcdError;
use crate::lease::Lessor;
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader,
};
use crate::storage::mvcc::{range_request, KeyRange, RangeOptions, RangeView, ReadTxn, WriteTxn};

/// What txn evaluation needs from a transaction. A read-only txn runs on a `ReadTxn`, whose
/// write methods are never reached: `txn::is_read_only` decides which kind runs a txn.
pub trait KvTarget: RangeView {
    /// The revision this transaction's reads see.
    fn view_rev(&self) -> i64;
    fn begin_rev(&self) -> i64;
    fn compact_rev(&self) -> i64;
    fn has_changes(&self) -> bool;
    fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64) -> i64;
    fn delete_range(&mut self, range: &KeyRange) -> usize;
}

impl KvTarget for WriteTxn<'_> {
    fn view_rev(&self) -> i64 {
        self.rev()
    }
    fn begin_rev(&self) -> i64 {
        if self.has_changes() {
            self.rev() - 1
        } else {
            self.rev()
        }
    }
    fn compact_rev(&self) -> i64 {
        WriteTxn::compact_rev(self)
    }
    fn has_changes(&self) -> bool {
        WriteTxn::has_changes(self)
    }
    fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64) -> i64 {
        WriteTxn::put(self, key, value, lease)
    }
    fn delete_range(&mut self, range: &KeyRange) -> usize {
        WriteTxn::delete_range(self, range)
    }
}

impl KvTarget for ReadTxn<'_> {
    fn view_rev(&self) -> i64 {
        self.rev()
    }
    fn begin_rev(&self) -> i64 {
        self.rev()
    }
    fn compact_rev(&self) -> i64 {
        ReadTxn::compact_rev(self)
    }
    fn has_changes(&self) -> bool {
        false
    }
    fn put(&mut self, _: &[u8], _: Vec<u8>, _: i64) -> i64 {
        unreachable!("a txn with a put never runs on a read transaction")
    }
    fn delete_range(&mut self, _: &KeyRange) -> usize {
        unreachable!("a txn with a delete never runs on a read transaction")
    }
}

/// etcd checks a txn's range revisions before running anything.
pub fn check_range_revision(view: &impl KvTarget, rev: i64) -> Result<(), EtcdError> {
    if rev == 0 {
        Ok(())
    } else if rev > view.begin_rev() {
        Err(EtcdError::FutureRev)
    } else if rev < view.compact_rev() {
        Err(EtcdError::Compacted)
    } else {
        Ok(())
    }
}

pub fn check_put(view: &impl KvTarget, lessor: &Lessor, p: &PutRequest) -> Result<(), EtcdError> {
    if p.lease != 0 && !lessor.exists(p.lease) {
        return Err(EtcdError::LeaseNotFound);
    }
    if p.ignore_value || p.ignore_lease {
        let cur = view.range(&KeyRange::Single(p.key.clone()), RangeOptions::default())?;
        if cur.kvs.is_empty() {
            return Err(EtcdError::KeyNotFound);
        }
    }
    Ok(())
}

pub fn range(view: &impl RangeView, r: &RangeRequest) -> Result<RangeResponse, EtcdError> {
    crate::metrics::get().mvcc.range.inc();
    Ok(range_request(view, r)?)
}

/// Callers run `check_put` first; here only the write itself remains.
pub fn put(target: &mut impl KvTarget, p: &PutRequest) -> Result<PutResponse, EtcdError> {
    let prev = if p.prev_kv || p.ignore_value || p.ignore_lease {
        target.range(&KeyRange::Single(p.key.clone()), RangeOptions::default())?.kvs.into_iter().next()
    } else {
        None
    };
    let (mut value, mut lease) = (p.value.clone(), p.lease);
    if let Some(prev) = &prev {
        if p.ignore_value {
            value = prev.value.clone();
        }
        if p.ignore_lease {
            lease = prev.lease;
        }
    } else if p.ignore_value || p.ignore_lease {
        // Reachable inside a txn that deleted the key before this put.
        return Err(EtcdError::KeyNotFound);
    }
    let mvcc = &crate::metrics::get().mvcc;
    mvcc.put.inc();
    mvcc.put_size.inc_by((p.key.len() + value.len()) as i64);
    let revision = target.put(&p.key, value, lease);
    Ok(PutResponse {
        header: Some(ResponseHeader { revision, ..Default::default() }),
        prev_kv: if p.prev_kv { prev } else { None },
    })
}

pub fn delete_range(target: &mut impl KvTarget, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, EtcdError> {
    let range = KeyRange::from_request(&d.key, &d.range_end);
    let prev_kvs = if d.prev_kv { target.range(&range, RangeOptions::default())?.kvs } else { Vec::new() };
    crate::metrics::get().mvcc.delete.inc();
    let deleted = target.delete_range(&range);
    let revision = if deleted > 0 || target.has_changes() { target.begin_rev() + 1 } else { target.begin_rev() };
    Ok(DeleteRangeResponse {
        header: Some(ResponseHeader { revision, ..Default::default() }),
        deleted: deleted as i64,
        prev_kvs,
    })
}
