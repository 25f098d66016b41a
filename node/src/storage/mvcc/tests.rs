use super::*;
use crate::proto::etcdserverpb::RangeRequest;
use crate::storage::backend::{Backend, BackendWriter, PREFIX_REV, PREFIX_TOMBSTONES};
use std::sync::Arc;

/// A store with its backend's writer, as the applier holds them.
struct Store {
    s: MvccStore,
    w: BackendWriter,
}

impl Store {
    fn write(&self) -> WriteTxn<'_> {
        self.s.write(&self.w)
    }

    fn collect_garbage(&self, max: usize) -> Result<usize, crate::storage::backend::BackendError> {
        self.s.collect_garbage(&self.w, max)
    }
}

impl std::ops::Deref for Store {
    type Target = MvccStore;
    fn deref(&self) -> &MvccStore {
        &self.s
    }
}

fn open(dir: &std::path::Path) -> (Arc<Backend>, Store) {
    let (b, w) = Backend::open(dir).unwrap();
    let s = MvccStore::open(b.clone()).unwrap();
    (b, Store { s, w })
}

fn put(s: &MvccStore, w: &BackendWriter, idx: u64, k: &str, v: &str) -> i64 {
    let mut txn = s.write(w);
    let rev = txn.put(k.as_bytes(), v.as_bytes().to_vec(), 0);
    txn.commit(idx).unwrap();
    rev
}

fn get(s: &MvccStore, k: &str, rev: i64) -> Result<Option<(String, i64, i64, i64)>, MvccError> {
    let r = RangeRequest { key: k.into(), revision: rev, ..Default::default() };
    let resp = range_request(&s.read(), &r)?;
    Ok(resp
        .kvs
        .first()
        .map(|kv| (String::from_utf8(kv.value.clone()).unwrap(), kv.create_revision, kv.mod_revision, kv.version)))
}

/// Backend records of history: puts plus tombstone records.
fn stored_records(b: &Backend) -> usize {
    b.scan_prefix([PREFIX_REV]).count() + b.scan_prefix([PREFIX_TOMBSTONES]).count()
}

#[test]
fn empty_store_is_at_revision_one_and_puts_count_up() {
    let dir = tempfile::tempdir().unwrap();
    let (_, s) = open(dir.path());
    assert_eq!(s.current_revision(), 1);
    assert_eq!(put(&s, &s.w, 1, "a", "1"), 2);
    assert_eq!(put(&s, &s.w, 2, "a", "2"), 3);
    assert_eq!(get(&s, "a", 0).unwrap(), Some(("2".into(), 2, 3, 2)));
    assert_eq!(get(&s, "a", 2).unwrap(), Some(("1".into(), 2, 2, 1)));
    assert_eq!(get(&s, "a", 1).unwrap(), None);
    assert_eq!(get(&s, "a", 4), Err(MvccError::FutureRev));
}

#[test]
fn delete_ends_a_generation_and_recreate_starts_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_, s) = open(dir.path());
    put(&s, &s.w, 1, "k", "1");
    put(&s, &s.w, 2, "k", "2");
    assert_eq!(s.key_count(), 1, "two puts of one key");
    let mut w = s.write();
    assert_eq!(w.delete_range(&KeyRange::Single(b"k".to_vec())), 1);
    w.commit(3).unwrap();
    assert_eq!(s.key_count(), 0, "a deleted key does not count");
    // Deleting nothing changes nothing.
    let mut w = s.write();
    assert_eq!(w.delete_range(&KeyRange::Single(b"k".to_vec())), 0);
    assert!(!w.has_changes());
    w.commit(4).unwrap();
    assert_eq!(s.current_revision(), 4);
    assert_eq!(get(&s, "k", 0).unwrap(), None);
    assert_eq!(put(&s, &s.w, 5, "k", "new"), 5);
    assert_eq!(get(&s, "k", 0).unwrap(), Some(("new".into(), 5, 5, 1)));
    assert_eq!(get(&s, "k", 3).unwrap(), Some(("2".into(), 2, 3, 2)));
    assert_eq!(s.key_count(), 1);
    s.reload().unwrap();
    assert_eq!(s.key_count(), 1, "rebuilt from the backend");
}

#[test]
fn one_txn_is_one_revision_and_sees_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, s) = open(dir.path());
    let mut w = s.write();
    w.put(b"a", b"1".to_vec(), 0);
    w.put(b"b", b"2".to_vec(), 0);
    let seen = w.range(&KeyRange::from_request(b"a", b"c"), RangeOptions::default()).unwrap();
    assert_eq!(seen.kvs.len(), 2);
    assert_eq!(seen.rev, 2);
    let events = w.commit(1).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(s.current_revision(), 2);
}

#[test]
fn compaction_frees_old_revisions_and_fences_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (b, s) = open(dir.path());
    for i in 0..10 {
        put(&s, &s.w, i + 1, "hot", &i.to_string());
    }
    put(&s, &s.w, 11, "gone", "x");
    let mut w = s.write();
    w.delete_range(&KeyRange::Single(b"gone".to_vec()));
    w.commit(12).unwrap();
    assert_eq!(stored_records(&b), 12);
    let mut w = s.write();
    assert_eq!(w.compact(13).unwrap(), 11);
    w.commit(13).unwrap();
    // Logically gone at once; physically once the garbage is collected.
    assert_eq!(s.garbage_len(), 11);
    assert_eq!(s.collect_garbage(4).unwrap(), 4);
    assert_eq!(s.collect_garbage(100).unwrap(), 7);
    assert_eq!(s.collect_garbage(100).unwrap(), 0);
    // Only the newest "hot" survives; "gone" and its tombstone are freed.
    assert_eq!(stored_records(&b), 1);
    assert_eq!(get(&s, "hot", 5), Err(MvccError::Compacted));
    assert_eq!(get(&s, "hot", 13).unwrap().unwrap().0, "9");
    let w = s.write();
    assert_eq!(w.check_compact(13), Err(MvccError::Compacted));
    assert_eq!(w.check_compact(14), Err(MvccError::FutureRev));
}

