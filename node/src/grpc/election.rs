//! v3electionpb.Election: leader election per name. Campaign creates `<name>/<lease hex>`
//! with the candidate's value and returns when it is the oldest key under `<name>/`, i.e. the
//! leader; Proclaim changes the leader's value, Resign steps down, Leader and Observe report.

use super::lock::Abandon;
use super::recipes::{self, create_revision_is};
use super::{credentials, Common};
use crate::auth::AuthInfo;
use crate::error::EtcdError;
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RequestOp, ResponseHeader, TxnRequest};
use crate::proto::v3electionpb::election_server::Election;
use crate::proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest, ProclaimResponse,
    ResignRequest, ResignResponse,
};
use crate::storage::mvcc::watch::WatchHub;
use crate::storage::mvcc::KeyRange;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

crate::headed!(CampaignResponse, ProclaimResponse, LeaderResponse, ResignResponse);

pub struct ElectionService {
    ctx: Arc<Common>,
    hub: Arc<WatchHub>,
}

impl ElectionService {
    pub fn new(ctx: Arc<Common>, hub: Arc<WatchHub>) -> Self {
        ElectionService { ctx, hub }
    }
}

fn prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// Puts `value` on the leader's key if it is still the key of that leadership.
async fn proclaim(ctx: &Common, who: &AuthInfo, leader: &LeaderKey, value: &[u8]) -> Result<(), EtcdError> {
    let put = PutRequest { key: leader.key.clone(), value: value.to_vec(), lease: leader.lease, ..Default::default() };
    let t = TxnRequest {
        compare: vec![create_revision_is(&leader.key, leader.rev)],
        success: vec![RequestOp { request: Some(Op::RequestPut(put)) }],
        failure: vec![],
    };
    if recipes::txn(ctx, who, t).await?.succeeded {
        Ok(())
    } else {
        Err(EtcdError::ElectionNotLeader)
    }
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(&self, request: Request<CampaignRequest>) -> Result<Response<CampaignResponse>, Status> {
        let creds = credentials(&request);
        let r = request.into_inner();
        let result = async {
            let who = self.ctx.identify(&creds).await?;
            let pfx = prefix(&r.name);
            let mut key = pfx.clone();
            key.extend_from_slice(format!("{:x}", r.lease).as_bytes());
            let (kv, txn_rev) = recipes::create_or_get(&self.ctx, &who, &key, &r.value, r.lease).await?;
            let leader = LeaderKey { name: r.name.clone(), key: key.clone(), rev: kv.create_revision, lease: r.lease };
            if kv.value != r.value {
                proclaim(&self.ctx, &who, &leader, &r.value).await?;
            }
            let guard = Abandon::new(self.ctx.clone(), who.clone(), key);
            recipes::wait_for_predecessors(&self.ctx, &who, &self.hub, &pfx, leader.rev).await?;
            guard.disarm();
            // etcd answers with the header of the txn that created the key.
            let header = Some(ResponseHeader { revision: txn_rev, ..Default::default() });
            Ok(CampaignResponse { header, leader: Some(leader) })
        }
        .await;
        recipes::as_client_error(self.ctx.answer(result))
    }

    async fn proclaim(&self, request: Request<ProclaimRequest>) -> Result<Response<ProclaimResponse>, Status> {
        let creds = credentials(&request);
        let r = request.into_inner();
        let result = async {
            let leader = r.leader.ok_or(EtcdError::MissingLeaderKey)?;
            let who = self.ctx.identify(&creds).await?;
            proclaim(&self.ctx, &who, &leader, &r.value).await?;
            Ok(ProclaimResponse { header: None })
        }
        .await;
        recipes::as_client_error(self.ctx.answer(result))
    }

    async fn leader(&self, request: Request<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        let creds = credentials(&request);
        let r = request.into_inner();
        let result = async {
            let who = self.ctx.identify(&creds).await?;
            let (kv, _) = recipes::first_created(&self.ctx, &who, &prefix(&r.name)).await?;
            let kv = kv.ok_or(EtcdError::ElectionNoLeader)?;
            Ok(LeaderResponse { header: None, kv: Some(kv) })
        }
        .await;
        recipes::as_client_error(self.ctx.answer(result))
    }

    type ObserveStream = ObserveStream;

    async fn observe(&self, request: Request<LeaderRequest>) -> Result<Response<ObserveStream>, Status> {
        let creds = credentials(&request);
        let pfx = prefix(&request.into_inner().name);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let (ctx, hub) = (self.ctx.clone(), self.hub.clone());
        tokio::spawn(async move {
            let mut last: Option<(Vec<u8>, i64)> = None;
            let who = match ctx.identify(&creds).await {
                Ok(who) => who,
                Err(e) => {
                    let _ = tx.send(Err(Status::from(e))).await;
                    return;
                }
            };
            loop {
                let (kv, rev) = match recipes::first_created(&ctx, &who, &pfx).await {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(e))).await;
                        return;
                    }
                };
                if let Some(kv) = kv {
                    let now = (kv.key.clone(), kv.mod_revision);
                    if last.as_ref() != Some(&now) {
                        last = Some(now);
                        let mut resp = LeaderResponse { header: None, kv: Some(kv) };
                        ctx.fill(&mut resp);
                        if tx.send(Ok(resp)).await.is_err() {
                            return;
                        }
                    }
                }
                let range = KeyRange::from_request(&pfx, &recipes::prefix_end(&pfx));
                tokio::select! {
                    r = recipes::wait_for_change(&ctx, &hub, range, rev, false) => if r.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(&self, request: Request<ResignRequest>) -> Result<Response<ResignResponse>, Status> {
        let creds = credentials(&request);
        let r = request.into_inner();
        let result = async {
            let leader = r.leader.ok_or(EtcdError::MissingLeaderKey)?;
            let who = self.ctx.identify(&creds).await?;
            let del = DeleteRangeRequest { key: leader.key.clone(), ..Default::default() };
            let t = TxnRequest {
                compare: vec![create_revision_is(&leader.key, leader.rev)],
                success: vec![RequestOp { request: Some(Op::RequestDeleteRange(del)) }],
                failure: vec![],
            };
            let resp = recipes::txn(&self.ctx, &who, t).await?;
            Ok(ResignResponse { header: resp.header })
        }
        .await;
        recipes::as_client_error(self.ctx.answer(result))
    }
}
