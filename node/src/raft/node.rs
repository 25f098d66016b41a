//! The Ready loop, raft-rs's recipe: take messages and proposals, tick, then for each Ready
//! do its numbered steps (the comments in `on_ready` follow raft-rs's numbering): send
//! messages, install a snapshot, hand committed entries to the applier, persist new entries
//! and hard state to the WAL with one fsync, send the messages that needed them on disk,
//! advance. The applier runs on its own thread (`apply::spawn`); this loop only hands it
//! committed entries, in Cairn's own type.
//!
//! Group commit falls out of the loop's shape: while one fsync runs, proposals queue up, and
//! the next pass drains them all into one Ready and one fsync.

use super::handle::{Msg, RaftHandle};
use super::log::RaftLog;
use super::storage::{ImageSlot, LogStorage};
use super::{Network, Outgoing, RaftStatus};
use crate::apply::{ApplierEvent, ApplierHandle, ApplyResult, Committed, Payload};
use crate::error::EtcdError;
use crate::membership::Change;
use crate::proto::cairnpb::{ConfChangeContext, MemberRecord};
use crate::wait::Waiters;
use prost::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata};
use raft::{RawNode, SnapshotStatus, StateRole, Storage};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Proposals waiting for the loop.
const PROPOSAL_QUEUE: usize = 16 * 1024;
/// Entries kept in the in-memory log behind the last snapshot, for slow followers.
const CATCH_UP_ENTRIES: u64 = 5000;

pub struct NodeConfig {
    pub id: u64,
    pub tick: Duration,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    pub snapshot_count: u64,
    pub request_timeout: Duration,
    pub max_request_bytes: usize,
    /// Where backend images for snapshots are kept.
    pub snap_dir: PathBuf,
}

pub struct Started {
    pub handle: RaftHandle,
    /// Ends once every handle is dropped.
    pub thread: JoinHandle<()>,
}

/// What the loop starts from and talks to.
pub struct Parts {
    /// The member's raft log (see `open_log`).
    pub log_dir: PathBuf,
    /// The backend's applied index: committed, whatever the log's hard state says.
    pub applied: u64,
    /// raft's configuration as the member records give it (used once anything was applied:
    /// the log's snapshot marker may predate conf changes the backend holds).
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub applier: ApplierHandle,
    pub applier_events: Receiver<ApplierEvent>,
    /// The applier's applied index as it moves (linearizable reads wait on it).
    pub applied_rx: watch::Receiver<u64>,
    pub waiters: Arc<Waiters<ApplyResult>>,
    pub network: Arc<dyn Network>,
}

pub fn spawn(cfg: NodeConfig, parts: Parts) -> Result<Started, super::RaftError> {
    let Parts { log_dir, applied, voters, learners, applier, applier_events, applied_rx, waiters, network } = parts;
    let (log, replayed) = RaftLog::open(&log_dir)?;
    let storage = super::storage::restore_storage(&replayed, applied, voters, learners)?;
    let snapshot_index = storage.first_index()?.saturating_sub(1);
    let raft_cfg = raft::Config {
        id: cfg.id,
        election_tick: cfg.election_ticks,
        heartbeat_tick: cfg.heartbeat_ticks,
        applied: applied.max(snapshot_index),
        check_quorum: true,
        pre_vote: true,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        ..Default::default()
    };
    raft_cfg.validate()?;
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let image = Arc::new(Mutex::new(ImageSlot::default()));
    let storage = LogStorage { mem: storage, image };
    let mut raw = RawNode::new(&raft_cfg, storage, &logger)?;
    let voters = raw.raft.prs().conf().voters().ids().iter().collect::<Vec<_>>();
    if voters == [cfg.id] {
        // Alone in the cluster: nobody to wait for, elect ourselves now.
        raw.campaign()?;
    }
    let status = Arc::new(RaftStatus::default());
    let (tx, rx) = mpsc::sync_channel(PROPOSAL_QUEUE);
    let node = RaftNode {
        raw,
        log,
        rx,
        applier,
        applier_events,
        waiters: waiters.clone(),
        status: status.clone(),
        pending_reads: HashMap::new(),
        next_read: 0,
        snapshot_index,
        snapshot_count: cfg.snapshot_count,
        tick: cfg.tick,
        network,
        snap_dir: cfg.snap_dir.clone(),
        deferred_conf: Default::default(),
    };
    node.publish_status();
    let thread = std::thread::Builder::new().name("cairn-raft".into()).spawn(move || node.run())?;
    let handle = RaftHandle {
        tx,
        waiters,
        applied: applied_rx,
        status,
        request_timeout: cfg.request_timeout,
        max_request_bytes: cfg.max_request_bytes,
    };
    Ok(Started { handle, thread })
}

fn fatal(what: &str, e: impl std::fmt::Display) -> ! {
    crate::fatal::stop(what, &e)
}

