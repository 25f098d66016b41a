//! The Ready loop (raft-rs's recipe): take messages and proposals, tick, then for each Ready
//! hand committed entries to the applier, persist new entries and hard state to the WAL with
//! one fsync, answer read states, advance.
//!
//! Group commit falls out of the loop's shape: while one fsync runs, proposals queue up, and
//! the next pass drains them all into one Ready and one fsync.

use super::handle::RaftHandle;
use super::storage::{ImageSlot, LogStorage};
use super::{Network, Outgoing, RaftStatus};
use crate::apply::{Applier, ApplyResult};
use crate::grpc::status::EtcdError;
use crate::metrics::Histogram;
use crate::storage::backend::Backend;
use crate::storage::wal::Wal;
use crate::wait::Waiters;
use raft::eraftpb::{ConfChange, Entry, Message, MessageType, Snapshot, SnapshotMetadata};
use raft::storage::MemStorage;
use raft::{RawNode, SnapshotStatus, StateRole, Storage};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Queue bounds: proposals waiting for the loop, and committed batches waiting for the applier.
const PROPOSAL_QUEUE: usize = 16 * 1024;
const APPLY_QUEUE: usize = 1024;
/// Entries kept in the in-memory log behind the last snapshot, for slow followers.
const CATCH_UP_ENTRIES: u64 = 5000;

pub enum Msg {
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
    /// Work for the applier between two batches (a client's snapshot, a defragmentation),
    /// queued behind the entries handed over before it.
    ForApplier(ApplyItem),
}

/// What the applier thread is handed, in raft order.
pub enum ApplyItem {
    Entries(Vec<Entry>),
    /// Replace the state with a snapshot's image, as of `index`.
    Install {
        index: u64,
        image: PathBuf,
    },
    /// Write an image of the backend as of the last applied entry, for a snapshot to send.
    BuildImage,
    /// The same for a client (Maintenance.Snapshot): to `path`, answered when done.
    WriteImage {
        path: PathBuf,
        reply: oneshot::Sender<Result<u64, String>>,
    },
    /// Rewrite the backend into a compact copy (Maintenance.Defragment).
    Defragment {
        reply: oneshot::Sender<Result<(u64, u64), String>>,
    },
    /// Hash every record (Maintenance.Hash).
    Hash {
        reply: oneshot::Sender<Result<u32, String>>,
    },
}

pub struct NodeConfig {
    pub id: u64,
    pub tick: Duration,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    pub snapshot_count: u64,
    pub request_timeout: Duration,
    pub max_request_bytes: usize,
    pub wal_fsync: Arc<Histogram>,
    /// Where backend images for snapshots are kept.
    pub snap_dir: PathBuf,
}

pub struct Started {
    pub handle: RaftHandle,
    /// Both threads end when every handle is dropped; joining them waits for the last
    /// applied entry to be flushed.
    pub threads: Vec<JoinHandle<()>>,
}

/// What the raft loop and the applier are built from.
pub struct Parts {
    pub storage: MemStorage,
    pub wal: Wal,
    pub backend: Arc<Backend>,
    pub applier: Applier,
    pub applied: watch::Receiver<u64>,
    pub waiters: Arc<Waiters>,
    pub network: Arc<dyn Network>,
}

