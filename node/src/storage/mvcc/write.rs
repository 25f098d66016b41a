//! The write transaction: the changes of one or more raft entries, committed as one backend
//! batch. Each entry that changes something gets the next revision (`finish_entry` closes an
//! entry). The applier never drops one after a change without committing: the index it
//! touched would no longer match the backend, so a failure there stops the member.

use super::key_index::KeyRange;
use super::revision::{tombstones_key, Revision};
use super::store::{garbage_keys, range_in, MvccStore, RangeOptions, RangeResult, State};
use super::MvccError;
use crate::proto::cairnpb::TombstoneRecord;
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::storage::backend::{self, BackendError, BackendWriter};
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::sync::RwLockWriteGuard;

impl MvccStore {
    /// The write transaction: only the holder of the backend's writer (the applier) can
    /// open one.
    pub fn write<'a>(&'a self, writer: &'a BackendWriter) -> WriteTxn<'a> {
        WriteTxn::new(self, writer, self.state.write().unwrap_or_else(|e| e.into_inner()))
    }
}

pub struct WriteTxn<'a> {
    store: &'a MvccStore,
    writer: &'a BackendWriter,
    st: RwLockWriteGuard<'a, State>,
    /// The revision before the current entry's changes.
    base_rev: i64,
    sub: i64,
    batch: sled::Batch,
    /// Values written in this batch, readable before the batch reaches the backend.
    pending: HashMap<Revision, KeyValue>,
    /// The current entry's deletions by record key, written when the entry closes.
    tombstones: BTreeMap<[u8; 17], TombstoneRecord>,
    events: Vec<Event>,
    garbage: Vec<Vec<u8>>,
}

impl<'a> WriteTxn<'a> {
    fn new(store: &'a MvccStore, writer: &'a BackendWriter, st: RwLockWriteGuard<'a, State>) -> Self {
        let base_rev = st.rev;
        WriteTxn {
            store,
            writer,
            st,
            base_rev,
            sub: 0,
            batch: sled::Batch::default(),
            pending: HashMap::new(),
            tombstones: BTreeMap::new(),
            events: Vec::new(),
            garbage: Vec::new(),
        }
    }

    /// The revision reads in this transaction see: its own writes included.
    pub fn rev(&self) -> i64 {
        if self.sub > 0 {
            self.base_rev + 1
        } else {
            self.base_rev
        }
    }

    /// Whether the current entry changed anything.
    pub fn has_changes(&self) -> bool {
        self.sub > 0
    }

    pub fn compact_rev(&self) -> i64 {
        self.st.compact_rev
    }

    /// Closes the current entry: its changes keep their revision, the next entry's get the next.
    pub fn finish_entry(&mut self) {
        self.flush_tombstones();
        self.base_rev = self.rev();
        self.sub = 0;
    }

    fn flush_tombstones(&mut self) {
        for (key, rec) in std::mem::take(&mut self.tombstones) {
            self.batch.insert(&key, rec.encode_to_vec());
        }
    }

    pub fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult, MvccError> {
        range_in(&self.st, self.rev(), range, opts, |r| match self.pending.get(&r) {
            Some(kv) => Ok(kv.clone()),
            None => self.store.load(r),
        })
    }

    fn next_rev(&mut self) -> Revision {
        let r = Revision { main: self.base_rev + 1, sub: self.sub };
        self.sub += 1;
        r
    }

    /// Returns the revision of the write.
    pub fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64) -> i64 {
        let rev = self.next_rev();
        let (create_revision, version) = self.st.index.put(key, rev, lease);
        let kv = KeyValue { key: key.to_vec(), create_revision, mod_revision: rev.main, version, value, lease };
        self.batch.insert(&rev.to_key(), kv.encode_to_vec());
        self.events.push(Event { r#type: EventType::Put as i32, kv: Some(kv.clone()), prev_kv: None });
        self.pending.insert(rev, kv);
        rev.main
    }

    /// Deletes every key visible in `range`; returns how many.
    pub fn delete_range(&mut self, range: &KeyRange) -> usize {
        let at = self.rev();
        let keys: Vec<Vec<u8>> = self.st.index.visible(range, at).map(|(k, _)| k.to_vec()).collect();
        for key in &keys {
            let rev = self.next_rev();
            self.st.index.tombstone(key, rev);
            let rec = self.tombstones.entry(tombstones_key(rev)).or_default();
            rec.subs.push(rev.sub);
            rec.keys.push(key.clone());
            let kv = KeyValue { key: key.clone(), mod_revision: rev.main, ..Default::default() };
            self.events.push(Event { r#type: EventType::Delete as i32, kv: Some(kv), prev_kv: None });
        }
        keys.len()
    }

    /// Writes a record that is state beside the MVCC history (a lease, say) in this batch.
    pub fn put_record(&mut self, key: &[u8], value: Vec<u8>) {
        self.batch.insert(key, value);
    }

    pub fn remove_record(&mut self, key: &[u8]) {
        self.batch.remove(key);
    }

    /// How many events this batch produced so far; with `events_since`, one entry's events.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    pub fn events_since(&self, from: usize) -> &[Event] {
        &self.events[from..]
    }

    /// Checks a compaction target the way etcd does.
    pub fn check_compact(&self, at: i64) -> Result<(), MvccError> {
        if at <= self.st.compact_rev {
            return Err(MvccError::Compacted);
        }
        if at > self.st.rev {
            return Err(MvccError::FutureRev);
        }
        Ok(())
    }

    /// Forgets history older than `at`: reads below it fail from now on; the backend records
    /// it occupied become garbage once this batch commits. Returns how many changes it freed.
    pub fn compact(&mut self, at: i64) -> Result<usize, MvccError> {
        self.check_compact(at)?;
        let removed = self.st.index.compact(at);
        self.garbage.extend(garbage_keys(&removed));
        self.st.compact_rev = at;
        Ok(removed.len())
    }

    /// Applies everything as one backend batch together with the raft index of the last entry
    /// in it, then publishes the new revision. Returns the events, in revision order.
    pub fn commit(mut self, applied_index: u64) -> Result<Vec<Event>, BackendError> {
        self.flush_tombstones();
        let new_rev = self.rev();
        backend::put_u64(&mut self.batch, backend::META_APPLIED_INDEX, applied_index);
        backend::put_u64(&mut self.batch, backend::META_REVISION, new_rev as u64);
        backend::put_u64(&mut self.batch, backend::META_COMPACT_REVISION, self.st.compact_rev as u64);
        self.writer.apply(std::mem::take(&mut self.batch))?;
        self.st.rev = new_rev;
        // Only now may the freed records go: the compaction that freed them is in the backend.
        self.store.add_garbage(std::mem::take(&mut self.garbage));
        Ok(std::mem::take(&mut self.events))
    }
}
