//! etcd's `--force-new-cluster` on this member's log: what was never committed is dropped,
//! and entries removing every other member are appended as committed. Applying them, as any
//! committed entry is applied at start, leaves this member alone in the cluster with all the
//! data it had: the same keys and revisions, the same cluster and member ids. etcd 3.4 does
//! the same to its WAL (an entry per removed member, committed) before it starts.

use super::log::RaftLog;
use crate::proto::cairnpb::{ConfChangeContext, MemberRecord};
use crate::storage::wal::WalError;
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Entry, EntryType, HardState};
use std::path::Path;

/// Rewrites the log in `dir` so that `others` are removed once it is applied; `applied` is
/// the backend's applied index (committed, whatever the log's hard state says). Returns the
/// new last index. Run again (the flag left on at a restart), it removes nobody and drops
/// nothing committed.
pub fn force_new_cluster(dir: &Path, applied: u64, others: &[u64]) -> Result<u64, WalError> {
    let (mut log, r) = RaftLog::open(dir)?;
    let last = r.last_index();
    let commit = r.hard_state.commit.max(applied).max(r.snapshot.index).min(last);
    let term = r.entries.iter().find(|e| e.index == commit).map_or(r.snapshot.term, |e| e.term);
    let dropped = last - commit;
    // An empty entry first: written at commit + 1, it replaces whatever uncommitted tail the
    // log had (replay keeps the last write at an index), as a new leader's first entry would.
    let mut entries = vec![Entry { entry_type: EntryType::EntryNormal, term, index: commit + 1, ..Default::default() }];
    for id in others {
        let context =
            ConfChangeContext { id: 0, member: Some(MemberRecord { id: *id, ..Default::default() }), promote: false };
        let cc = ConfChange {
            change_type: ConfChangeType::RemoveNode,
            node_id: *id,
            context: context.encode_to_vec().into(),
            ..Default::default()
        };
        let data = cc.write_to_bytes().map_err(|e| WalError::Invalid(e.to_string()))?;
        let index = commit + 1 + entries.len() as u64;
        entries.push(Entry {
            entry_type: EntryType::EntryConfChange,
            term,
            index,
            data: data.into(),
            ..Default::default()
        });
    }
    let new_last = commit + entries.len() as u64;
    log.append_entries(&entries)?;
    let hs = HardState {
        term: r.hard_state.term.max(term),
        vote: r.hard_state.vote,
        commit: new_last,
        ..Default::default()
    };
    log.save_hard_state(&hs)?;
    log.sync()?;
    tracing::warn!(
        removed = ?others.iter().map(|id| format!("{id:x}")).collect::<Vec<_>>(),
        dropped_uncommitted = dropped,
        "forcing a new cluster from this member's data (--force-new-cluster): the other members are removed"
    );
    Ok(new_last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::wal::Identity;
    use raft::eraftpb::SnapshotMetadata;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry { entry_type: EntryType::EntryNormal, index, term, data: data.to_vec().into(), ..Default::default() }
    }

    #[test]
    fn uncommitted_entries_go_and_removals_come_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut meta = SnapshotMetadata { index: 1, term: 1, ..Default::default() };
        meta.mut_conf_state().voters = vec![1, 2, 3];
        let hs = HardState { term: 2, commit: 1, ..Default::default() };
        let mut log = RaftLog::create(dir.path(), Identity { member_id: 1, cluster_id: 9 }, &meta, &hs).unwrap();
        log.append_entries(&[entry(2, 2, b"a"), entry(3, 2, b"b"), entry(4, 2, b"never committed")]).unwrap();
        log.save_hard_state(&HardState { term: 2, commit: 3, ..Default::default() }).unwrap();
        log.sync().unwrap();
        drop(log);

        assert_eq!(force_new_cluster(dir.path(), 2, &[2, 3]).unwrap(), 6);
        let r = RaftLog::read(dir.path()).unwrap();
        let datas: Vec<&[u8]> = r.entries.iter().map(|e| &e.data[..]).take(2).collect();
        assert_eq!(datas, [&b"a"[..], &b"b"[..]], "the committed entries stay");
        assert_eq!(r.entries[2].data.len(), 0, "the uncommitted one is replaced by an empty entry");
        let removed: Vec<u64> = r.entries[3..]
            .iter()
            .map(|e| {
                assert_eq!(e.get_entry_type(), EntryType::EntryConfChange);
                ConfChange::parse_from_bytes(&e.data).unwrap().node_id
            })
            .collect();
        assert_eq!(removed, [2, 3]);
        assert_eq!((r.hard_state.commit, r.last_index()), (6, 6), "everything appended is committed");
        assert!(r.entries.iter().all(|e| e.term == 2));

        // Again, with nobody left to remove: nothing committed is lost.
        assert_eq!(force_new_cluster(dir.path(), 6, &[]).unwrap(), 7);
        assert_eq!(RaftLog::read(dir.path()).unwrap().entries.len(), 6);
    }
}
