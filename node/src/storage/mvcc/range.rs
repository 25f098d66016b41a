//! A `RangeRequest` evaluated against a view: etcd's order of operations — fetch, filter by
//! mod/create revision, sort, then cut to the limit — so `count` and `more` mean what they
//! mean in etcd.

use super::store::{RangeOptions, RangeResult};
use super::{KeyRange, MvccError, ReadTxn, WriteTxn};
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};
use crate::proto::mvccpb::KeyValue;
use std::cmp::Ordering;

pub trait RangeView {
    fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult, MvccError>;
}

impl RangeView for ReadTxn<'_> {
    fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult, MvccError> {
        ReadTxn::range(self, range, opts)
    }
}

impl RangeView for WriteTxn<'_> {
    fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult, MvccError> {
        WriteTxn::range(self, range, opts)
    }
}

pub fn range_request(view: &impl RangeView, r: &RangeRequest) -> Result<RangeResponse, MvccError> {
    let filtered =
        r.min_mod_revision != 0 || r.max_mod_revision != 0 || r.min_create_revision != 0 || r.max_create_revision != 0;
    let sort_order = match (r.sort_order(), r.sort_target()) {
        // The index already yields keys in ascending order.
        (SortOrder::None, SortTarget::Key) => SortOrder::None,
        (SortOrder::None, _) => SortOrder::Ascend,
        (o, _) => o,
    };
    // Sorting and filtering need every key; otherwise fetch one more than asked so we
    // know whether there are more.
    let limit = if r.sort_order() != SortOrder::None || filtered || r.limit <= 0 { 0 } else { r.limit as usize + 1 };
    let range = KeyRange::from_request(&r.key, &r.range_end);
    let res = view.range(&range, RangeOptions { limit, rev: r.revision, count_only: r.count_only })?;
    let mut kvs = res.kvs;
    if filtered {
        kvs.retain(|kv| {
            !(r.max_mod_revision != 0 && kv.mod_revision > r.max_mod_revision
                || r.min_mod_revision != 0 && kv.mod_revision < r.min_mod_revision
                || r.max_create_revision != 0 && kv.create_revision > r.max_create_revision
                || r.min_create_revision != 0 && kv.create_revision < r.min_create_revision)
        });
    }
    if sort_order != SortOrder::None {
        let target = r.sort_target();
        let cmp = |a: &KeyValue, b: &KeyValue| -> Ordering {
            match target {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            }
        };
        // Stable, like the insertion sort etcd's sort.Sort uses on small inputs.
        match sort_order {
            SortOrder::Descend => kvs.sort_by(|a, b| cmp(b, a)),
            _ => kvs.sort_by(cmp),
        }
    }
    let mut more = false;
    if r.limit > 0 && kvs.len() > r.limit as usize {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse {
        header: Some(ResponseHeader { revision: res.rev, ..Default::default() }),
        kvs,
        more,
        count: res.count as i64,
    })
}
