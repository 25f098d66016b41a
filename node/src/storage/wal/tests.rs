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

fn only_segment(dir: &Path) -> PathBuf {
    let names = segment::list(dir).unwrap();
    assert_eq!(names.len(), 1);
    dir.join(names[0].file_name())
}

#[test]
fn replays_what_was_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wal::create(dir.path(), ident(), boot_snapshot(), hs(1, 1)).unwrap();
    w.append_entries(&[entry(2, 2, b"a"), entry(3, 2, b"b")]).unwrap();
    w.save_hard_state(&hs(2, 3)).unwrap();
    w.sync().unwrap();
    drop(w);
    let (_, r) = Wal::open(dir.path()).unwrap();
    assert_eq!(r.identity, ident());
    assert_eq!(r.snapshot.index, 1);
    assert_eq!(r.snapshot.get_conf_state().voters, vec![7]);
    assert_eq!(r.hard_state.commit, 3);
    assert_eq!(r.entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(&r.entries[1].data[..], b"b");
    assert_eq!(r.repaired_bytes, 0);
}

#[test]
fn torn_tail_is_cut_and_earlier_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wal::create(dir.path(), ident(), boot_snapshot(), hs(1, 1)).unwrap();
    w.append_entries(&[entry(2, 2, b"kept")]).unwrap();
    w.sync().unwrap();
    w.append_entries(&[entry(3, 2, &[0xAB; 100])]).unwrap();
    w.sync().unwrap();
    drop(w);
    let path = only_segment(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    // A crash in the middle of writing the last record.
    OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 40).unwrap();
    let (mut w, r) = Wal::open(dir.path()).unwrap();
    assert!(r.repaired_bytes > 0);
    assert_eq!(r.entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![2]);
    // The repaired log takes new appends and replays them.
    w.append_entries(&[entry(3, 2, b"again")]).unwrap();
    w.sync().unwrap();
    drop(w);
    let (_, r) = Wal::open(dir.path()).unwrap();
    assert_eq!(r.entries.len(), 2);
    assert_eq!(&r.entries[1].data[..], b"again");
}

#[test]
fn corrupt_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wal::create(dir.path(), ident(), boot_snapshot(), hs(1, 1)).unwrap();
    w.append_entries(&[entry(2, 2, b"kept"), entry(3, 2, b"flipped")]).unwrap();
    w.sync().unwrap();
    drop(w);
    let path = only_segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
    let (_, r) = Wal::open(dir.path()).unwrap();
    assert_eq!(r.entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![2]);
    assert!(r.repaired_bytes > 0);
}

#[test]
fn corruption_before_the_last_segment_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wal::create(dir.path(), ident(), boot_snapshot(), hs(1, 1)).unwrap();
    w.append_entries(&[entry(2, 2, b"x")]).unwrap();
    w.sync().unwrap();
    w.cut().unwrap();
    w.append_entries(&[entry(3, 2, b"y")]).unwrap();
    w.sync().unwrap();
    drop(w);
    let names = segment::list(dir.path()).unwrap();
    assert_eq!(names.len(), 2);
    let first = dir.path().join(names[0].file_name());
    let mut bytes = std::fs::read(&first).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x01;
    std::fs::write(&first, &bytes).unwrap();
    match Wal::open(dir.path()) {
        Err(WalError::Corrupt { segment, .. }) => assert_eq!(segment, names[0].file_name()),
        other => panic!("expected corruption error, got {:?}", other.map(|(_, r)| r)),
    }
}

#[test]
fn overwritten_suffix_replaces_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wal::create(dir.path(), ident(), boot_snapshot(), hs(1, 1)).unwrap();
    w.append_entries(&[entry(2, 2, b"a"), entry(3, 2, b"old"), entry(4, 2, b"old")]).unwrap();
    w.append_entries(&[entry(3, 3, b"new")]).unwrap();
    w.sync().unwrap();
    drop(w);
    let (_, r) = Wal::open(dir.path()).unwrap();
    assert_eq!(r.entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(), vec![(2, 2), (3, 3)]);
}

#[test]
fn segments_are_cut_chained_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wal::create(dir.path(), ident(), boot_snapshot(), hs(1, 1)).unwrap();
    for i in 2..=4 {
        w.append_entries(&[entry(i, 2, b"v")]).unwrap();
        w.sync().unwrap();
        w.cut().unwrap();
    }
    w.append_entries(&[entry(5, 2, b"v")]).unwrap();
    w.sync().unwrap();
    assert_eq!(w.segment_count(), 4);
    let mut snap = boot_snapshot();
    snap.index = 3;
    snap.term = 2;
    w.save_snapshot(&snap).unwrap();
    w.sync().unwrap();
    w.release_to(3).unwrap();
    // Segments holding only entries <= 3 are gone; 4 and 5 remain replayable.
    assert_eq!(w.segment_count(), 2);
    drop(w);
    let (_, r) = Wal::open(dir.path()).unwrap();
    assert_eq!(r.snapshot.index, 3);
    assert_eq!(r.entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![4, 5]);
}
