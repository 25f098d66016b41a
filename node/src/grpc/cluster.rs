//! etcdserverpb.Cluster. MemberList answers from this member's replicated view (after a
//! ReadIndex when the client asks for a linearizable list). Adds, removals and promotions
//! are raft conf changes: checked here against etcd's --strict-reconfig-check rules, then
//! validated again where they are applied (see `membership::change`). Only the leader knows
//! whether a learner caught up, so a follower forwards MemberPromote to it, as etcd does.

use super::forward;
use super::{credentials, Common};
use crate::apply::{Applied, Origin};
use crate::error::EtcdError;
use crate::membership::Change;
use crate::proto::cairnpb::internal_request::Request as Internal;
use crate::proto::cairnpb::{MemberPeerUrls, MemberRecord};
use crate::proto::etcdserverpb::cluster_client::ClusterClient;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use crate::raft::ConfChangeKind;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::{Request, Response, Status};

crate::headed!(
    MemberListResponse,
    MemberAddResponse,
    MemberRemoveResponse,
    MemberUpdateResponse,
    MemberPromoteResponse
);

/// etcd's learner catch-up rule: a learner may be promoted once its log matches at least
/// 90% of the leader's.
const LEARNER_READY_PERCENT: f64 = 0.9;
/// etcd's HealthInterval: a peer counts as connected once it has been up this long.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

pub struct ClusterService {
    ctx: Arc<Common>,
    /// Which peers are up: membership changes check it first, as etcd does.
    transport: Arc<crate::transport::Transport>,
    /// --strict-reconfig-check: refuse changes that could cost the quorum (on by default).
    strict: bool,
}

impl ClusterService {
    pub fn new(ctx: Arc<Common>, transport: Arc<crate::transport::Transport>, strict: bool) -> Self {
        ClusterService { ctx, transport, strict }
    }

    /// Replicates a conf change; answers with the members after it.
    async fn change(&self, kind: ConfChangeKind, member: MemberRecord) -> Result<Vec<Member>, EtcdError> {
        // Checked first against an up-to-date view (after a ReadIndex), so that a change that
        // cannot pass is answered at once; the applier checks again, and decides.
        self.ctx.raft.linearizable_read().await?;
        let change = match kind {
            ConfChangeKind::AddVoter | ConfChangeKind::AddLearner => Change::Add(member.clone()),
            ConfChangeKind::Promote => Change::Promote(member.id),
            ConfChangeKind::Remove => Change::Remove(member.id),
        };
        self.ctx.membership.validate(&change)?;
        members_of(self.ctx.raft.propose_conf_change(kind, member).await?)
    }

    /// Whether `id` is this member or a peer connected for the last HEALTH_INTERVAL.
    fn connected(&self, id: u64) -> bool {
        let since = Instant::now().checked_sub(HEALTH_INTERVAL);
        id == self.ctx.member_id
            || self.transport.active_since(id).zip(since).is_some_and(|(active, since)| active <= since)
    }

    /// Adding a member: every voter must be connected (etcd's isConnectedFullySince).
    fn fully_connected(&self) -> Result<(), EtcdError> {
        if self.ctx.membership.voters().into_iter().all(|v| self.connected(v)) {
            return Ok(());
        }
        Err(EtcdError::Unhealthy)
    }

    /// Removing a member that is up must leave a quorum of connected voters (a member
    /// that is down may always go).
    fn may_remove(&self, id: u64) -> Result<(), EtcdError> {
        if self.ctx.membership.get(id).is_some_and(|m| m.is_learner) {
            // Not part of any quorum.
            return Ok(());
        }
        self.ctx.membership.ready_to_remove(id)?;
        if id != self.ctx.member_id && self.transport.active_since(id).is_none() {
            return Ok(());
        }
        let voters = self.ctx.membership.voters();
        let active = voters.iter().filter(|v| self.connected(**v)).count();
        if active.saturating_sub(1) < 1 + voters.len().saturating_sub(1) / 2 {
            return Err(EtcdError::Unhealthy);
        }
        Ok(())
    }