pub fn spawn(cfg: NodeConfig, parts: Parts) -> anyhow::Result<Started> {
    let Parts { storage, wal, backend, applier, applied, waiters, network } = parts;
    let applied_index = *applied.borrow();
    let snapshot_index = storage.first_index()?.saturating_sub(1);
    let raft_cfg = raft::Config {
        id: cfg.id,
        election_tick: cfg.election_ticks,
        heartbeat_tick: cfg.heartbeat_ticks,
        applied: applied_index.max(snapshot_index),
        check_quorum: true,
        pre_vote: true,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        ..Default::default()
    };
    raft_cfg.validate()?;
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let image = Arc::new(Mutex::new(ImageSlot::default()));
    let storage = LogStorage { mem: storage, image: image.clone() };
    let mut raw = RawNode::new(&raft_cfg, storage, &logger)?;
    let voters = raw.raft.prs().conf().voters().ids().iter().collect::<Vec<_>>();
    if voters == [cfg.id] {
        // Alone in the cluster: nobody to wait for, elect ourselves now.
        raw.campaign()?;
    }
    let status = Arc::new(RaftStatus::default());
    let (tx, rx) = mpsc::sync_channel(PROPOSAL_QUEUE);
    let (apply_tx, apply_rx) = mpsc::sync_channel::<ApplyItem>(APPLY_QUEUE);
    let durable_applied = Arc::new(AtomicU64::new(applied_index));
    let progress = Arc::new(AtomicU64::new(applied_index));
    let (conf_tx, conf_rx) = mpsc::channel();

    let applier_thread = {
        let (durable, progress, status) = (durable_applied.clone(), progress.clone(), status.clone());
        let shared = ApplierShared {
            backend,
            snapshot_count: cfg.snapshot_count,
            durable,
            progress,
            status,
            image: image.clone(),
            snap_dir: cfg.snap_dir.clone(),
            conf_changes: conf_tx,
        };
        std::thread::Builder::new().name("cairn-apply".into()).spawn(move || run_applier(applier, apply_rx, shared))?
    };
    let node = RaftNode {
        raw,
        wal,
        rx,
        apply_tx,
        waiters: waiters.clone(),
        status: status.clone(),
        pending_reads: HashMap::new(),
        next_read: 0,
        progress,
        durable_applied,
        snapshot_index,
        snapshot_count: cfg.snapshot_count,
        tick: cfg.tick,
        wal_fsync: cfg.wal_fsync.clone(),
        network,
        snap_dir: cfg.snap_dir.clone(),
        conf_changes: conf_rx,
        deferred_conf: Default::default(),
    };
    node.publish_status();
    let loop_thread = std::thread::Builder::new().name("cairn-raft".into()).spawn(move || node.run())?;
    let handle = RaftHandle {
        tx,
        waiters,
        applied,
        status,
        request_timeout: cfg.request_timeout,
        max_request_bytes: cfg.max_request_bytes,
    };
    Ok(Started { handle, threads: vec![loop_thread, applier_thread] })
}

struct ApplierShared {
    backend: Arc<Backend>,
    snapshot_count: u64,
    durable: Arc<AtomicU64>,
    progress: Arc<AtomicU64>,
    status: Arc<RaftStatus>,
    image: Arc<Mutex<ImageSlot>>,
    snap_dir: PathBuf,
    /// Conf changes the applier accepted, for raft to apply in order. The loop takes them
    /// on its next pass (within a tick): a sender of its own queue here would keep it from
    /// ever seeing the last handle go, and so from stopping.
    conf_changes: mpsc::Sender<ConfChange>,
}

fn fatal(what: &str, e: impl std::fmt::Display) -> ! {
    crate::fatal::stop(what, &e)
}

