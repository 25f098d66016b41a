//! raft's log on disk: raft-rs's entries, hard state and snapshot markers as records of the
//! segmented WAL (`storage::wal`, which keeps bytes and knows nothing of raft). Each record's
//! body is the raft-rs message, protobuf-encoded.

use crate::storage::wal::{Identity, Kind, Record, TornTail, Wal, WalError};
use protobuf::Message as _;
use raft::eraftpb::{Entry, HardState, SnapshotMetadata};
use std::path::Path;

/// Everything replay found.
#[derive(Debug)]
pub struct Replayed {
    pub identity: Identity,
    pub snapshot: SnapshotMetadata,
    pub hard_state: HardState,
    /// Entries after the snapshot index, in order.
    pub entries: Vec<Entry>,
    /// The torn write at the end (`read` reports it, `open` has cut it).
    pub torn: Option<TornTail>,
}

impl Replayed {
    /// The index of the last entry the log holds (the snapshot's when it holds none).
    pub fn last_index(&self) -> u64 {
        self.entries.last().map_or(self.snapshot.index, |e| e.index)
    }
}

pub struct RaftLog {
    wal: Wal,
    last_index: u64,
    hard_state: HardState,
    snapshot: SnapshotMetadata,
}

fn encode(m: &impl protobuf::Message) -> Result<Vec<u8>, WalError> {
    m.write_to_bytes().map_err(|e| WalError::Invalid(e.to_string()))
}

impl RaftLog {
    /// Creates a new log whose state starts at `snapshot` (a new member's bootstrap
    /// membership; an empty one for a member joining a running cluster).
    pub fn create(
        dir: &Path,
        identity: Identity,
        snapshot: &SnapshotMetadata,
        hard_state: &HardState,
    ) -> Result<RaftLog, WalError> {
        let records = [(Kind::Snapshot, encode(snapshot)?), (Kind::HardState, encode(hard_state)?)];
        let wal = Wal::create(dir, identity, snapshot.index + 1, &records)?;
        Ok(RaftLog { wal, last_index: snapshot.index, hard_state: hard_state.clone(), snapshot: snapshot.clone() })
    }

    /// Replays the log without changing anything on disk.
    pub fn read(dir: &Path) -> Result<Replayed, WalError> {
        let scan = Wal::read(dir)?;
        replay(scan.identity, scan.records, scan.torn)
    }

    /// Replays the log, cutting a torn write off its end, and opens it for appending.
    pub fn open(dir: &Path) -> Result<(RaftLog, Replayed), WalError> {
        let (wal, scan) = Wal::open(dir)?;
        let replayed = replay(scan.identity, scan.records, scan.torn)?;
        let log = RaftLog {
            wal,
            last_index: replayed.last_index(),
            hard_state: replayed.hard_state.clone(),
            snapshot: replayed.snapshot.clone(),
        };
        Ok((log, replayed))
    }

    pub fn append_entries(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        for e in entries {
            self.wal.append(Kind::Entry, &encode(e)?)?;
            self.last_index = e.index;
        }
        Ok(())
    }

    pub fn save_hard_state(&mut self, hs: &HardState) -> Result<(), WalError> {
        self.wal.append(Kind::HardState, &encode(hs)?)?;
        self.hard_state = hs.clone();
        Ok(())
    }

    /// Records that everything up to `meta.index` is held by the backend; the entries before
    /// it are no longer needed for replay.
    pub fn save_snapshot(&mut self, meta: &SnapshotMetadata) -> Result<(), WalError> {
        self.wal.append(Kind::Snapshot, &encode(meta)?)?;
        self.snapshot = meta.clone();
        Ok(())
    }

    /// Makes everything appended durable, then starts a new segment if this one is full. Each
    /// segment restates the latest snapshot marker and hard state so that older segments can
    /// be released without losing them.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.wal.sync()?;
        if self.wal.full() {
            let restate = [(Kind::Snapshot, encode(&self.snapshot)?), (Kind::HardState, encode(&self.hard_state)?)];
            self.wal.cut(self.last_index + 1, &restate)?;
        }
        Ok(())
    }

    /// Deletes whole segments that hold nothing after `index` (already in the backend).
    pub fn release_to(&mut self, index: u64) -> Result<(), WalError> {
        self.wal.release_to(index)
    }
}