/// A ReadIndex request's context: the leader keeps requests by it, so it must be unique
/// across members (two followers both asking with "read 1" would see the leader drop the
/// second, which then times out): this member's id, then its own counter.
fn read_context(me: u64, n: u64) -> Vec<u8> {
    let mut ctx = me.to_be_bytes().to_vec();
    ctx.extend_from_slice(&n.to_be_bytes());
    ctx
}

/// The counter of a context `read_context` made here (None for another member's).
fn read_number(me: u64, ctx: &[u8]) -> Option<u64> {
    let (who, n) = ctx.split_at_checked(8)?;
    if who != me.to_be_bytes() {
        return None;
    }
    Some(u64::from_be_bytes(n.try_into().ok()?))
}

/// A committed raft-rs entry as the applier takes it.
fn committed(e: Entry) -> Committed {
    let payload = match e.get_entry_type() {
        EntryType::EntryNormal if e.data.is_empty() => Payload::Empty,
        EntryType::EntryNormal => Payload::Request(e.data),
        EntryType::EntryConfChange => match conf_change_of(&e.data) {
            Ok((waiter, change)) => Payload::ConfChange { waiter, change },
            Err(why) => Payload::Unreadable(why),
        },
        EntryType::EntryConfChangeV2 => Payload::Unreadable("a joint-consensus conf change (never proposed)".into()),
    };
    Committed { index: e.index, payload }
}

/// The membership change a conf change entry carries, and its waiter (in the context).
fn conf_change_of(data: &[u8]) -> Result<(u64, Change), String> {
    let cc: ConfChange =
        protobuf::Message::parse_from_bytes(data).map_err(|e| format!("undecodable conf change: {e}"))?;
    let ctx =
        ConfChangeContext::decode(&cc.context[..]).map_err(|e| format!("undecodable conf change context: {e}"))?;
    let change = match cc.get_change_type() {
        ConfChangeType::AddNode if ctx.promote => Change::Promote(cc.node_id),
        ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
            let member = ctx.member.clone().unwrap_or_default();
            let is_learner = cc.get_change_type() == ConfChangeType::AddLearnerNode;
            Change::Add(MemberRecord { id: cc.node_id, is_learner, ..member })
        }
        ConfChangeType::RemoveNode => Change::Remove(cc.node_id),
    };
    Ok((ctx.id, change))
}

/// The raft-rs conf change that applies a membership change the applier accepted.
fn raft_conf_change(change: &Change) -> Option<ConfChange> {
    let (change_type, node_id) = match change {
        Change::Add(rec) if rec.is_learner => (ConfChangeType::AddLearnerNode, rec.id),
        Change::Add(rec) => (ConfChangeType::AddNode, rec.id),
        Change::Promote(id) => (ConfChangeType::AddNode, *id),
        Change::Remove(id) => (ConfChangeType::RemoveNode, *id),
        // New peer URLs are the transport's business, not raft's.
        Change::Update(..) => return None,
    };
    Some(ConfChange { change_type, node_id, ..Default::default() })
}

