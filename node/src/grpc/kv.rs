//! etcdserverpb.KV.

use super::{credentials, quota::Quota, validate, Common};
use crate::apply::{ops, txn};
use crate::auth;
use crate::error::EtcdError;
use crate::proto::cairnpb::internal_request::Request;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::request_op;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use std::sync::Arc;
use tonic::{Request as GrpcRequest, Response, Status};

crate::headed!(RangeResponse, PutResponse, DeleteRangeResponse, TxnResponse, CompactionResponse);

pub struct KvService {
    ctx: Arc<Common>,
    lessor: Arc<crate::lease::Lessor>,
    quota: Arc<Quota>,
    max_txn_ops: usize,
}

impl KvService {
    pub fn new(ctx: Arc<Common>, lessor: Arc<crate::lease::Lessor>, quota: Arc<Quota>, max_txn_ops: usize) -> Self {
        KvService { ctx, lessor, quota, max_txn_ops }
    }
}

/// What a put costs the backend, as etcd's quota counts it.
fn put_cost(p: &PutRequest) -> usize {
    256 + p.key.len() + p.value.len()
}

/// A txn costs its dearer branch.
fn txn_cost(t: &TxnRequest) -> usize {
    let branch = |ops: &[crate::proto::etcdserverpb::RequestOp]| -> usize {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => put_cost(p),
                Some(request_op::Request::RequestTxn(inner)) => txn_cost(inner),
                _ => 0,
            })
            .sum()
    };
    branch(&t.success).max(branch(&t.failure))
}

/// Serializable txns (every range serializable) skip the ReadIndex, as in etcd.
fn txn_is_serializable(t: &TxnRequest) -> bool {
    t.success.iter().chain(&t.failure).all(|op| match &op.request {
        Some(request_op::Request::RequestRange(r)) => r.serializable,
        Some(request_op::Request::RequestTxn(inner)) => txn_is_serializable(inner),
        _ => false,
    })
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, request: GrpcRequest<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let creds = credentials(&request);
        let r = request.into_inner();
        let result = async {
            if !r.serializable {
                self.ctx.not_learner()?;
            }
            validate::check_range(&r)?;
            if !r.serializable {
                self.ctx.raft.linearizable_read().await?;
            }
            let who = self.ctx.identify(&creds).await?;
            self.ctx.serve_read(&who, &auth::range_needs(&r), || ops::range(&self.ctx.mvcc.read(), &r))
        }
        .await;
        self.ctx.answer(result)
    }

    async fn put(&self, request: GrpcRequest<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let creds = credentials(&request);
        let r = request.into_inner();
        let result = async {
            self.ctx.not_learner()?;
            self.quota.check(put_cost(&r)).await?;
            validate::check_put(&r)?;
            let who = self.ctx.client(&creds).await?;
            self.ctx.propose(&who, Request::Put(r)).await
        }
        .await;
        self.ctx.answer(result)
    }

    async fn delete_range(
        &self,
        request: GrpcRequest<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let creds = credentials(&request);
        let r = request.into_inner();
        let result = async {
            self.ctx.not_learner()?;
            validate::check_delete(&r)?;
            let who = self.ctx.client(&creds).await?;
            self.ctx.propose(&who, Request::DeleteRange(r)).await
        }
        .await;
        self.ctx.answer(result)
    }

    async fn txn(&self, request: GrpcRequest<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let creds = credentials(&request);
        let r = request.into_inner();
        let result: Result<TxnResponse, EtcdError> = async {
            self.ctx.not_learner()?;
            if txn::has_puts(&r) {
                self.quota.check(txn_cost(&r)).await?;
            }
            validate::check_txn(&r, self.max_txn_ops)?;
            if !txn::is_read_only(&r) {
                let who = self.ctx.client(&creds).await?;
                return self.ctx.propose(&who, Request::Txn(r)).await;
            }
            // Read-only txns are served locally, after a ReadIndex unless serializable.
            if !txn_is_serializable(&r) {
                self.ctx.raft.linearizable_read().await?;
            }
            let who = self.ctx.identify(&creds).await?;
            self.ctx.serve_read(&who, &auth::txn_needs(&r), || txn::txn(&mut self.ctx.mvcc.read(), &self.lessor, &r))
        }
        .await;
        self.ctx.answer(result)
    }

    async fn compact(&self, request: GrpcRequest<CompactionRequest>) -> Result<Response<CompactionResponse>, Status> {
        // A physical compaction is answered once the records it freed are deleted (see apply).
        let creds = credentials(&request);
        let result = async {
            self.ctx.not_learner()?;
            let who = self.ctx.client(&creds).await?;
            self.ctx.propose(&who, Request::Compaction(request.into_inner())).await
        }
        .await;
        self.ctx.answer(result)
    }
}
