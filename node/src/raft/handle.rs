//! How gRPC handlers reach raft: propose a request and wait for its result, or wait for a
//! linearizable read point. The queue to the Ready loop is bounded; a full queue answers
//! "too many requests" instead of growing.

use super::{ConfChangeKind, RaftStatus};
use crate::apply::{ApplyResult, Origin};
use crate::error::EtcdError;
use crate::proto::cairnpb::{internal_request::Request, ConfChangeContext, InternalRequest, MemberRecord};
use crate::wait::Waiters;
use prost::Message;
use raft::eraftpb::{ConfChange, ConfChangeType};
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// What the handle asks of the Ready loop.
pub(super) enum Msg {
    Propose {
        id: u64,
        data: Vec<u8>,
    },
    ReadIndex {
        reply: oneshot::Sender<Result<u64, EtcdError>>,
    },
    /// From another member, encoded.
    Step(Vec<u8>),
    /// A snapshot message whose image was received into the file.
    StepSnapshot(Vec<u8>, PathBuf),
    Unreachable(u64),
    SnapshotStatus(u64, bool),
    /// A membership change to replicate; the applier wakes waiter `id`.
    ProposeConfChange {
        id: u64,
        cc: ConfChange,
    },
    /// How far a member's log matches the leader's: (member's match, leader's match), or
    /// None when this member is not the leader.
    Progress {
        member: u64,
        reply: oneshot::Sender<Option<(u64, u64)>>,
    },
    /// Hand leadership to another voter.
    TransferLeader(u64),
}

#[derive(Clone)]
pub struct RaftHandle {
    pub(super) tx: SyncSender<Msg>,
    pub(super) waiters: Arc<Waiters<ApplyResult>>,
    pub(super) applied: watch::Receiver<u64>,
    pub(super) status: Arc<RaftStatus>,
    pub(super) request_timeout: Duration,
    pub(super) max_request_bytes: usize,
}

impl RaftHandle {
    pub fn status(&self) -> &RaftStatus {
        &self.status
    }

    /// How long a request may wait for raft (etcd's request timeout).
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    pub fn pending_proposals(&self) -> usize {
        self.waiters.len()
    }

    fn send(&self, msg: Msg) -> Result<(), EtcdError> {
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(EtcdError::TooManyRequests),
            Err(TrySendError::Disconnected(_)) => Err(EtcdError::Stopped),
        }
    }

    /// A message from another member (dropped if the loop is swamped: raft resends).
    pub fn step(&self, message: Vec<u8>) {
        let _ = self.tx.try_send(Msg::Step(message));
    }

    /// A snapshot message whose backend image was received into `image`.
    pub fn step_snapshot(&self, message: Vec<u8>, image: std::path::PathBuf) {
        let _ = self.tx.try_send(Msg::StepSnapshot(message, image));
    }

    pub fn report_unreachable(&self, member: u64) {
        let _ = self.tx.try_send(Msg::Unreachable(member));
    }

    pub fn report_snapshot(&self, member: u64, delivered: bool) {
        let _ = self.tx.try_send(Msg::SnapshotStatus(member, delivered));
    }

    /// Replicates `request`, made for `origin`, and returns what applying it produced.
    pub async fn propose(&self, origin: &Origin, request: Request) -> ApplyResult {
        let (id, rx) = self.waiters.register();
        let (user, auth_revision, by_member) = match origin {
            Origin::Client(who) => (who.user.clone(), who.revision, false),
            Origin::Member => (String::new(), 0, true),
        };
        let data = InternalRequest { id, request: Some(request), user, auth_revision, by_member }.encode_to_vec();
        if data.len() > self.max_request_bytes {
            self.waiters.forget(id);
            return Err(EtcdError::RequestTooLarge);
        }
        let failed = &crate::metrics::get().server.proposals_failed;
        if !self.status.has_leader() {
            self.waiters.forget(id);
            failed.inc();
            return Err(EtcdError::NoLeader);
        }
        if let Err(e) = self.send(Msg::Propose { id, data }) {
            self.waiters.forget(id);
            failed.inc();
            return Err(e);
        }
        self.wait(id, rx).await
    }

    /// Replicates a membership change. `member` is the added member (or the one promoted or
    /// removed); the applier validates the change and answers with the members after it.
    pub async fn propose_conf_change(&self, kind: ConfChangeKind, member: MemberRecord) -> ApplyResult {
        let (id, rx) = self.waiters.register();
        let node_id = member.id;
        let (change, promote) = match kind {
            ConfChangeKind::AddVoter => (ConfChangeType::AddNode, false),
            ConfChangeKind::AddLearner => (ConfChangeType::AddLearnerNode, false),
            ConfChangeKind::Promote => (ConfChangeType::AddNode, true),
            ConfChangeKind::Remove => (ConfChangeType::RemoveNode, false),
        };
        let context = ConfChangeContext { id, member: Some(member), promote }.encode_to_vec();
        let cc = ConfChange { change_type: change, node_id, context: context.into(), ..Default::default() };
        if let Err(e) = self.send(Msg::ProposeConfChange { id, cc }) {
            self.waiters.forget(id);
            return Err(e);
        }
        self.wait(id, rx).await
    }

    async fn wait(&self, id: u64, rx: oneshot::Receiver<ApplyResult>) -> ApplyResult {
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(EtcdError::Stopped),
            Err(_) => {
                self.waiters.forget(id);
                crate::metrics::get().server.proposals_failed.inc();
                Err(EtcdError::Timeout)
            }
        }
    }

    /// On the leader: how far `member`'s log matches, and how far the leader's own does.
    /// None on a follower.
    pub async fn progress(&self, member: u64) -> Result<Option<(u64, u64)>, EtcdError> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Progress { member, reply })?;
        rx.await.map_err(|_| EtcdError::Stopped)
    }

    /// Asks raft to hand leadership to `to` (it must be a voter that is up to date).
    pub fn transfer_leader(&self, to: u64) -> Result<(), EtcdError> {
        self.send(Msg::TransferLeader(to))
    }

    /// The last entry this member applied.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// The last entry applied, to wait on.
    pub fn applied_watch(&self) -> &watch::Receiver<u64> {
        &self.applied
    }

    /// Returns once this member has applied everything committed when the call was made
    /// (raft ReadIndex), so a local read that follows is linearizable.
    pub async fn linearizable_read(&self) -> Result<(), EtcdError> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::ReadIndex { reply: tx })?;
        let wait = async {
            let index = rx.await.map_err(|_| EtcdError::Stopped)??;
            let mut applied = self.applied.clone();
            applied.wait_for(|a| *a >= index).await.map_err(|_| EtcdError::Stopped)?;
            Ok(())
        };
        let read = tokio::time::timeout(self.request_timeout, wait).await.unwrap_or(Err(EtcdError::Timeout));
        if let Err(e) = &read {
            let server = &crate::metrics::get().server;
            server.read_indexes_failed.inc();
            if *e == EtcdError::Timeout {
                server.slow_read_indexes.inc();
            }
        }
        read
    }
}
