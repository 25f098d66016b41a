//! The two steps Lock and Election are made of, done server-side on KV, leases and watches:
//! create my key under a prefix (or find it), then wait until every key created before it
//! under that prefix is gone. The waiting uses an internal watcher, not polling.

use super::Common;
use crate::apply::Origin;
use crate::auth::{AuthInfo, Need};
use crate::error::EtcdError;
use crate::proto::cairnpb::internal_request::Request;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::response_op::Response as OpResponse;
use crate::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::KeyValue;
use crate::storage::mvcc::watch::{WatchHub, Watcher};
use crate::storage::mvcc::KeyRange;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Internal watchers live on a stream id no client stream uses.
const INTERNAL_STREAM: u64 = u64::MAX;
static NEXT_INTERNAL: AtomicI64 = AtomicI64::new(1);

pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

pub fn create_revision_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
        range_end: vec![],
    }
}

fn get(key: &[u8]) -> RequestOp {
    RequestOp { request: Some(Op::RequestRange(RangeRequest { key: key.to_vec(), ..Default::default() })) }
}

/// Every step runs as the client that asked (`who`), checked as its own requests would be.
pub async fn txn(ctx: &Common, who: &AuthInfo, t: TxnRequest) -> Result<TxnResponse, EtcdError> {
    ctx.propose(&Origin::Client(who.clone()), Request::Txn(t)).await
}

/// Puts `key` (with `lease`) unless it exists; returns the key as stored and the revision
/// the txn ran at.
pub async fn create_or_get(
    ctx: &Common,
    who: &AuthInfo,
    key: &[u8],
    value: &[u8],
    lease: i64,
) -> Result<(KeyValue, i64), EtcdError> {
    let put = RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        })),
    };
    let resp = txn(
        ctx,
        who,
        TxnRequest { compare: vec![create_revision_is(key, 0)], success: vec![put, get(key)], failure: vec![get(key)] },
    )
    .await?;
    let rev = resp.header.as_ref().map_or(0, |h| h.revision);
    let kv = resp
        .responses
        .into_iter()
        .find_map(|r| match r.response {
            Some(OpResponse::ResponseRange(r)) => r.kvs.into_iter().next(),
            _ => None,
        })
        .ok_or_else(|| EtcdError::Internal("recipe key vanished".into()))?;
    Ok((kv, rev))
}

pub async fn delete(ctx: &Common, who: &AuthInfo, key: &[u8]) -> Result<i64, EtcdError> {
    let del = Request::DeleteRange(DeleteRangeRequest { key: key.to_vec(), ..Default::default() });
    let r: crate::proto::etcdserverpb::DeleteRangeResponse = ctx.propose(&Origin::Client(who.clone()), del).await?;
    Ok(r.header.map_or(0, |h| h.revision))
}

/// After a ReadIndex: the first key under `prefix` in create-revision `order`, among those
/// created at or before `max_create` (0: all), and the revision read at.
async fn by_creation(
    ctx: &Common,
    who: &AuthInfo,
    prefix: &[u8],
    order: SortOrder,
    max_create: i64,
) -> Result<(Option<KeyValue>, i64), EtcdError> {
    ctx.raft.linearizable_read().await?;
    let r = RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: SortTarget::Create as i32,
        max_create_revision: max_create,
        ..Default::default()
    };
    let needs = [Need::Read(&r.key, &r.range_end)];
    let resp = ctx.serve_read(who, &needs, || crate::apply::ops::range(&ctx.mvcc.read(), &r))?;
    Ok((resp.kvs.into_iter().next(), resp.header.map_or(0, |h| h.revision)))
}

/// The key created first under `prefix` (the leader, the lock holder), and the revision read at.
pub async fn first_created(ctx: &Common, who: &AuthInfo, prefix: &[u8]) -> Result<(Option<KeyValue>, i64), EtcdError> {
    by_creation(ctx, who, prefix, SortOrder::Ascend, 0).await
}

/// Waits until no key under `prefix` has a create revision below `my_rev`.
pub async fn wait_for_predecessors(
    ctx: &Arc<Common>,
    who: &AuthInfo,
    hub: &WatchHub,
    prefix: &[u8],
    my_rev: i64,
) -> Result<(), EtcdError> {
    loop {
        let (newest, rev) = by_creation(ctx, who, prefix, SortOrder::Descend, my_rev - 1).await?;
        let Some(last) = newest else { return Ok(()) };
        // Waiting on the newest predecessor alone: when it goes, look again.
        wait_for_change(ctx, hub, KeyRange::Single(last.key), rev, true).await?;
    }
}

/// Waits for a change in `range` after revision `after` (only deletions if `deletes_only`).
pub async fn wait_for_change(
    ctx: &Arc<Common>,
    hub: &WatchHub,
    range: KeyRange,
    after: i64,
    deletes_only: bool,
) -> Result<(), EtcdError> {
    let (tx, mut rx) = crate::storage::mvcc::watch::stream_queue(4, 1 << 20);
    let key = (INTERNAL_STREAM, NEXT_INTERNAL.fetch_add(1, Ordering::Relaxed));
    let w = Watcher { range, next_rev: after + 1, no_put: deletes_only, no_delete: false, prev_kv: false, tx };
    hub.add(key, w);
    struct Unregister<'a>(&'a WatchHub, (u64, i64));
    impl Drop for Unregister<'_> {
        fn drop(&mut self) {
            self.0.remove(self.1);
        }
    }
    let _unregister = Unregister(hub, key);
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                // Canceled means compacted past `after`: whatever we waited for happened.
                Some(r) if r.canceled || !r.events.is_empty() => return Ok(()),
                Some(_) => continue,
                None => return Err(EtcdError::Stopped),
            },
            _ = ctx.stopped() => return Err(EtcdError::Stopped),
        }
    }
}

/// etcd runs Lock and Election through its own client library, whose errors reach the caller
/// as plain errors: gRPC code Unknown, etcd's message. Answers of these services do the same.
pub fn as_client_error<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<tonic::Response<T>, tonic::Status> {
    r.map_err(|s| tonic::Status::new(tonic::Code::Unknown, s.message()))
}
