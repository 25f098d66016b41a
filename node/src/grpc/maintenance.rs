//! etcdserverpb.Maintenance: Status (served by learners too), Alarm, Defragment, Hash,
//! HashKV, Snapshot and MoveLeader. Downgrade (etcd 3.5's) answers Unimplemented.

use super::{credentials, Common};
use crate::alarm::Alarms;
use crate::apply::ApplierHandle;
use crate::error::EtcdError;
use crate::proto::cairnpb::internal_request::Request as InternalRequest;
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest,
    SnapshotResponse, StatusRequest, StatusResponse,
};
use crate::storage::backend::Backend;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

crate::headed!(HashResponse, StatusResponse, HashKvResponse, SnapshotResponse, AlarmResponse);

pub struct MaintenanceService {
    ctx: Arc<Common>,
    alarms: Arc<Alarms>,
    /// Read only: its size, and what is in use.
    backend: Arc<Backend>,
    /// Defragmentation, hashes and images are the applier's, between two of its batches.
    applier: ApplierHandle,
    /// Where images for clients' snapshots are written.
    snap_dir: PathBuf,
}

impl MaintenanceService {
    pub fn new(
        ctx: Arc<Common>,
        alarms: Arc<Alarms>,
        backend: Arc<Backend>,
        applier: ApplierHandle,
        snap_dir: PathBuf,
    ) -> Self {
        MaintenanceService { ctx, alarms, backend, applier, snap_dir }
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

const SNAPSHOT_CHUNK: usize = 64 * 1024;

async fn stream_snapshot(
    mut file: tokio::fs::File,
    len: u64,
    header: Option<ResponseHeader>,
    tx: tokio::sync::mpsc::Sender<Result<SnapshotResponse, Status>>,
) {
    use tokio::io::AsyncReadExt;
    let total = len + cairn_api::snapshot::padding(len);
    let mut sha = Sha256::new();
    let mut sent = 0u64;
    let mut buf = vec![0u8; SNAPSHOT_CHUNK];
    while sent < total {
        let n = if sent < len {
            match file.read(&mut buf).await {
                Ok(0) => {
                    let _ = tx.send(Err(Status::internal("the snapshot file ended early"))).await;
                    return;
                }
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.send(Err(Status::internal(format!("reading the snapshot: {e}")))).await;
                    return;
                }
            }
        } else {
            // The padding: zeros up to a multiple of 512 bytes.
            let n = (total - sent) as usize;
            buf[..n].fill(0);
            n
        };
        sha.update(&buf[..n]);
        sent += n as u64;
        let chunk =
            SnapshotResponse { header, remaining_bytes: total - sent, blob: buf[..n].to_vec(), ..Default::default() };
        if tx.send(Ok(chunk)).await.is_err() {
            return;
        }
    }
    let last = SnapshotResponse { header, remaining_bytes: 0, blob: sha.finalize().to_vec(), ..Default::default() };
    let _ = tx.send(Ok(last)).await;
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not supported"))
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    /// GET answers from this member's (replicated) alarms after a ReadIndex; raising and
    /// clearing go through raft.
    async fn alarm(&self, request: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let creds = credentials(&request);
        let r = request.into_inner();
        let result = async {
            self.ctx.not_learner()?;
            if r.action == AlarmAction::Get as i32 {
                self.ctx.raft.linearizable_read().await?;
                return Ok(AlarmResponse { header: None, alarms: self.alarms.get(r.alarm) });
            }
            let who = self.ctx.client(&creds).await?;
            self.ctx.propose(&who, InternalRequest::Alarm(r)).await
        }
        .await;
        // etcd 3.4 answers alarms without a header (its server fills none for them).
        self.ctx.answer_bare(result)
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let s = self.ctx.raft.status();
        let size = self.backend.size_on_disk() as i64;
        let backend = self.backend.clone();
        let in_use = tokio::task::spawn_blocking(move || backend.bytes_in_use()).await.unwrap_or(0) as i64;
        let resp = StatusResponse {
            header: None,
            version: crate::version::ETCD_API_VERSION.to_string(),
            db_size: size,
            leader: s.leader(),
            raft_index: s.commit_index(),
            raft_term: s.term(),
            raft_applied_index: self.ctx.raft.applied_index(),
            errors: self.alarms.all().iter().map(Alarms::describe).collect(),
            db_size_in_use: in_use.min(size),
            is_learner: self.ctx.membership.me_is_learner(),
        };
        self.ctx.answer(Ok(resp))
    }

    /// This member only, as in etcd (etcdctl asks each endpoint in turn).
    async fn defragment(&self, request: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        let creds = credentials(&request);
        let r = async {
            self.ctx.maintenance_admin(&creds).await?;
            self.ctx.not_learner()?;
            let disk = &crate::metrics::get().disk;
            disk.defrag_inflight.set(1);
            let started = std::time::Instant::now();
            let done = self.applier.defragment().await;
            disk.defrag_inflight.set(0);
            disk.backend_defrag.observe(started.elapsed().as_secs_f64());
            done?;
            Ok(DefragmentResponse { header: None })
        }
        .await;
        self.ctx.answer_bare(r)
    }

    /// This member's backend as it is now, without a ReadIndex, as in etcd: members agree
    /// once they have applied the same entries.
    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let creds = credentials(&request);
        let r = async {
            self.ctx.maintenance_admin(&creds).await?;
            self.ctx.not_learner()?;
            let started = std::time::Instant::now();
            let hash = self.applier.hash().await?;
            crate::metrics::get().mvcc.hash.observe(started.elapsed().as_secs_f64());
            Ok(HashResponse { header: None, hash })
        }
        .await;
        self.ctx.answer(r)
    }

