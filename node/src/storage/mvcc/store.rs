//! The MVCC store over the backend: read transactions share a read lock; the single writer
//! (the applier) holds the write lock while it applies a batch of entries (see `write.rs`).
//!
//! Compaction is logical first: the index forgets old revisions and the compact revision moves,
//! in the entry that asked for it. The backend records it freed are garbage that nobody can
//! reach any more; the applier deletes them in bounded chunks (`collect_garbage`) so that a
//! large compaction never stalls writes. After a crash, `open` finds the leftovers again by
//! compacting the rebuilt index.

use super::key_index::{KeyIndex, KeyRange};
use super::revision::{self, tombstones_key, Revision};
use super::MvccError;
use crate::proto::cairnpb::TombstoneRecord;
use crate::proto::mvccpb::KeyValue;
use crate::storage::backend::{self, Backend, BackendError, BackendWriter};
use prost::Message;
use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

pub(super) struct State {
    pub(super) index: KeyIndex,
    /// The newest revision. An empty store is at revision 1, as in etcd.
    pub(super) rev: i64,
    /// Reads below this revision fail with `Compacted`; -1 before the first compaction.
    pub(super) compact_rev: i64,
}

pub struct MvccStore {
    pub(super) backend: Arc<Backend>,
    pub(super) state: RwLock<State>,
    /// Backend keys freed by compaction, not yet deleted.
    garbage: Mutex<VecDeque<Vec<u8>>>,
}

/// What a range asks of the store (the request-level options live in `range.rs`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RangeOptions {
    /// 0 = no limit.
    pub limit: usize,
    /// <= 0 = the view's revision.
    pub rev: i64,
    pub count_only: bool,
}

pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// Keys in the range at the revision, regardless of the limit.
    pub count: usize,
    /// The view's revision (not the one read at).
    pub rev: i64,
}

/// The backend keys that hold the given compacted changes.
pub(super) fn garbage_keys(removed: &[(Revision, bool)]) -> Vec<Vec<u8>> {
    let mut tombstone_records = BTreeSet::new();
    let mut keys = Vec::with_capacity(removed.len());
    for (rev, tombstone) in removed {
        if *tombstone {
            tombstone_records.insert(tombstones_key(*rev));
        } else {
            keys.push(rev.to_key().to_vec());
        }
    }
    keys.extend(tombstone_records.into_iter().map(|k| k.to_vec()));
    keys
}

/// Every change in the backend, in revision order: (revision, key, None for a tombstone or
/// Some((create revision, version, lease)) for a put).
type Change = (Revision, Vec<u8>, Option<(i64, i64, i64)>);

fn load_changes(backend: &Backend) -> Result<Vec<Change>, BackendError> {
    let mut changes = Vec::new();
    for item in backend.scan_prefix([backend::PREFIX_REV]) {
        let (k, v) = item?;
        let rev = Revision::from_key(&k).ok_or_else(|| revision::corrupt(&k, "bad revision key"))?;
        let kv = revision::decode_put(&k, &v)?;
        changes.push((rev, kv.key, Some((kv.create_revision, kv.version, kv.lease))));
    }
    for item in backend.scan_prefix([backend::PREFIX_TOMBSTONES]) {
        let (k, v) = item?;
        let main = revision::tombstones_main(&k).ok_or_else(|| revision::corrupt(&k, "bad tombstone key"))?;
        let rec = TombstoneRecord::decode(&v[..]).map_err(|e| revision::corrupt(&k, e))?;
        if rec.subs.len() != rec.keys.len() {
            return Err(revision::corrupt(&k, "tombstone record lengths differ"));
        }
        for (sub, key) in rec.subs.into_iter().zip(rec.keys) {
            changes.push((Revision { main, sub }, key, None));
        }
    }
    changes.sort_unstable_by_key(|c| c.0);
    Ok(changes)
}

impl MvccStore {
    /// Loads the revision counter and rebuilds the key index from the backend.
    pub fn open(backend: Arc<Backend>) -> Result<MvccStore, BackendError> {
        let (state, leftovers) = Self::load_state(&backend)?;
        Ok(MvccStore { backend, state: RwLock::new(state), garbage: Mutex::new(leftovers) })
    }

    /// Rebuilds the key index from the backend, which the applier replaced with a snapshot's.
    pub fn reload(&self) -> Result<(), BackendError> {
        let (state, leftovers) = Self::load_state(&self.backend)?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
        *self.garbage.lock().unwrap_or_else(|e| e.into_inner()) = leftovers;
        Ok(())
    }