fn run_applier(mut applier: Applier, rx: Receiver<ApplyItem>, sh: ApplierShared) {
    let mut last_flushed = sh.durable.load(Ordering::Relaxed);
    let mut last = last_flushed;
    loop {
        // With compaction garbage left, poll so the cleanup proceeds between batches.
        let wait = if applier.has_garbage() { Duration::ZERO } else { Duration::from_secs(1) };
        match rx.recv_timeout(wait) {
            Ok(ApplyItem::Entries(entries)) => {
                let accepted = applier.apply(&entries);
                last = last.max(applier.last_applied());
                for cc in accepted {
                    // Fails only when the raft loop is gone, that is when the server stops.
                    let _ = sh.conf_changes.send(cc);
                }
            }
            Ok(ApplyItem::Install { index, image }) => {
                if let Err(e) = applier.install(index, &image) {
                    fatal("installing a snapshot failed", e);
                }
                tracing::info!(index, "installed a snapshot");
                // The image load flushed the backend.
                last = index;
                last_flushed = index;
                sh.durable.store(index, Ordering::Release);
            }
            Ok(ApplyItem::BuildImage) => {
                let path = crate::storage::image::path(&sh.snap_dir, last);
                match crate::storage::image::write(&sh.backend, &path) {
                    Ok(bytes) => {
                        tracing::info!(index = last, bytes, "wrote a backend image for a snapshot");
                        // The configuration as of the image: what its member records say.
                        let conf = super::storage::conf_state(applier.membership());
                        sh.image.lock().unwrap_or_else(|e| e.into_inner()).built = Some((last, path, conf));
                    }
                    // Still wanted: the raft loop asks again.
                    Err(e) => tracing::warn!(error = %e, "writing a backend image failed"),
                }
                sh.image.lock().unwrap_or_else(|e| e.into_inner()).building = false;
            }
            Ok(ApplyItem::Defragment { reply }) => {
                // Between batches: nothing writes while the copy is made and switched to.
                let started = std::time::Instant::now();
                let r = sh.backend.defragment().map_err(|e| e.to_string());
                if let Ok((before, after)) = &r {
                    tracing::info!(before, after, took = ?started.elapsed(), "defragmented the backend");
                }
                let _ = reply.send(r);
            }
            Ok(ApplyItem::Hash { reply }) => {
                // Between batches, so the hash is of one point in time.
                let _ = reply.send(sh.backend.hash().map_err(|e| e.to_string()));
            }
            Ok(ApplyItem::WriteImage { path, reply }) => {
                // Between batches, so the image is one consistent point in time.
                let r = crate::storage::image::write(&sh.backend, &path).map(|_| last).map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        sh.progress.store(last, Ordering::Release);
        sh.status.applied.store(last, Ordering::Relaxed);
        if let Err(e) = applier.collect_garbage() {
            fatal("deleting compacted records failed", e);
        }
        if last - last_flushed >= sh.snapshot_count {
            // The WAL may only drop entries the backend holds on disk.
            if let Err(e) = sh.backend.flush() {
                fatal("backend flush failed", e);
            }
            last_flushed = last;
            sh.durable.store(last, Ordering::Release);
        }
    }
    if let Err(e) = sh.backend.flush() {
        tracing::error!(error = %e, "final backend flush failed");
    }
}

struct RaftNode {
    raw: RawNode<LogStorage>,
    wal: Wal,
    rx: Receiver<Msg>,
    apply_tx: SyncSender<ApplyItem>,
    waiters: Arc<Waiters>,
    status: Arc<RaftStatus>,
    /// ReadIndex requests in flight, by the context raft echoes back.
    pending_reads: HashMap<u64, Vec<oneshot::Sender<Result<u64, EtcdError>>>>,
    next_read: u64,
    progress: Arc<AtomicU64>,
    durable_applied: Arc<AtomicU64>,
    snapshot_index: u64,
    snapshot_count: u64,
    tick: Duration,
    wal_fsync: Arc<Histogram>,
    network: Arc<dyn Network>,
    snap_dir: PathBuf,
    conf_changes: Receiver<ConfChange>,
    /// Conf changes proposed here, waiting for the one before them to be applied.
    deferred_conf: std::collections::VecDeque<(u64, ConfChange)>,
}

impl RaftNode {
    fn run(mut self) {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let mut reads = Vec::new();
            match self.rx.recv_timeout(wait) {
                Ok(m) => self.take(m, &mut reads),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while let Ok(m) = self.rx.try_recv() {
                self.take(m, &mut reads);
            }
            while let Ok(cc) = self.conf_changes.try_recv() {
                if let Err(e) = self.raw.apply_conf_change(&cc) {
                    fatal(&format!("raft refused a conf change the members accepted ({cc:?})"), e);
                }
            }
            self.propose_conf_changes();
            if !reads.is_empty() {
                // One ReadIndex serves every read that arrived in this pass.
                self.next_read += 1;
                self.pending_reads.insert(self.next_read, reads);
                self.raw.read_index(self.next_read.to_be_bytes().to_vec());
            }
            if Instant::now() >= next_tick {
                self.raw.tick();
                next_tick = Instant::now() + self.tick;
                if self.raw.raft.leader_id == 0 {
                    // Reads issued while there is no leader are dropped by raft; fail them
                    // now rather than at their timeout.
                    for reply in self.pending_reads.drain().flat_map(|(_, w)| w) {
                        let _ = reply.send(Err(EtcdError::NoLeader));
                    }
                }
            }
            if let Err(e) = self.on_ready() {
                fatal("writing the raft log failed", format!("{e:#}"));
            }
            self.compact_log();
            self.serve_image_requests();
        }
        tracing::info!("raft loop stopped");
    }

    fn take(&mut self, m: Msg, reads: &mut Vec<oneshot::Sender<Result<u64, EtcdError>>>) {
        match m {
            Msg::Propose { id, data } => {
                if self.raw.propose(vec![], data).is_err() {
                    self.waiters.trigger(id, ApplyResult::Err(EtcdError::NoLeader));
                }
            }
            Msg::ReadIndex { reply } => reads.push(reply),
            Msg::Step(bytes) => self.step(&bytes, None),
            Msg::StepSnapshot(bytes, image) => self.step(&bytes, Some(image)),
            Msg::Unreachable(id) => self.raw.report_unreachable(id),
            Msg::SnapshotStatus(id, ok) => {
                self.raw.report_snapshot(id, if ok { SnapshotStatus::Finish } else { SnapshotStatus::Failure })
            }
            Msg::ProposeConfChange { id, cc } => self.deferred_conf.push_back((id, cc)),
            Msg::Progress { member, reply } => {
                let r = &self.raw.raft;
                let matched = |id| r.prs().get(id).map(|p| p.matched);
                let answer = if r.state == StateRole::Leader { matched(member).zip(matched(r.id)) } else { None };
                let _ = reply.send(answer);
            }
            Msg::TransferLeader(to) => self.raw.transfer_leader(to),
            // With the applier gone the item's reply is dropped: the caller sees "stopped".
            Msg::ForApplier(item) => {
                let _ = self.apply_tx.send(item);
            }
        }
    }

    /// raft-rs turns a conf change proposed while another is not yet applied into an empty
    /// entry that nobody answers; on the leader such proposals wait here for their turn.
    fn propose_conf_changes(&mut self) {
        let leader = self.raw.raft.state == StateRole::Leader;
        while !(leader && self.raw.raft.has_pending_conf()) {
            let Some((id, cc)) = self.deferred_conf.pop_front() else { return };
            if self.raw.propose_conf_change(vec![], cc).is_err() {
                self.waiters.trigger(id, ApplyResult::Err(EtcdError::NoLeader));
            }
        }
    }

    fn step(&mut self, bytes: &[u8], image: Option<PathBuf>) {
        let mut m: Message = match protobuf::Message::parse_from_bytes(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable raft message from a peer");
                return;
            }
        };
        if let Some(path) = image {
            m.mut_snapshot().data = path.to_string_lossy().into_owned().into_bytes().into();
        }
        // Messages of removed members or stale terms are refused by raft; nothing to do.
        let _ = self.raw.step(m);
    }

    fn send(&self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        let out = msgs
            .into_iter()
            .map(|mut m| {
                let (mut image, mut snapshot_index) = (None, 0);
                if m.get_msg_type() == MessageType::MsgSnapshot {
                    let snap = m.mut_snapshot();
                    image = Some(PathBuf::from(String::from_utf8_lossy(&snap.data).into_owned()));
                    snapshot_index = snap.get_metadata().index;
                    snap.data = Default::default();
                }
                let message = protobuf::Message::write_to_bytes(&m).unwrap_or_default();
                Outgoing { to: m.to, message, image, snapshot_index }
            })
            .collect();
        self.network.send(out);
    }

    /// Raft wants a snapshot to send: have the applier write an image; once written, offer it.
    fn serve_image_requests(&mut self) {
        let mut slot = self.raw.store().slot();
        if let Some((index, path, conf)) = slot.built.take() {
            match self.raw.store().mem.term(index) {
                Ok(term) => {
                    let mut meta = SnapshotMetadata { index, term, ..Default::default() };
                    meta.set_conf_state(conf);
                    slot.ready = Some((meta, path));
                    slot.wanted = false;
                    crate::storage::image::remove_others(&self.snap_dir, index);
                }
                // Its log entry was compacted meanwhile: build anew.
                Err(_) => slot.wanted = true,
            }
        }
        if slot.wanted && !slot.building {
            slot.building = true;
            drop(slot);
            // Fails only when the applier is gone, that is when the server stops.
            let _ = self.apply_tx.send(ApplyItem::BuildImage);
        }
    }

    /// A snapshot from the leader: record it in the WAL, reset the log to it, and have the
    /// applier load its image (in order: after every entry handed over before).
    fn install_snapshot(&mut self, snap: Snapshot) -> anyhow::Result<()> {
        let meta = snap.get_metadata().clone();
        let image = PathBuf::from(String::from_utf8_lossy(&snap.data).into_owned());
        self.wal.save_snapshot(&meta)?;
        self.sync_wal()?;
        self.raw.mut_store().mem.wl().apply_snapshot(snap)?;
        self.apply_tx
            .send(ApplyItem::Install { index: meta.index, image: image.clone() })
            .map_err(|_| anyhow::anyhow!("applier stopped"))?;
        self.snapshot_index = meta.index;
        crate::storage::image::remove_others(&self.snap_dir, meta.index);
        // The image stays until a newer one replaces it: a restart before the applier is done
        // loads it again, and it can serve the next follower that needs a snapshot.
        self.raw.store().slot().ready = Some((meta, image));
        Ok(())
    }

    fn on_ready(&mut self) -> anyhow::Result<()> {
        // Tell raft how far the applier got (it applies on its own thread).
        let applied = self.progress.load(Ordering::Acquire);
        if applied > self.raw.raft.raft_log.applied && applied <= self.raw.raft.raft_log.committed {
            self.raw.advance_apply_to(applied);
        }
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        // A leader's messages may go before its own entries are durable (raft's thesis, 10.2.1).
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot().clone())?;
        }
        self.send_to_applier(ready.take_committed_entries())?;
        if !ready.entries().is_empty() {
            self.wal.append_entries(ready.entries())?;
            self.raw.mut_store().mem.wl().append(ready.entries())?;
        }
        if let Some(hs) = ready.hs() {
            self.wal.save_hard_state(hs)?;
            self.raw.mut_store().mem.wl().set_hardstate(hs.clone());
        }
        if ready.must_sync() || !ready.entries().is_empty() {
            self.sync_wal()?;
        }
        // Votes and appends answered only once what they promise is on disk.
        self.send(ready.take_persisted_messages());
        for rs in ready.take_read_states() {
            let ctx = u64::from_be_bytes(rs.request_ctx.as_slice().try_into().unwrap_or_default());
            for reply in self.pending_reads.remove(&ctx).unwrap_or_default() {
                let _ = reply.send(Ok(rs.index));
            }
        }
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            let mut hs = self.raw.store().mem.rl().hard_state().clone();
            hs.commit = commit;
            self.raw.mut_store().mem.wl().set_hardstate(hs.clone());
            // Not synced on its own: the commit index is recoverable (applied implies committed).
            self.wal.save_hard_state(&hs)?;
        }
        self.send(light.take_messages());
        self.send_to_applier(light.take_committed_entries())?;
        self.publish_status();
        Ok(())
    }

    fn sync_wal(&mut self) -> anyhow::Result<()> {
        let t = Instant::now();
        self.wal.sync()?;
        self.wal_fsync.observe(t.elapsed());
        Ok(())
    }

    fn send_to_applier(&mut self, entries: Vec<Entry>) -> anyhow::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.apply_tx.send(ApplyItem::Entries(entries)).map_err(|_| anyhow::anyhow!("applier stopped"))
    }

    fn publish_status(&self) {
        let r = &self.raw.raft;
        self.status.term.store(r.term, Ordering::Relaxed);
        self.status.leader.store(r.leader_id, Ordering::Relaxed);
        self.status.commit.store(r.raft_log.committed, Ordering::Relaxed);
        self.status.is_leader.store(r.state == StateRole::Leader, Ordering::Relaxed);
    }

    /// Once the backend has flushed `snapshot_count` more entries, the log before them is
    /// only history: record a snapshot marker and drop what it covers.
    fn compact_log(&mut self) {
        let durable = self.durable_applied.load(Ordering::Acquire);
        if durable < self.snapshot_index + self.snapshot_count || durable == 0 {
            return;
        }
        let result = (|| -> anyhow::Result<()> {
            let term = self.raw.store().term(durable)?;
            let mut meta = SnapshotMetadata { index: durable, term, ..Default::default() };
            meta.set_conf_state(self.raw.raft.prs().conf().to_conf_state());
            self.wal.save_snapshot(&meta)?;
            self.sync_wal()?;
            self.wal.release_to(durable)?;
            // Kept in memory a while longer: a follower a little behind catches up from
            // entries instead of a whole snapshot (etcd keeps 5000 too).
            let keep_from = durable.saturating_sub(CATCH_UP_ENTRIES);
            if keep_from >= self.raw.store().first_index()? {
                self.raw.mut_store().mem.wl().compact(keep_from)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => self.snapshot_index = durable,
            Err(e) => tracing::warn!(error = %e, index = durable, "raft log compaction failed"),
        }
    }
}
