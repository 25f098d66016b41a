//! The raft log in memory (raft-rs's MemStorage), rebuilt from the WAL at start.

use super::log::Replayed;
use raft::eraftpb::{ConfState, HardState, Snapshot, SnapshotMetadata};
use raft::storage::MemStorage;

/// The state a brand-new member starts from: membership as of index 1, term 1 (as etcd's
/// bootstrap entries are), so the first election makes term 2 like etcd's.
pub fn bootstrap_state(voters: Vec<u64>) -> (SnapshotMetadata, HardState) {
    let cs = ConfState { voters, ..Default::default() };
    let mut meta = SnapshotMetadata { index: 1, term: 1, ..Default::default() };
    meta.set_conf_state(cs);
    let hs = HardState { term: 1, commit: 1, ..Default::default() };
    (meta, hs)
}

/// Builds the in-memory log from what the WAL replayed. `applied` is the backend's applied
/// index: it is committed even if the last commit index recorded in the WAL is older.
///
/// Raft's configuration is the member records' (`voters`, `learners`) once any entry was
/// applied: the WAL's snapshot marker may predate conf changes the backend already holds (and
/// raft will not hand those entries out again).
pub fn restore_storage(r: &Replayed, applied: u64, voters: Vec<u64>, learners: Vec<u64>) -> raft::Result<MemStorage> {
    let storage = MemStorage::new();
    {
        let mut core = storage.wl();
        // A member that joined a running cluster starts with nothing: no snapshot yet.
        if r.snapshot.index > 0 {
            let mut snap = Snapshot::default();
            snap.set_metadata(r.snapshot.clone());
            core.apply_snapshot(snap)?;
        }
        core.append(&r.entries)?;
        let last = r.entries.last().map_or(r.snapshot.index, |e| e.index);
        let mut hs = r.hard_state.clone();
        hs.commit = hs.commit.max(applied).max(r.snapshot.index).min(last);
        core.set_hardstate(hs);
        if applied > 0 {
            core.set_conf_state(ConfState { voters, learners, ..Default::default() });
        }
    }
    Ok(storage)
}

/// The newest backend image this member can send, and whether raft asked for one.
#[derive(Default)]
pub struct ImageSlot {
    pub ready: Option<(SnapshotMetadata, std::path::PathBuf)>,
    pub wanted: bool,
    /// The applier is writing one; it clears this when done, and fills `built` on success.
    pub building: bool,
    /// An image just written: its index, file, and the configuration as of that index.
    pub built: Option<(u64, std::path::PathBuf, ConfState)>,
}

/// raft-rs's storage: the in-memory log, plus snapshots made of backend images. raft asks
/// for a snapshot when a follower is behind the compacted log; the first ask only starts an
/// image (the applier writes it between batches) and raft retries until it is ready.
pub struct LogStorage {
    pub mem: MemStorage,
    pub image: std::sync::Arc<std::sync::Mutex<ImageSlot>>,
}

impl LogStorage {
    pub fn slot(&self) -> std::sync::MutexGuard<'_, ImageSlot> {
        self.image.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl raft::Storage for LogStorage {
    fn initial_state(&self) -> raft::Result<raft::RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: raft::GetEntriesContext,
    ) -> raft::Result<Vec<raft::eraftpb::Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        // raft passes 0 unless a follower asked for a given index; either way the snapshot
        // must reach the compacted log, or the follower would need another right after.
        let needed = request_index.max(self.mem.first_index()?.saturating_sub(1));
        let mut slot = self.slot();
        if let Some((meta, path)) = &slot.ready {
            // A member added after the image was made could not restore it: it is not in
            // the image's configuration.
            let cs = meta.get_conf_state();
            if meta.index >= needed && cs.voters.iter().chain(&cs.learners).any(|id| *id == to) {
                let mut snap = Snapshot::default();
                snap.set_metadata(meta.clone());
                // The image travels beside the message; its path marks which one.
                snap.data = path.to_string_lossy().into_owned().into_bytes().into();
                return Ok(snap);
            }
        }
        slot.wanted = true;
        Err(raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable))
    }
}
