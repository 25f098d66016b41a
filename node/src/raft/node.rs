//! The Ready loop (raft-rs's recipe): take messages and proposals, tick, then for each Ready
//! hand committed entries to the applier, persist new entries and hard state to the WAL with
//! one fsync, answer read states, advance.
//!
//! Group commit falls out of the loop's shape: while one fsync runs, proposals queue up, and
//! the next pass drains them all into one Ready and one fsync.

use super::handle::RaftHandle;
use super::RaftStatus;
use crate::apply::{Applier, ApplyResult};
use crate::grpc::status::EtcdError;
use crate::metrics::Histogram;
use crate::storage::backend::Backend;
use crate::storage::wal::Wal;
use crate::wait::Waiters;
use raft::eraftpb::{Entry, SnapshotMetadata};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole, Storage};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Queue bounds: proposals waiting for the loop, and committed batches waiting for the applier.
const PROPOSAL_QUEUE: usize = 16 * 1024;
const APPLY_QUEUE: usize = 1024;

pub enum Msg {
    Propose { id: u64, data: Vec<u8> },
    ReadIndex { reply: oneshot::Sender<Result<u64, EtcdError>> },
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
}

pub struct Started {
    pub handle: RaftHandle,
    /// Both threads end when every handle is dropped; joining them waits for the last
    /// applied entry to be flushed.
    pub threads: Vec<JoinHandle<()>>,
}

pub fn spawn(
    cfg: NodeConfig,
    storage: MemStorage,
    wal: Wal,
    backend: Arc<Backend>,
    applier: Applier,
    applied: watch::Receiver<u64>,
    waiters: Arc<Waiters>,
) -> anyhow::Result<Started> {
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
    let mut raw = RawNode::new(&raft_cfg, storage, &logger)?;
    let voters = raw.raft.prs().conf().voters().ids().iter().collect::<Vec<_>>();
    if voters == [cfg.id] {
        // Alone in the cluster: nobody to wait for, elect ourselves now.
        raw.campaign()?;
    }
    let status = Arc::new(RaftStatus::default());
    let (tx, rx) = mpsc::sync_channel(PROPOSAL_QUEUE);
    let (apply_tx, apply_rx) = mpsc::sync_channel::<Vec<Entry>>(APPLY_QUEUE);
    let durable_applied = Arc::new(AtomicU64::new(applied_index));
    let progress = Arc::new(AtomicU64::new(applied_index));

    let applier_thread = {
        let (durable, progress, status) = (durable_applied.clone(), progress.clone(), status.clone());
        let snapshot_count = cfg.snapshot_count;
        std::thread::Builder::new()
            .name("cairn-apply".into())
            .spawn(move || run_applier(applier, apply_rx, backend, snapshot_count, durable, progress, status))?
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

fn run_applier(
    mut applier: Applier,
    rx: Receiver<Vec<Entry>>,
    backend: Arc<Backend>,
    snapshot_count: u64,
    durable: Arc<AtomicU64>,
    progress: Arc<AtomicU64>,
    status: Arc<RaftStatus>,
) {
    let mut last_flushed = durable.load(Ordering::Relaxed);
    let mut last = last_flushed;
    loop {
        // With compaction garbage left, poll so the cleanup proceeds between batches.
        let wait = if applier.has_garbage() { Duration::ZERO } else { Duration::from_secs(1) };
        match rx.recv_timeout(wait) {
            Ok(entries) => {
                applier.apply(&entries);
                if let Some(e) = entries.last() {
                    last = last.max(e.index);
                }
                progress.store(last, Ordering::Release);
                status.applied.store(last, Ordering::Relaxed);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Err(e) = applier.collect_garbage() {
            tracing::error!(error = %e, "deleting compacted records failed; stopping");
            std::process::abort();
        }
        if last - last_flushed >= snapshot_count {
            // The WAL may only drop entries the backend holds on disk.
            if let Err(e) = backend.flush() {
                tracing::error!(error = %e, "backend flush failed; stopping");
                std::process::abort();
            }
            last_flushed = last;
            durable.store(last, Ordering::Release);
        }
    }
    if let Err(e) = backend.flush() {
        tracing::error!(error = %e, "final backend flush failed");
    }
}

struct RaftNode {
    raw: RawNode<MemStorage>,
    wal: Wal,
    rx: Receiver<Msg>,
    apply_tx: SyncSender<Vec<Entry>>,
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
                tracing::error!(error = %e, "raft ready handling failed; stopping");
                std::process::abort();
            }
            self.compact_log();
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
        }
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
        self.send_to_applier(ready.take_committed_entries())?;
        if !ready.entries().is_empty() {
            self.wal.append_entries(ready.entries())?;
            self.raw.mut_store().wl().append(ready.entries())?;
        }
        if let Some(hs) = ready.hs() {
            self.wal.save_hard_state(hs)?;
            self.raw.mut_store().wl().set_hardstate(hs.clone());
        }
        if ready.must_sync() || !ready.entries().is_empty() {
            self.sync_wal()?;
        }
        for rs in ready.take_read_states() {
            let ctx = u64::from_be_bytes(rs.request_ctx.as_slice().try_into().unwrap_or_default());
            for reply in self.pending_reads.remove(&ctx).unwrap_or_default() {
                let _ = reply.send(Ok(rs.index));
            }
        }
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            let mut hs = self.raw.store().rl().hard_state().clone();
            hs.commit = commit;
            self.raw.mut_store().wl().set_hardstate(hs.clone());
            // Not synced on its own: the commit index is recoverable (applied implies committed).
            self.wal.save_hard_state(&hs)?;
        }
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
        self.apply_tx.send(entries).map_err(|_| anyhow::anyhow!("applier stopped"))
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
            self.raw.mut_store().wl().compact(durable)?;
            Ok(())
        })();
        match result {
            Ok(()) => self.snapshot_index = durable,
            Err(e) => tracing::warn!(error = %e, index = durable, "raft log compaction failed"),
        }
    }
}