    async fn hash_kv(&self, request: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        let creds = credentials(&request);
        let rev = request.into_inner().revision;
        let r = async {
            self.ctx.maintenance_admin(&creds).await?;
            self.ctx.not_learner()?;
            let started = std::time::Instant::now();
            let h = self.ctx.mvcc.hash_kv(rev)?;
            crate::metrics::get().mvcc.hash_rev.observe(started.elapsed().as_secs_f64());
            Ok(HashKvResponse {
                header: None,
                hash: h.hash,
                compact_revision: h.compact_revision,
                hash_revision: h.revision,
            })
        }
        .await;
        self.ctx.answer(r)
    }

    type SnapshotStream = ReceiverStream<Result<SnapshotResponse, Status>>;

    /// A consistent image of the backend (the applier pauses while it is written to a file),
    /// streamed in chunks, padded, then its SHA-256 (see `snapshot`).
    async fn snapshot(&self, request: Request<SnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
        self.ctx.maintenance_admin(&credentials(&request)).await?;
        self.ctx.not_learner()?;
        let path = self.snap_dir.join(format!("client-{:016x}.snapshot", rand::random::<u64>()));
        let started = std::time::Instant::now();
        let index = self.applier.write_image(path.clone()).await?;
        crate::metrics::get().disk.backend_snapshot.observe(started.elapsed().as_secs_f64());
        let file = tokio::fs::File::open(&path).await;
        // Open (or failed): its name goes now, so nothing stays behind whatever the client does.
        let _ = std::fs::remove_file(&path);
        let file = file.map_err(|e| Status::internal(format!("reading the snapshot: {e}")))?;
        let len = file.metadata().await.map_err(|e| Status::internal(e.to_string()))?.len();
        tracing::info!(index, bytes = len, "sending a snapshot to a client");
        let mut header = SnapshotResponse::default();
        self.ctx.fill(&mut header);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(stream_snapshot(file, len, header.header, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn move_leader(&self, request: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        let r = self.move_leader(request.into_inner().target_id, self.ctx.raft.request_timeout()).await;
        self.ctx.answer_bare(r)
    }

    async fn downgrade(&self, _: Request<DowngradeRequest>) -> Result<Response<DowngradeResponse>, Status> {
        Err(not_yet("Downgrade"))
    }
}
