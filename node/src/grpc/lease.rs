//! etcdserverpb.Lease. Grants and revokes go through raft; keep-alives renew on the leader;
//! TimeToLive and Leases read the lessor after a ReadIndex.

use super::{credentials, forward, quota::Quota, Common};
use crate::error::EtcdError;
use crate::lease::{LeaseIdGenerator, Lessor, MAX_LEASE_TTL};
use crate::proto::cairnpb::internal_request::Request;
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request as GrpcRequest, Response, Status, Streaming};

crate::headed!(
    LeaseGrantResponse,
    LeaseRevokeResponse,
    LeaseKeepAliveResponse,
    LeaseTimeToLiveResponse,
    LeaseLeasesResponse
);

/// A keep-alive stream to the leader, kept for the client's stream; rebuilt when it breaks.
type ToLeader = Option<(tokio::sync::mpsc::Sender<LeaseKeepAliveRequest>, Streaming<LeaseKeepAliveResponse>)>;

/// Opens a keep-alive stream to the leader carrying a first request for `id`; None when the
/// leader refused the call.
async fn open_on_leader(ctx: &Common, id: i64) -> Result<ToLeader, EtcdError> {
    let ch = forward::leader_channel(ctx).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    // Queued before the call: a gRPC server may send nothing until it has a request.
    let _ = tx.send(LeaseKeepAliveRequest { id }).await;
    let mut leader = LeaseClient::new(ch);
    let call = leader.lease_keep_alive(forward::mark(GrpcRequest::new(ReceiverStream::new(rx))));
    Ok(call.await.ok().map(|answers| (tx, answers.into_inner())))
}

/// Renews lease `id` on the leader, from a follower. One retry on a fresh stream covers a
/// leader change since the last keep-alive.
async fn keep_alive_on_leader(ctx: &Common, to_leader: &mut ToLeader, id: i64) -> Result<i64, EtcdError> {
    for _ in 0..2 {
        let answers = match to_leader {
            Some((tx, answers)) if tx.send(LeaseKeepAliveRequest { id }).await.is_ok() => answers,
            Some(_) => {
                *to_leader = None;
                continue;
            }
            None => match open_on_leader(ctx, id).await? {
                Some(opened) => &mut to_leader.insert(opened).1,
                None => continue,
            },
        };
        if let Ok(Some(a)) = answers.message().await {
            return Ok(a.ttl);
        }
        *to_leader = None;
    }
    Err(EtcdError::NotLeader)
}
/// Keep-alive answers buffered per stream; a client that stops reading stops being answered.
const KEEPALIVE_QUEUE: usize = 16;

pub struct LeaseService {
    ctx: Arc<Common>,
    lessor: Arc<Lessor>,
    ids: Arc<LeaseIdGenerator>,
    quota: Arc<Quota>,
}

impl LeaseService {
    pub fn new(ctx: Arc<Common>, lessor: Arc<Lessor>, ids: Arc<LeaseIdGenerator>, quota: Arc<Quota>) -> Self {
        LeaseService { ctx, lessor, ids, quota }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: GrpcRequest<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let creds = credentials(&request);
        let mut r = request.into_inner();
        let result = async {
            // etcd counts a lease as 64 bytes against the quota.
            self.quota.check(64).await?;
            if r.ttl > MAX_LEASE_TTL {
                return Err(EtcdError::LeaseTtlTooLarge);
            }
            if r.id == 0 {
                // Chosen before proposing, so every member applies the same id.
                r.id = self.ids.next();
            }
            let who = self.ctx.client(&creds).await?;
            self.ctx.propose(&who, Request::LeaseGrant(r)).await
        }
        .await;
        self.ctx.answer(result)
    }

    async fn lease_revoke(
        &self,
        request: GrpcRequest<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let creds = credentials(&request);
        let result = async {
            let who = self.ctx.client(&creds).await?;
            self.ctx.propose(&who, Request::LeaseRevoke(request.into_inner())).await
        }
        .await;
        self.ctx.answer(result)
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: GrpcRequest<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let forwarded = forward::was_forwarded(&request);
        let mut incoming = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(KEEPALIVE_QUEUE);
        let (ctx, lessor) = (self.ctx.clone(), self.lessor.clone());
        tokio::spawn(async move {
            let mut to_leader = None;
            loop {
                let req = tokio::select! {
                    r = incoming.next() => match r {
                        Some(Ok(req)) => req,
                        _ => return,
                    },
                    _ = ctx.stopped() => return,
                };
                let ttl = if ctx.raft.status().is_leader() {
                    // etcd answers a keep-alive of a missing or expired lease with TTL 0.
                    Ok(lessor.renew(req.id).unwrap_or(0))
                } else if forwarded {
                    Err(EtcdError::NotLeader)
                } else {
                    keep_alive_on_leader(&ctx, &mut to_leader, req.id).await
                };
                let ttl = match ttl {
                    Ok(ttl) => ttl,
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(e))).await;
                        return;
                    }
                };
                let mut resp = LeaseKeepAliveResponse { header: None, id: req.id, ttl };
                ctx.fill(&mut resp);
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: GrpcRequest<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let forwarded = forward::was_forwarded(&request);
        let r = request.into_inner();
        let result = async {
            if !self.ctx.raft.status().is_leader() {
                // Only the leader's lessor knows when a lease expires.
                if forwarded {
                    return Err(EtcdError::NotLeader);
                }
                let ch = forward::leader_channel(&self.ctx).await?;
                let answer = LeaseClient::new(ch).lease_time_to_live(forward::mark(GrpcRequest::new(r))).await;
                return answer
                    .map(|a| {
                        let mut a = a.into_inner();
                        a.header = None;
                        a
                    })
                    .map_err(forward::leader_said);
            }
            self.ctx.raft.linearizable_read().await?;
            Ok(match self.lessor.time_to_live(r.id, r.keys) {
                Some(t) => LeaseTimeToLiveResponse {
                    header: None,
                    id: r.id,
                    ttl: t.remaining,
                    granted_ttl: t.granted,
                    keys: t.keys,
                },
                None => LeaseTimeToLiveResponse { header: None, id: r.id, ttl: -1, granted_ttl: 0, keys: vec![] },
            })
        }
        .await;
        self.ctx.answer(result)
    }

    async fn lease_leases(&self, _: GrpcRequest<LeaseLeasesRequest>) -> Result<Response<LeaseLeasesResponse>, Status> {
        let result = async {
            self.ctx.raft.linearizable_read().await?;
            let leases = self.lessor.ids().into_iter().map(|id| LeaseStatus { id }).collect();
            Ok(LeaseLeasesResponse { header: None, leases })
        }
        .await;
        self.ctx.answer(result)
    }
}
