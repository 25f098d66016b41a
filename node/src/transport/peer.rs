//! The task that delivers one peer's messages: one client stream at a time, reconnecting with
//! backoff, trying the peer's URLs in turn. Snapshots are streamed on the side so a long
//! transfer never holds up heartbeats.

use super::Transport;
use crate::proto::cairnpb::peer_client::PeerClient;
use crate::proto::cairnpb::{RaftFrame, SnapshotChunk};
use crate::raft::Outgoing;
use cairn_api::dial::DialOptions;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

const SNAPSHOT_CHUNK: usize = 1 << 20;
/// How often the round trip to a connected peer is measured (etcd probes every few seconds).
const PROBE_INTERVAL: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A connection to a peer URL (http or https, or a unix socket), as `dial` says: connections
/// leave from this member's own peer address when it listens on one (so the traffic between
/// two members on 127.0.0.x can be told apart, and cut, by address), with peer TLS.
pub async fn connect(url: &str, dial: &DialOptions) -> Result<Channel, cairn_api::dial::DialError> {
    let opts = DialOptions {
        connect_timeout: Duration::from_secs(1),
        keep_alive: Some(Duration::from_secs(5)),
        ..dial.clone()
    };
    cairn_api::dial::connect(url, &opts).await
}

pub async fn run(t: Arc<Transport>, id: u64, urls: Vec<String>, mut rx: mpsc::Receiver<Outgoing>) {
    let mut backoff = Duration::from_millis(50);
    let mut attempt = 0usize;
    let mut refused: Option<String> = None;
    let series = PeerSeries::new(t.member_id, id);
    // Connected even when raft is quiet: keep-alives tell the peer this member is up.
    while !rx.is_closed() {
        let url = &urls[attempt % urls.len()];
        attempt += 1;
        let channel = match connect(url, &t.dial).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(peer = %format!("{id:x}"), %url, error = %e, "peer unreachable");
                if let Some(raft) = t.raft() {
                    raft.report_unreachable(id);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                // What queued meanwhile is stale; raft resends what it still needs.
                while rx.try_recv().is_ok() {
                    series.sent_failures.inc();
                }
                continue;
            }
        };
        let started = std::time::Instant::now();
        let probe = tokio::spawn(probe(channel.clone(), series.rtt.clone()));
        series.active.set(1);
        let ended = stream(&t, id, channel, &mut rx, &series).await;
        series.active.set(0);
        series.disconnected.inc();
        probe.abort();
        match ended {
            Ended::Closed => return,
            Ended::Broken(Some(status)) => note_refusal(id, &mut refused, &status),
            Ended::Broken(None) => {}
        }
        // A stream refused at once (a peer shutting down, or of another cluster) is retried
        // with backoff; one that ran a while is retried at once.
        if started.elapsed() < MAX_BACKOFF {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else {
            backoff = Duration::from_millis(50);
        }
    }
}

/// A peer refusing this member's certificate is logged in Go's words, as etcd logs it, once
/// per reason.
fn note_refusal(id: u64, last: &mut Option<String>, status: &tonic::Status) {
    let Some(why) = crate::tls::alerts::remote_error(status) else { return };
    if last.as_deref() != Some(why.as_str()) {
        tracing::warn!(peer = %format!("{id:x}"), "the peer refused the connection: {why}");
        *last = Some(why);
    }
}

enum Ended {
    /// With the call's error, if it ended with one.
    Broken(Option<tonic::Status>),
    /// The peer left the peer set.
    Closed,
}

