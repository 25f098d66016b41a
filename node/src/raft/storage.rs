//! The raft log in memory (raft-rs's MemStorage), rebuilt from the WAL at start.

use crate::storage::wal::Replayed;
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
pub fn restore_storage(r: &Replayed, applied: u64) -> raft::Result<MemStorage> {
    let storage = MemStorage::new();
    {
        let mut core = storage.wl();
        let mut snap = Snapshot::default();
        snap.set_metadata(r.snapshot.clone());
        core.apply_snapshot(snap)?;
        core.append(&r.entries)?;
        let last = r.entries.last().map_or(r.snapshot.index, |e| e.index);
        let mut hs = r.hard_state.clone();
        hs.commit = hs.commit.max(applied).max(r.snapshot.index).min(last);
        core.set_hardstate(hs);
    }
    Ok(storage)
}