    fn load_state(backend: &Backend) -> Result<(State, VecDeque<Vec<u8>>), BackendError> {
        let mut index = KeyIndex::default();
        let mut max_rev = 1i64;
        for (rev, key, put) in load_changes(backend)? {
            match put {
                Some((created, version, lease)) => index.restore(&key, rev, false, created, version, lease),
                None => index.restore(&key, rev, true, 0, 0, 0),
            }
            max_rev = max_rev.max(rev.main);
        }
        let stored_rev = backend.get_u64(backend::META_REVISION)?.unwrap_or(1) as i64;
        // -1 (stored as its two's complement) until the first compaction, as etcd's
        // compactMainRev: so that Compact(0) on a fresh store succeeds, as on etcd.
        let compact_rev = backend.get_u64(backend::META_COMPACT_REVISION)?.map_or(-1, |r| r as i64);
        // Records a compaction freed but a crash kept: find them again.
        let leftovers = garbage_keys(&index.compact(compact_rev));
        Ok((State { index, rev: stored_rev.max(max_rev), compact_rev }, leftovers.into()))
    }

    pub fn read(&self) -> ReadTxn<'_> {
        ReadTxn { store: self, st: self.state.read().unwrap_or_else(|e| e.into_inner()) }
    }

    pub fn current_revision(&self) -> i64 {
        self.read().st.rev
    }

    pub fn compact_revision(&self) -> i64 {
        self.read().st.compact_rev
    }

    pub fn key_count(&self) -> usize {
        self.read().st.index.key_count()
    }

    /// Live keys attached to a lease, with the lease (the lessor's state at start).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn leased_keys(&self) -> Vec<(Vec<u8>, i64)> {
        self.read().st.index.leased()
    }

    pub(super) fn add_garbage(&self, keys: Vec<Vec<u8>>) {
        self.garbage.lock().unwrap_or_else(|e| e.into_inner()).extend(keys);
    }

    pub fn garbage_len(&self) -> usize {
        self.garbage.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Deletes up to `max` records freed by compaction; returns how many. Only the applier
    /// calls this (it is a backend write), between batches.
    pub fn collect_garbage(&self, writer: &BackendWriter, max: usize) -> Result<usize, BackendError> {
        let chunk: Vec<Vec<u8>> = {
            let mut g = self.garbage.lock().unwrap_or_else(|e| e.into_inner());
            let n = g.len().min(max);
            g.drain(..n).collect()
        };
        if chunk.is_empty() {
            return Ok(0);
        }
        let mut batch = sled::Batch::default();
        for k in &chunk {
            batch.remove(k.as_slice());
        }
        writer.apply(batch)?;
        Ok(chunk.len())
    }

    pub(super) fn load(&self, rev: Revision) -> Result<KeyValue, MvccError> {
        let key = rev.to_key();
        match self.backend.get(key) {
            Ok(Some(v)) => revision::decode_put(&key, &v).map_err(|e| MvccError::Backend(e.to_string())),
            Ok(None) => Err(MvccError::Backend(format!("revision {}.{} missing from the backend", rev.main, rev.sub))),
            Err(e) => Err(MvccError::Backend(e.to_string())),
        }
    }
}

pub(super) fn range_in(
    st: &State,
    view_rev: i64,
    range: &KeyRange,
    opts: RangeOptions,
    mut load: impl FnMut(Revision) -> Result<KeyValue, MvccError>,
) -> Result<RangeResult, MvccError> {
    if opts.rev > view_rev {
        return Err(MvccError::FutureRev);
    }
    let at = if opts.rev <= 0 { view_rev } else { opts.rev };
    if at < st.compact_rev {
        return Err(MvccError::Compacted);
    }
    let mut kvs = Vec::new();
    let mut count = 0;
    for (_, rev) in st.index.visible(range, at) {
        count += 1;
        if !opts.count_only && (opts.limit == 0 || kvs.len() < opts.limit) {
            kvs.push(load(rev)?);
        }
    }
    Ok(RangeResult { kvs, count, rev: view_rev })
}

pub struct ReadTxn<'a> {
    store: &'a MvccStore,
    st: RwLockReadGuard<'a, State>,
}

impl ReadTxn<'_> {
    pub fn rev(&self) -> i64 {
        self.st.rev
    }

    pub fn compact_rev(&self) -> i64 {
        self.st.compact_rev
    }

    pub fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult, MvccError> {
        range_in(&self.st, self.st.rev, range, opts, |r| self.store.load(r))
    }
}
