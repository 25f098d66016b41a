//! How gRPC handlers reach raft: propose a request and wait for its result, or wait for a
//! linearizable read point. The queue to the Ready loop is bounded; a full queue answers
//! "too many requests" instead of growing.

use super::node::Msg;
use super::RaftStatus;
use crate::apply::ApplyResult;
use crate::grpc::status::EtcdError;
use crate::proto::cairnpb::{internal_request::Request, InternalRequest};
use crate::wait::Waiters;
use prost::Message;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

#[derive(Clone)]
pub struct RaftHandle {
    pub(super) tx: SyncSender<Msg>,
    pub(super) waiters: Arc<Waiters>,
    pub(super) applied: watch::Receiver<u64>,
    pub(super) status: Arc<RaftStatus>,
    pub(super) request_timeout: Duration,
    pub(super) max_request_bytes: usize,
}

impl RaftHandle {
    pub fn status(&self) -> &RaftStatus {
        &self.status
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

    /// Replicates `request` and returns what applying it produced.
    pub async fn propose(&self, request: Request) -> ApplyResult {
        let (id, rx) = self.waiters.register();
        let data = InternalRequest { id, request: Some(request) }.encode_to_vec();
        if data.len() > self.max_request_bytes {
            self.waiters.forget(id);
            return Err(EtcdError::RequestTooLarge);
        }
        if !self.status.has_leader() {
            self.waiters.forget(id);
            return Err(EtcdError::NoLeader);
        }
        if let Err(e) = self.send(Msg::Propose { id, data }) {
            self.waiters.forget(id);
            return Err(e);
        }
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(EtcdError::Stopped),
            Err(_) => {
                self.waiters.forget(id);
                Err(EtcdError::Timeout)
            }
        }
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
        tokio::time::timeout(self.request_timeout, wait).await.unwrap_or(Err(EtcdError::Timeout))
    }
}
