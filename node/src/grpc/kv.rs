//! etcdserverpb.KV.

use super::status::EtcdError;
use super::{validate, ServerCtx};
use crate::apply::{ops, txn, Applied};
use crate::lease::Lessor;
use crate::proto::cairnpb::internal_request::Request;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::request_op;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use std::sync::Arc;
use tonic::{Request as GrpcRequest, Response, Status};

pub struct KvService {
    ctx: Arc<ServerCtx>,
    lessor: Arc<Lessor>,
}

impl KvService {
    pub fn new(ctx: Arc<ServerCtx>, lessor: Arc<Lessor>) -> Self {
        KvService { ctx, lessor }
    }

    async fn propose(&self, req: Request) -> Result<Applied, EtcdError> {
        self.ctx.raft.propose(req).await
    }

    fn unexpected(a: Applied) -> EtcdError {
        EtcdError::Internal(format!("unexpected apply result {a:?}"))
    }
}

fn counted<T>(
    ctx: &ServerCtx,
    method: &'static str,
    r: Result<T, EtcdError>,
) -> Result<Response<T>, Status> {
    let code = r.as_ref().err().map_or(tonic::Code::Ok, |e| e.code());
    ctx.metrics.grpc_handled("etcdserverpb.KV", method, code);
    r.map(Response::new).map_err(Status::from)
}

/// Serializable txns (every range serializable) skip the ReadIndex, as in etcd.
fn txn_is_serializable(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(r)) => r.serializable,
            Some(request_op::Request::RequestTxn(inner)) => txn_is_serializable(inner),
            _ => false,
        })
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: GrpcRequest<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let r = request.into_inner();
        let result = async {
            validate::check_range(&r)?;
            if !r.serializable {
                self.ctx.raft.linearizable_read().await?;
            }
            let mut resp = ops::range(&self.ctx.mvcc.read(), &r)?;
            self.ctx.fill(&mut resp.header);
            Ok(resp)
        }
        .await;
        counted(&self.ctx, "Range", result)
    }

    async fn put(&self, request: GrpcRequest<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let r = request.into_inner();
        let result = async {
            validate::check_put(&r)?;
            match self.propose(Request::Put(r)).await? {
                Applied::Put(mut resp) => {
                    self.ctx.fill(&mut resp.header);
                    Ok(resp)
                }
                other => Err(Self::unexpected(other)),
            }
        }
        .await;
        counted(&self.ctx, "Put", result)
    }

    async fn delete_range(
        &self,
        request: GrpcRequest<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let r = request.into_inner();
        let result = async {
            validate::check_delete(&r)?;
            match self.propose(Request::DeleteRange(r)).await? {
                Applied::DeleteRange(mut resp) => {
                    self.ctx.fill(&mut resp.header);
                    Ok(resp)
                }
                other => Err(Self::unexpected(other)),
            }
        }
        .await;
        counted(&self.ctx, "DeleteRange", result)
    }

    async fn txn(&self, request: GrpcRequest<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let r = request.into_inner();
        let result = async {
            validate::check_txn(&r, self.ctx.max_txn_ops)?;
            let mut resp = if txn::is_read_only(&r) {
                if !txn_is_serializable(&r) {
                    self.ctx.raft.linearizable_read().await?;
                }
                txn::txn(&mut self.ctx.mvcc.read(), &self.lessor, &r)?
            } else {
                match self.propose(Request::Txn(r)).await? {
                    Applied::Txn(resp) => resp,
                    other => return Err(Self::unexpected(other)),
                }
            };
            self.ctx.fill(&mut resp.header);
            Ok(resp)
        }
        .await;
        counted(&self.ctx, "Txn", result)
    }

    async fn compact(
        &self,
        request: GrpcRequest<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let r = request.into_inner();
        // Compaction runs to completion inside apply, so `physical` holds for every answer.
        let result = async {
            match self.propose(Request::Compaction(r)).await? {
                Applied::Compaction(mut resp) => {
                    self.ctx.fill(&mut resp.header);
                    Ok(resp)
                }
                other => Err(Self::unexpected(other)),
            }
        }
        .await;
        counted(&self.ctx, "Compact", result)
    }
}
