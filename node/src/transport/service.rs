//! The receiving side, served on the peer URLs: frames go to raft as they come; a snapshot's
//! image is written to the snapshot dir first and handed to raft once complete.

use super::Transport;
use crate::proto::cairnpb::peer_server::Peer;
use crate::proto::cairnpb::{MembersReply, MembersRequest, PeerAck, RaftFrame, SnapshotChunk};
use prometheus_client::metrics::counter::Counter;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

pub struct PeerService {
    transport: Arc<Transport>,
    snap_dir: PathBuf,
    /// True once the server stops: the streams of peers that go on running end then (the
    /// server's shutdown waits for every stream).
    stopping: watch::Receiver<bool>,
}

impl PeerService {
    pub fn new(transport: Arc<Transport>, snap_dir: PathBuf, stopping: watch::Receiver<bool>) -> PeerService {
        PeerService { transport, snap_dir, stopping }
    }

    fn check_cluster(&self, remote: u64) -> Result<(), Status> {
        if remote != self.transport.cluster_id {
            // etcd's words when a member of another cluster knocks.
            return Err(Status::failed_precondition(format!(
                "request cluster ID mismatch: local {:x}, remote {:x}",
                self.transport.cluster_id, remote
            )));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn raft(&self, request: Request<Streaming<RaftFrame>>) -> Result<Response<PeerAck>, Status> {
        let mut frames = request.into_inner();
        let mut stopping = self.stopping.clone();
        // This stream's sender's series, once its first frame names it.
        let mut series: Option<(u64, Counter)> = None;
        let network = &crate::metrics::get().network;
        loop {
            let f = tokio::select! {
                f = frames.message() => match f {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        if let Some((from, _)) = &series {
                            network.peer_received_failures.get_or_create(&[("From", format!("{from:x}"))]).inc();
                        }
                        return Err(e);
                    }
                },
                _ = stopping.wait_for(|s| *s) => return Err(Status::unavailable("the member is stopping")),
            };
            self.check_cluster(f.cluster_id)?;
            if self.transport.membership.is_removed(f.from) {
                return Err(Status::failed_precondition(super::REMOVED));
            }
            self.transport.heard_from(f.from);
            if series.as_ref().is_none_or(|(from, _)| *from != f.from) {
                let received = network.peer_received_bytes.get_or_create_owned(&[("From", format!("{:x}", f.from))]);
                series = Some((f.from, received));
            }
            if let Some((_, received)) = &series {
                received.inc_by(f.message.len() as u64);
            }
            if f.message.is_empty() {
                // A keep-alive: the peer is up, raft has nothing to say.
                continue;
            }
            let Some(raft) = self.transport.raft() else { continue };
            raft.step(f.message);
        }
        Ok(Response::new(PeerAck {}))
    }

    async fn members(&self, _: Request<MembersRequest>) -> Result<Response<MembersReply>, Status> {
        let members = self.transport.membership.list();
        Ok(Response::new(MembersReply { cluster_id: self.transport.cluster_id, members }))
    }

    async fn snapshot(&self, request: Request<Streaming<SnapshotChunk>>) -> Result<Response<PeerAck>, Status> {
        let mut chunks = request.into_inner();
        let first = chunks.message().await?.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        self.check_cluster(first.cluster_id)?;
        let index = first.index;
        let part = self.snap_dir.join(format!("{index:016x}.image.part"));
        let done = crate::storage::image::path(&self.snap_dir, index);
        let internal = |e: std::io::Error| Status::internal(format!("writing snapshot: {e}"));
        let mut file = tokio::fs::File::create(&part).await.map_err(internal)?;
        file.write_all(&first.data).await.map_err(internal)?;
        let mut bytes = first.data.len();
        while let Some(c) = chunks.message().await? {
            file.write_all(&c.data).await.map_err(internal)?;
            bytes += c.data.len();
        }
        file.sync_all().await.map_err(internal)?;
        drop(file);
        crate::storage::image::check(&part).map_err(|e| Status::data_loss(format!("received snapshot: {e}")))?;
        tokio::fs::rename(&part, &done).await.map_err(internal)?;
        tracing::info!(index, bytes, "received a snapshot");
        if let Some(raft) = self.transport.raft() {
            raft.step_snapshot(first.message, done);
        }
        Ok(Response::new(PeerAck {}))
    }
}