/// The raft state the records add up to.
fn replay(identity: Identity, records: Vec<Record>, torn: Option<TornTail>) -> Result<Replayed, WalError> {
    let mut snapshot = SnapshotMetadata::default();
    let mut hard_state = HardState::default();
    let mut entries: Vec<Entry> = Vec::new();
    for rec in records {
        let bad =
            |e: protobuf::ProtobufError| WalError::Invalid(format!("a {:?} record does not decode: {e}", rec.kind));
        match rec.kind {
            Kind::Entry => {
                let e = Entry::parse_from_bytes(&rec.body).map_err(bad)?;
                // A later write at an index we already hold replaces the old tail (raft
                // truncated a conflicting suffix).
                while entries.last().is_some_and(|l| l.index >= e.index) {
                    entries.pop();
                }
                entries.push(e);
            }
            Kind::HardState => hard_state = HardState::parse_from_bytes(&rec.body).map_err(bad)?,
            Kind::Snapshot => snapshot = SnapshotMetadata::parse_from_bytes(&rec.body).map_err(bad)?,
            Kind::SegmentHeader => {}
        }
    }
    entries.retain(|e| e.index > snapshot.index);
    if let Some(first) = entries.first() {
        if first.index != snapshot.index + 1 {
            return Err(WalError::Invalid(format!(
                "wal has a hole: snapshot at {} but first entry at {}",
                snapshot.index, first.index
            )));
        }
    }
    Ok(Replayed { identity, snapshot, hard_state, entries, torn })
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::ConfState;

    fn ident() -> Identity {
        Identity { member_id: 7, cluster_id: 9 }
    }

    fn boot_snapshot() -> SnapshotMetadata {
        let mut m = SnapshotMetadata { index: 1, term: 1, ..Default::default() };
        m.set_conf_state(ConfState { voters: vec![7], ..Default::default() });
        m
    }

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry { index, term, data: data.to_vec().into(), ..Default::default() }
    }

    fn hs(term: u64, commit: u64) -> HardState {
        HardState { term, commit, ..Default::default() }
    }

    #[test]
    fn replays_what_was_synced() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RaftLog::create(dir.path(), ident(), &boot_snapshot(), &hs(1, 1)).unwrap();
        w.append_entries(&[entry(2, 2, b"a"), entry(3, 2, b"b")]).unwrap();
        w.save_hard_state(&hs(2, 3)).unwrap();
        w.sync().unwrap();
        drop(w);
        let (_, r) = RaftLog::open(dir.path()).unwrap();
        assert_eq!(r.identity, ident());
        assert_eq!(r.snapshot.index, 1);
        assert_eq!(r.snapshot.get_conf_state().voters, vec![7]);
        assert_eq!(r.hard_state.commit, 3);
        assert_eq!(r.entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(&r.entries[1].data[..], b"b");
        assert_eq!(r.last_index(), 3);
    }

    #[test]
    fn overwritten_suffix_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RaftLog::create(dir.path(), ident(), &boot_snapshot(), &hs(1, 1)).unwrap();
        w.append_entries(&[entry(2, 2, b"a"), entry(3, 2, b"old"), entry(4, 2, b"old")]).unwrap();
        w.append_entries(&[entry(3, 3, b"new")]).unwrap();
        w.sync().unwrap();
        drop(w);
        let (_, r) = RaftLog::open(dir.path()).unwrap();
        assert_eq!(r.entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(), vec![(2, 2), (3, 3)]);
    }

    #[test]
    fn released_segments_keep_the_snapshot_marker_and_the_entries_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RaftLog::create(dir.path(), ident(), &boot_snapshot(), &hs(1, 1)).unwrap();
        for i in 2..=4 {
            w.append_entries(&[entry(i, 2, b"v")]).unwrap();
            w.sync().unwrap();
            let restate =
                [(Kind::Snapshot, encode(&w.snapshot).unwrap()), (Kind::HardState, encode(&w.hard_state).unwrap())];
            w.wal.cut(i + 1, &restate).unwrap();
        }
        w.append_entries(&[entry(5, 2, b"v")]).unwrap();
        let mut snap = boot_snapshot();
        snap.index = 3;
        snap.term = 2;
        w.save_snapshot(&snap).unwrap();
        w.sync().unwrap();
        w.release_to(3).unwrap();
        drop(w);
        let (_, r) = RaftLog::open(dir.path()).unwrap();
        assert_eq!(r.snapshot.index, 3);
        assert_eq!(r.entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![4, 5]);
    }
}
