//! Member-to-member transport on the peer URLs. Raft messages are opaque bytes here (only
//! `raft/` knows raft-rs): each peer has a bounded queue drained by a task that keeps one
//! gRPC stream open to it, reconnecting with backoff. A full queue drops messages — raft
//! resends what matters — and reports the peer unreachable so raft slows down for it.
//! Snapshots go on a stream of their own, in chunks, read from the image file.

mod peer;

pub use peer::connect as connect_peer;
mod service;

pub use service::PeerService;

use crate::membership::Membership;
use crate::raft::{Network, Outgoing, RaftHandle};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

/// Messages queued per peer before new ones are dropped.
const PEER_QUEUE: usize = 4096;

pub struct Transport {
    cluster_id: u64,
    member_id: u64,
    /// How peers are dialed: from this member's own peer address, with peer TLS.
    dial: cairn_api::dial::DialOptions,
    membership: Arc<Membership>,
    runtime: Handle,
    /// Set once raft runs (raft needs the transport to start, the transport raft's handle),
    /// and dropped at shutdown: raft stops once the last handle is gone.
    raft: Mutex<Option<RaftHandle>>,
    peers: Mutex<HashMap<u64, Peer>>,
    /// Turns true when a peer said this member was removed from the cluster.
    removed: watch::Sender<bool>,
    /// Per peer: since when it has been heard from without a gap, and when last.
    heard: Mutex<HashMap<u64, (Instant, Instant)>>,
}

/// Every stream carries a frame at least this often (an empty one when raft is quiet), so
/// each member knows which peers are up, as etcd's always-open streams tell it.
pub const KEEPALIVE: Duration = Duration::from_millis(500);
/// Silence this long ends a peer's run of being heard.
const SILENCE: Duration = Duration::from_secs(2);

/// What a member tells a removed member that still sends it messages (etcd's words).
pub const REMOVED: &str = "the member has been permanently removed from the cluster";

struct Peer {
    urls: Vec<String>,
    queue: mpsc::Sender<Outgoing>,
}

impl Transport {
    pub fn new(
        cluster_id: u64,
        membership: Arc<Membership>,
        dial: cairn_api::dial::DialOptions,
        runtime: Handle,
    ) -> Arc<Transport> {
        Arc::new(Transport {
            cluster_id,
            member_id: membership.me(),
            dial,
            membership,
            runtime,
            raft: Mutex::new(None),
            peers: Mutex::new(HashMap::new()),
            removed: watch::Sender::new(false),
            heard: Mutex::new(HashMap::new()),
        })
    }

    fn heard_from(&self, peer: u64) {
        let now = Instant::now();
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        let e = heard.entry(peer).or_insert((now, now));
        if now.duration_since(e.1) > SILENCE {
            e.0 = now;
        }
        e.1 = now;
    }

    /// Since when `peer` has been heard from without a gap; None if it is silent now.
    pub fn active_since(&self, peer: u64) -> Option<Instant> {
        let heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        heard.get(&peer).filter(|(_, last)| last.elapsed() <= SILENCE).map(|(since, _)| *since)
    }

    /// Resolves once a peer said this member was removed.
    pub async fn removed(&self) {
        let _ = self.removed.subscribe().wait_for(|r| *r).await;
    }

    pub fn attach(&self, raft: RaftHandle) {
        *self.raft.lock().unwrap_or_else(|e| e.into_inner()) = Some(raft);
    }

    /// At shutdown: no more messages in or out.
    pub fn detach(&self) {
        self.raft.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn raft(&self) -> Option<RaftHandle> {
        self.raft.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes the peer set the member list (every member but this one): new members get a
    /// sender task, gone ones lose theirs, changed URLs restart it.
    pub fn sync_peers(self: &Arc<Self>) {
        let peers: Vec<(u64, Vec<String>)> = self
            .membership
            .list()
            .into_iter()
            .filter(|m| m.id != self.member_id)
            .map(|m| (m.id, m.peer_urls))
            .collect();
        let mut current = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        current.retain(|id, p| peers.iter().any(|(i, urls)| i == id && *urls == p.urls));
        for (id, urls) in peers {
            if current.contains_key(&id) || urls.is_empty() {
                continue;
            }
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            self.runtime.spawn(peer::run(self.clone(), id, urls.clone(), rx));
            current.insert(id, Peer { urls, queue: tx });
        }
    }
}

impl Network for Transport {
    fn send(&self, out: Vec<Outgoing>) {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        for m in out {
            let to = m.to;
            let Some(p) = peers.get(&to) else { continue };
            if p.queue.try_send(m).is_err() {
                let label = [("To", format!("{to:x}"))];
                crate::metrics::get().network.peer_sent_failures.get_or_create(&label).inc();
                if let Some(raft) = self.raft() {
                    raft.report_unreachable(to);
                }
            }
        }
    }
}
