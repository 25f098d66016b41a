//! etcdserverpb.Maintenance: Status (served by learners too), HashKV and MoveLeader. Hash,
//! alarms, defragmentation and snapshots are not served yet: they answer Unimplemented.

use super::status::EtcdError;
use super::ServerCtx;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest,
    SnapshotResponse, StatusRequest, StatusResponse,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

crate::headed!(StatusResponse, MoveLeaderResponse, HashKvResponse);

const SERVICE: &str = "etcdserverpb.Maintenance";

pub struct MaintenanceService {
    ctx: Arc<ServerCtx>,
}

impl MaintenanceService {
    pub fn new(ctx: Arc<ServerCtx>) -> Self {
        MaintenanceService { ctx }
    }

    /// Hands leadership to `target` and waits until it has it (etcd waits as long as a request may).
    async fn move_leader(&self, target: u64, timeout: Duration) -> Result<MoveLeaderResponse, EtcdError> {
        self.ctx.not_learner()?;
        let status = self.ctx.raft.status();
        if !status.is_leader() {
            return Err(EtcdError::NotLeader);
        }
        if self.ctx.membership.get(target).is_none_or(|m| m.is_learner) {
            return Err(EtcdError::BadLeaderTransferee);
        }
        if target == self.ctx.member_id {
            return Ok(MoveLeaderResponse { header: None });
        }
        self.ctx.raft.transfer_leader(target)?;
        let deadline = Instant::now() + timeout;
        while status.leader() != target {
            if Instant::now() >= deadline {
                return Err(EtcdError::LeaderTransferTimeout);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(MoveLeaderResponse { header: None })
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not supported yet"))
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, _: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        Err(not_yet("Alarm"))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let s = self.ctx.raft.status();
        let size = self.ctx.backend.size_on_disk() as i64;
        let resp = StatusResponse {
            header: None,
            version: crate::server::ETCD_API_VERSION.to_string(),
            db_size: size,
            leader: s.leader(),
            raft_index: s.commit_index(),
            raft_term: s.term(),
            raft_applied_index: s.applied_index(),
            errors: Vec::new(),
            db_size_in_use: size,
            is_learner: self.ctx.membership.me_is_learner(),
        };
        self.ctx.answer(SERVICE, "Status", Ok(resp))
    }

    async fn defragment(&self, _: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        Err(not_yet("Defragment"))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(not_yet("Hash"))
    }

    async fn hash_kv(&self, request: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        let rev = request.into_inner().revision;
        let r = async {
            self.ctx.not_learner()?;
            let h = self.ctx.mvcc.hash_kv(rev)?;
            Ok(HashKvResponse {
                header: None,
                hash: h.hash,
                compact_revision: h.compact_revision,
                hash_revision: h.revision,
            })
        }
        .await;
        self.ctx.answer(SERVICE, "HashKV", r)
    }

    type SnapshotStream = tokio_stream::Empty<Result<SnapshotResponse, Status>>;

    async fn snapshot(&self, _: Request<SnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(not_yet("Snapshot"))
    }

    async fn move_leader(&self, request: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        let r = self.move_leader(request.into_inner().target_id, self.ctx.raft.request_timeout()).await;
        self.ctx.answer(SERVICE, "MoveLeader", r)
    }

    async fn downgrade(&self, _: Request<DowngradeRequest>) -> Result<Response<DowngradeResponse>, Status> {
        Err(not_yet("Downgrade"))
    }
}
