//! etcdserverpb.Cluster. MemberList answers from this member's replicated view (after a
//! ReadIndex when the client asks for a linearizable list, as etcd 3.5 does). Membership
//! changes are not served yet: they answer Unimplemented.

use super::ServerCtx;
use crate::proto::cairnpb::MemberRecord;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

crate::headed!(MemberListResponse);

pub struct ClusterService {
    ctx: Arc<ServerCtx>,
}

impl ClusterService {
    pub fn new(ctx: Arc<ServerCtx>) -> Self {
        ClusterService { ctx }
    }
}

fn member(r: MemberRecord) -> Member {
    Member { id: r.id, name: r.name, peer_ur_ls: r.peer_urls, client_ur_ls: r.client_urls, is_learner: r.is_learner }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("{what}: membership changes are not supported yet"))
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, _: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        Err(not_yet("MemberAdd"))
    }

    async fn member_remove(&self, _: Request<MemberRemoveRequest>) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(not_yet("MemberRemove"))
    }

    async fn member_update(&self, _: Request<MemberUpdateRequest>) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(not_yet("MemberUpdate"))
    }

    async fn member_list(&self, request: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        let linearizable = request.into_inner().linearizable;
        let r = async {
            if linearizable {
                self.ctx.raft.linearizable_read().await?;
            }
            let members = self.ctx.membership.list().into_iter().map(member).collect();
            Ok(MemberListResponse { header: None, members })
        }
        .await;
        self.ctx.answer("Cluster", "MemberList", r)
    }

    async fn member_promote(
        &self,
        _: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(not_yet("MemberPromote"))
    }
}