    /// On the leader: the learner must have caught up (etcd's 90% rule).
    async fn learner_ready(&self, id: u64) -> Result<(), EtcdError> {
        match self.ctx.raft.progress(id).await? {
            // Not a member raft knows: the conf change itself answers "member not found".
            None if self.ctx.raft.status().is_leader() => Ok(()),
            None => Err(EtcdError::NotLeader),
            Some((learner, leader)) if (learner as f64) < (leader as f64) * LEARNER_READY_PERCENT => {
                Err(EtcdError::LearnerNotReady)
            }
            Some(_) => Ok(()),
        }
    }

    async fn promote_on_leader(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<MemberPromoteResponse, EtcdError> {
        let ch = forward::leader_channel(&self.ctx).await?;
        let resp = ClusterClient::new(ch).member_promote(forward::mark(request)).await;
        resp.map(|r| r.into_inner()).map_err(forward::leader_said)
    }
}

fn member(r: MemberRecord) -> Member {
    Member { id: r.id, name: r.name, peer_ur_ls: r.peer_urls, client_ur_ls: r.client_urls, is_learner: r.is_learner }
}

fn members_of(applied: Applied) -> Result<Vec<Member>, EtcdError> {
    match applied {
        Applied::Members(list) => Ok(list.into_iter().map(member).collect()),
        other => Err(EtcdError::Internal(format!("unexpected apply result {other:?}"))),
    }
}

/// etcd's checks of member URLs: http(s) with host:port, nothing more.
fn check_urls(urls: &[String]) -> Result<(), EtcdError> {
    let ok = |u: &String| {
        url::Url::parse(u)
            .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.port().is_some() && matches!(p.path(), "" | "/"))
    };
    if urls.is_empty() || !urls.iter().all(ok) {
        return Err(EtcdError::BadMemberUrls);
    }
    Ok(())
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, request: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        let creds = credentials(&request);
        let req = request.into_inner();
        let r = async {
            self.ctx.admin(&creds).await?;
            check_urls(&req.peer_ur_ls)?;
            if self.strict {
                if !req.is_learner {
                    self.ctx.membership.ready_to_add_voter()?;
                }
                self.fully_connected()?;
            }
            // etcd's new member id: its peer URLs and the time, hashed.
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            let id = crate::membership::ids::member_id(&req.peer_ur_ls, &now.to_string());
            let rec = MemberRecord { id, peer_urls: req.peer_ur_ls, is_learner: req.is_learner, ..Default::default() };
            let kind = if req.is_learner { ConfChangeKind::AddLearner } else { ConfChangeKind::AddVoter };
            let members = self.change(kind, rec.clone()).await?;
            Ok(MemberAddResponse { header: None, member: Some(member(rec)), members })
        }
        .await;
        self.ctx.answer_unrevised(r)
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let creds = credentials(&request);
        let id = request.into_inner().id;
        let r = async {
            self.ctx.admin(&creds).await?;
            if self.strict {
                self.may_remove(id)?;
            }
            let members = self.change(ConfChangeKind::Remove, MemberRecord { id, ..Default::default() }).await?;
            Ok(MemberRemoveResponse { header: None, members })
        }
        .await;
        self.ctx.answer_unrevised(r)
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let creds = credentials(&request);
        let req = request.into_inner();
        let r = async {
            let who = Origin::Client(self.ctx.admin(&creds).await?);
            check_urls(&req.peer_ur_ls)?;
            let update = Internal::MemberPeerUrls(MemberPeerUrls { id: req.id, peer_urls: req.peer_ur_ls });
            let members = members_of(self.ctx.raft.propose(&who, update).await?)?;
            Ok(MemberUpdateResponse { header: None, members })
        }
        .await;
        self.ctx.answer_unrevised(r)
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
        self.ctx.answer_unrevised(r)
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let id = request.get_ref().id;
        let creds = credentials(&request);
        let r = async {
            self.ctx.admin(&creds).await?;
            if !self.ctx.raft.status().is_leader() {
                if forward::was_forwarded(&request) {
                    return Err(EtcdError::NotLeader);
                }
                return self.promote_on_leader(request).await;
            }
            self.learner_ready(id).await?;
            if self.strict {
                self.ctx.membership.ready_to_promote()?;
            }
            let members = self.change(ConfChangeKind::Promote, MemberRecord { id, ..Default::default() }).await?;
            crate::metrics::get().server.learner_promote_successes.inc();
            Ok(MemberPromoteResponse { header: None, members })
        }
        .await;
        self.ctx.answer_unrevised(r)
    }
}