#[test]
fn restart_rebuilds_the_index_and_keeps_revision_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (b, s) = open(dir.path());
        put(&s, &s.w, 1, "a", "1");
        put(&s, &s.w, 2, "a", "2");
        let mut w = s.write();
        w.delete_range(&KeyRange::Single(b"a".to_vec()));
        w.commit(3).unwrap();
        let mut w = s.write();
        w.compact(4).unwrap();
        w.commit(4).unwrap();
        // A crash before the freed records are deleted.
        assert_eq!(s.garbage_len(), 3);
        b.flush().unwrap();
    }
    let (b, s) = open(dir.path());
    assert_eq!(stored_records(&b), 3);
    assert_eq!(s.garbage_len(), 3, "open must find what the compaction freed");
    s.collect_garbage(100).unwrap();
    assert_eq!(stored_records(&b), 0);
    // Every stored revision of "a" was compacted away, yet the revision counter holds.
    assert_eq!(s.current_revision(), 4);
    assert_eq!(b.applied_index().unwrap(), 4);
    assert_eq!(get(&s, "a", 3), Err(MvccError::Compacted));
    assert_eq!(put(&s, &s.w, 5, "a", "3"), 5);
    assert_eq!(get(&s, "a", 0).unwrap(), Some(("3".into(), 5, 5, 1)));
}

#[test]
fn range_limit_count_more_and_sort() {
    let dir = tempfile::tempdir().unwrap();
    let (_, s) = open(dir.path());
    for (i, k) in ["c", "a", "b", "d"].iter().enumerate() {
        put(&s, &s.w, i as u64 + 1, k, &format!("v{}", 9 - i));
    }
    let r = RangeRequest { key: b"a".to_vec(), range_end: b"d".to_vec(), limit: 2, ..Default::default() };
    let resp = range_request(&s.read(), &r).unwrap();
    assert_eq!(resp.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(), vec![b"a".to_vec(), b"b".to_vec()]);
    assert!(resp.more);
    assert_eq!(resp.count, 3);
    let r = RangeRequest { key: vec![0], range_end: vec![0], sort_order: 2, sort_target: 3, ..Default::default() };
    let resp = range_request(&s.read(), &r).unwrap();
    assert_eq!(
        resp.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        vec![b"d".to_vec(), b"b".to_vec(), b"a".to_vec(), b"c".to_vec()]
    );
    let r = RangeRequest { key: b"b".to_vec(), range_end: b"a".to_vec(), ..Default::default() };
    assert_eq!(range_request(&s.read(), &r).unwrap().count, 0);
}

#[test]
fn entries_sharing_one_batch_get_their_own_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let (b, s) = open(dir.path());
    let mut w = s.write();
    w.put(b"a", b"1".to_vec(), 0);
    w.finish_entry();
    // An entry that changes nothing takes no revision.
    assert_eq!(w.delete_range(&KeyRange::Single(b"missing".to_vec())), 0);
    w.finish_entry();
    let seen = w.range(&KeyRange::Single(b"a".to_vec()), RangeOptions::default()).unwrap();
    assert_eq!(seen.kvs[0].value, b"1");
    assert_eq!(w.put(b"a", b"2".to_vec(), 0), 3);
    w.finish_entry();
    let events = w.commit(7).unwrap();
    assert_eq!(events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(s.current_revision(), 3);
    assert_eq!(b.applied_index().unwrap(), 7);
    assert_eq!(get(&s, "a", 2).unwrap(), Some(("1".into(), 2, 2, 1)));
    assert_eq!(get(&s, "a", 3).unwrap(), Some(("2".into(), 2, 3, 2)));
}

#[test]
fn deleting_many_keys_writes_one_tombstone_record() {
    let dir = tempfile::tempdir().unwrap();
    let (b, s) = open(dir.path());
    let mut w = s.write();
    for i in 0..100 {
        w.put(format!("k{i:03}").as_bytes(), b"v".to_vec(), 0);
    }
    w.commit(1).unwrap();
    let mut w = s.write();
    assert_eq!(w.delete_range(&KeyRange::from_request(b"k", b"l")), 100);
    let events = w.commit(2).unwrap();
    assert_eq!(events.len(), 100);
    assert!(events.iter().all(|e| e.kv.as_ref().unwrap().mod_revision == 3));
    assert_eq!(b.scan_prefix([PREFIX_TOMBSTONES]).count(), 1);
    drop(s);
    // The index rebuilt from the record knows every key is gone, at the right revision.
    let s = MvccStore::open(b.clone()).unwrap();
    assert_eq!(get(&s, "k050", 0).unwrap(), None);
    assert_eq!(get(&s, "k050", 2).unwrap(), Some(("v".into(), 2, 2, 1)));
    assert_eq!(s.current_revision(), 3);
}