struct RaftNode {
    raw: RawNode<LogStorage>,
    log: RaftLog,
    rx: Receiver<Msg>,
    applier: ApplierHandle,
    applier_events: Receiver<ApplierEvent>,
    waiters: Arc<Waiters<ApplyResult>>,
    status: Arc<RaftStatus>,
    /// ReadIndex requests in flight, by the context raft echoes back.
    pending_reads: HashMap<u64, Vec<oneshot::Sender<Result<u64, EtcdError>>>>,
    next_read: u64,
    snapshot_index: u64,
    snapshot_count: u64,
    tick: Duration,
    network: Arc<dyn Network>,
    snap_dir: PathBuf,
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
            while let Ok(event) = self.applier_events.try_recv() {
                self.applier_event(event);
            }
            self.propose_conf_changes();
            if !reads.is_empty() {
                // One ReadIndex serves every read that arrived in this pass.
                self.next_read += 1;
                self.pending_reads.insert(self.next_read, reads);
                self.raw.read_index(read_context(self.raw.raft.id, self.next_read));
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
        }
    }

    fn applier_event(&mut self, event: ApplierEvent) {
        match event {
            ApplierEvent::ConfChange(change) => {
                let Some(cc) = raft_conf_change(&change) else { return };
                if let Err(e) = self.raw.apply_conf_change(&cc) {
                    fatal(&format!("raft refused a conf change the members accepted ({change:?})"), e);
                }
            }
            ApplierEvent::ImageBuilt(built) => {
                let mut slot = self.raw.store().slot();
                slot.building = false;
                if let Some(b) = built {
                    let conf =
                        raft::eraftpb::ConfState { voters: b.voters, learners: b.learners, ..Default::default() };
                    slot.built = Some((b.index, b.path, conf));
                }
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
            // Fails only when the applier is gone, that is when the member stops.
            let _ = self.applier.build_image();
        }
    }

    /// A snapshot from the leader: record it in the WAL, reset the log to it, and have the
    /// applier load its image (in order: after every entry handed over before).
    fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), super::RaftError> {
        let meta = snap.get_metadata().clone();
        let image = PathBuf::from(String::from_utf8_lossy(&snap.data).into_owned());
        self.log.save_snapshot(&meta)?;
        self.sync_log()?;
        self.raw.mut_store().mem.wl().apply_snapshot(snap)?;
        self.applier.install(meta.index, image.clone())?;
        self.snapshot_index = meta.index;
        crate::storage::image::remove_others(&self.snap_dir, meta.index);
        // The image stays until a newer one replaces it: a restart before the applier is done
        // loads it again, and it can serve the next follower that needs a snapshot.
        self.raw.store().slot().ready = Some((meta, image));
        Ok(())
    }

    /// One Ready, by raft-rs's numbered recipe.
    fn on_ready(&mut self) -> Result<(), super::RaftError> {
        // Tell raft how far the applier got (it applies on its own thread): the recipe's
        // advance_apply, done here for every pass.
        let applied = self.applier.applied();
        if applied > self.raw.raft.raft_log.applied && applied <= self.raw.raft.raft_log.committed {
            self.raw.advance_apply_to(applied);
        }
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        // 1. Messages: a leader's may go before its own entries are durable (raft's thesis,
        //    10.2.1).
        self.send(ready.take_messages());
        // 2. A snapshot from the leader.
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot().clone())?;
        }
        // 3. Committed entries, to the applier.
        self.applier.apply(ready.take_committed_entries().into_iter().map(committed).collect())?;
        // 4. New entries, to the WAL and the in-memory log.
        if !ready.entries().is_empty() {
            self.log.append_entries(ready.entries())?;
            self.raw.mut_store().mem.wl().append(ready.entries())?;
        }
        // 5. The hard state.
        if let Some(hs) = ready.hs() {
            self.log.save_hard_state(hs)?;
            self.raw.mut_store().mem.wl().set_hardstate(hs.clone());
        }
        if ready.must_sync() || !ready.entries().is_empty() {
            self.sync_log()?;
        }
        // 6. Persisted messages: votes and appends answered only once what they promise is
        //    on disk.
        self.send(ready.take_persisted_messages());
        for rs in ready.take_read_states() {
            let Some(ctx) = read_number(self.raw.raft.id, &rs.request_ctx) else { continue };
            for reply in self.pending_reads.remove(&ctx).unwrap_or_default() {
                let _ = reply.send(Ok(rs.index));
            }
        }
        // 7. Advance, then the light ready: its commit index, messages and committed entries.
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            let mut hs = self.raw.store().mem.rl().hard_state().clone();
            hs.commit = commit;
            self.raw.mut_store().mem.wl().set_hardstate(hs.clone());
            // Not synced on its own: the commit index is recoverable (applied implies committed).
            self.log.save_hard_state(&hs)?;
        }
        self.send(light.take_messages());
        self.applier.apply(light.take_committed_entries().into_iter().map(committed).collect())?;
        self.publish_status();
        Ok(())
    }

    fn sync_log(&mut self) -> Result<(), super::RaftError> {
        let t = Instant::now();
        self.log.sync()?;
        crate::metrics::get().disk.wal_fsync.observe(t.elapsed().as_secs_f64());
        Ok(())
    }

    fn publish_status(&self) {
        let r = &self.raw.raft;
        let was = self.status.leader.load(std::sync::atomic::Ordering::Relaxed);
        if r.leader_id != was && r.leader_id != 0 {
            // etcd counts each new leader it comes to know of.
            crate::metrics::get().server.leader_changes_seen.inc();
        }
        self.status.term.store(r.term, std::sync::atomic::Ordering::Relaxed);
        self.status.leader.store(r.leader_id, std::sync::atomic::Ordering::Relaxed);
        self.status.commit.store(r.raft_log.committed, std::sync::atomic::Ordering::Relaxed);
        self.status.is_leader.store(r.state == StateRole::Leader, std::sync::atomic::Ordering::Relaxed);
    }

    /// Once the backend has flushed `snapshot_count` more entries, the log before them is
    /// only history: record a snapshot marker and drop what it covers.
    fn compact_log(&mut self) {
        let durable = self.applier.durable();
        if durable < self.snapshot_index + self.snapshot_count || durable == 0 {
            return;
        }
        let result = (|| -> Result<(), super::RaftError> {
            let term = self.raw.store().term(durable)?;
            let mut meta = SnapshotMetadata { index: durable, term, ..Default::default() };
            meta.set_conf_state(self.raw.raft.prs().conf().to_conf_state());
            self.log.save_snapshot(&meta)?;
            self.sync_log()?;
            self.log.release_to(durable)?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn read_contexts_of_two_members_never_collide() {
        let (a, b) = (super::read_context(7, 1), super::read_context(9, 1));
        assert_ne!(a, b);
        assert_eq!(super::read_number(7, &a), Some(1));
        assert_eq!(super::read_number(7, &b), None);
        assert_eq!(super::read_number(7, &[1, 2]), None);
    }
}