/// Sends on one stream until it breaks, with a keep-alive frame whenever raft was quiet for
/// a while.
async fn stream(
    t: &Arc<Transport>,
    id: u64,
    channel: Channel,
    rx: &mut mpsc::Receiver<Outgoing>,
    series: &PeerSeries,
) -> Ended {
    let (tx, frames) = mpsc::channel(256);
    let mut client = PeerClient::new(channel.clone());
    let mut keepalive = tokio::time::interval(super::KEEPALIVE);
    // Queued before the call: a gRPC server may send nothing until it has a request.
    let call = async move { client.raft(ReceiverStream::new(frames)).await };
    tokio::pin!(call);
    let ended = loop {
        let m = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => return Ended::Closed,
            },
            _ = keepalive.tick() => Outgoing { to: id, message: Vec::new(), image: None, snapshot_index: 0 },
            r = &mut call => break r.map(|_| ()),
        };
        if let Some(image) = m.image.clone() {
            tokio::spawn(send_snapshot(t.clone(), id, channel.clone(), m, image));
            continue;
        }
        series.sent.inc_by(m.message.len() as u64);
        let frame = RaftFrame { cluster_id: t.cluster_id, message: m.message, from: t.member_id };
        tokio::select! {
            // The frames stream is gone only once the call is over.
            sent = tx.send(frame) => if sent.is_err() { break Ok(()) },
            r = &mut call => break r.map(|_| ()),
        }
        keepalive.reset();
    };
    tracing::debug!(peer = %format!("{id:x}"), result = ?ended, "peer stream ended");
    if matches!(&ended, Err(s) if s.message() == super::REMOVED) {
        tracing::warn!(peer = %format!("{id:x}"), "{}", super::REMOVED);
        t.removed.send_replace(true);
    }
    if let Some(raft) = t.raft() {
        raft.report_unreachable(id);
    }
    Ended::Broken(ended.err())
}

/// This member's etcd_network_* series for one peer it sends to.
struct PeerSeries {
    sent: Counter,
    sent_failures: Counter,
    rtt: Histogram,
    active: Gauge,
    disconnected: Counter,
}

impl PeerSeries {
    fn new(local: u64, peer: u64) -> PeerSeries {
        let n = &crate::metrics::get().network;
        let to = [("To", format!("{peer:x}"))];
        let pair = [("Local", format!("{local:x}")), ("Remote", format!("{peer:x}"))];
        PeerSeries {
            sent: n.peer_sent_bytes.get_or_create_owned(&to),
            sent_failures: n.peer_sent_failures.get_or_create_owned(&to),
            rtt: n.peer_round_trip_time.get_or_create_owned(&to),
            active: n.active_peers.get_or_create_owned(&pair),
            disconnected: n.disconnected_peers.get_or_create_owned(&pair),
        }
    }
}

/// Measures the round trip to the peer with a small unary call, until aborted.
async fn probe(channel: Channel, rtt: Histogram) {
    let mut client = PeerClient::new(channel);
    let mut every = tokio::time::interval(PROBE_INTERVAL);
    loop {
        every.tick().await;
        let started = std::time::Instant::now();
        if client.members(crate::proto::cairnpb::MembersRequest {}).await.is_ok() {
            rtt.observe(started.elapsed().as_secs_f64());
        }
    }
}

async fn send_snapshot(t: Arc<Transport>, id: u64, channel: Channel, m: Outgoing, image: std::path::PathBuf) {
    let result = stream_image(&t, channel, &m, &image).await;
    if let Err(e) = &result {
        tracing::warn!(peer = %format!("{id:x}"), error = %e, "sending a snapshot failed");
    } else {
        tracing::info!(peer = %format!("{id:x}"), index = m.snapshot_index, "snapshot sent");
    }
    if let Some(raft) = t.raft() {
        raft.report_snapshot(id, result.is_ok());
    }
}

/// Why a snapshot did not reach a peer.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("reading the image: {0}")]
    Image(#[from] std::io::Error),
    #[error("the peer: {0}")]
    Peer(#[from] tonic::Status),
    #[error("the stream to the peer ended early")]
    Ended,
}

async fn stream_image(t: &Transport, channel: Channel, m: &Outgoing, image: &Path) -> Result<(), SendError> {
    let mut file = tokio::fs::File::open(image).await?;
    let (tx, chunks) = mpsc::channel(4);
    tx.send(SnapshotChunk {
        cluster_id: t.cluster_id,
        message: m.message.clone(),
        index: m.snapshot_index,
        data: Vec::new(),
    })
    .await
    .map_err(|_| SendError::Ended)?;
    let call = tokio::spawn(async move { PeerClient::new(channel).snapshot(ReceiverStream::new(chunks)).await });
    loop {
        let mut buf = vec![0u8; SNAPSHOT_CHUNK];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        if tx.send(SnapshotChunk { data: buf, ..Default::default() }).await.is_err() {
            break;
        }
    }
    drop(tx);
    call.await.map_err(|_| SendError::Ended)??;
    Ok(())
}
