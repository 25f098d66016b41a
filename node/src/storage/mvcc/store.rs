//! The MVCC store over the backend: read transactions share a read lock; the single writer
//! (the applier) holds the write lock for one raft entry and commits it as one batch.

use super::key_index::{KeyIndex, KeyRange};
use super::revision::{Revision, MARK_PUT, MARK_TOMBSTONE};
use super::MvccError;
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::storage::backend::{self, Backend, BackendError};
use prost::Message;
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

struct State {
    index: KeyIndex,
    /// The newest revision. An empty store is at revision 1, as in etcd.
    rev: i64,
    /// Reads below this revision fail with `Compacted`; 0 before the first compaction.
    compact_rev: i64,
}

pub struct MvccStore {
    backend: Arc<Backend>,
    state: RwLock<State>,
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

fn decode_value(key: &[u8], v: &[u8]) -> Result<(bool, KeyValue), BackendError> {
    let corrupt = |why: String| BackendError::Corrupt {
        key: hex::encode(key),
        why,
    };
    let (&mark, body) = v
        .split_first()
        .ok_or_else(|| corrupt("empty value".into()))?;
    let kv = KeyValue::decode(body).map_err(|e| corrupt(e.to_string()))?;
    Ok((mark == MARK_TOMBSTONE, kv))
}

fn encode_value(mark: u8, kv: &KeyValue) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + kv.encoded_len());
    v.push(mark);
    kv.encode(&mut v).expect("vec has room");
    v
}

impl MvccStore {
    /// Loads the revision counter and rebuilds the key index from the backend.
    pub fn open(backend: Arc<Backend>) -> Result<MvccStore, BackendError> {
        let mut index = KeyIndex::default();
        let mut max_rev = 1i64;
        for item in backend.tree().scan_prefix([backend::PREFIX_REV]) {
            let (k, v) = item?;
            let rev = Revision::from_key(&k).ok_or_else(|| BackendError::Corrupt {
                key: hex::encode(&k),
                why: "bad revision key".into(),
            })?;
            let (tombstone, kv) = decode_value(&k, &v)?;
            index.restore(&kv.key, rev, tombstone, kv.create_revision, kv.version);
            max_rev = max_rev.max(rev.main);
        }
        let stored_rev = backend.get_u64(backend::META_REVISION)?.unwrap_or(1) as i64;
        let compact_rev = backend
            .get_u64(backend::META_COMPACT_REVISION)?
            .unwrap_or(0) as i64;
        Ok(MvccStore {
            backend,
            state: RwLock::new(State {
                index,
                rev: stored_rev.max(max_rev),
                compact_rev,
            }),
        })
    }

    pub fn read(&self) -> ReadTxn<'_> {
        ReadTxn {
            store: self,
            st: self.state.read().unwrap_or_else(|e| e.into_inner()),
        }
    }

    pub fn write(&self) -> WriteTxn<'_> {
        let st = self.state.write().unwrap_or_else(|e| e.into_inner());
        let base_rev = st.rev;
        WriteTxn {
            store: self,
            st,
            base_rev,
            sub: 0,
            batch: sled::Batch::default(),
            pending: HashMap::new(),
            events: Vec::new(),
        }
    }

    pub fn current_revision(&self) -> i64 {
        self.read().st.rev
    }

    pub fn key_count(&self) -> usize {
        self.read().st.index.key_count()
    }

    fn load(&self, rev: Revision) -> Result<KeyValue, MvccError> {
        let key = rev.to_key();
        match self.backend.tree().get(key) {
            Ok(Some(v)) => decode_value(&key, &v)
                .map(|(_, kv)| kv)
                .map_err(|e| MvccError::Backend(e.to_string())),
            Ok(None) => Err(MvccError::Backend(format!(
                "revision {}.{} missing from the backend",
                rev.main, rev.sub
            ))),
            Err(e) => Err(MvccError::Backend(e.to_string())),
        }
    }
}

fn range_in(
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
    Ok(RangeResult {
        kvs,
        count,
        rev: view_rev,
    })
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

/// The changes of one or more raft entries, committed as one backend batch; each entry that
/// changes something gets the next revision (`finish_entry` closes an entry). Dropping it
/// without `commit` after a change is not an option the applier takes: the index it touched
/// would no longer match the backend, so a failure there stops the member.
pub struct WriteTxn<'a> {
    store: &'a MvccStore,
    st: RwLockWriteGuard<'a, State>,
    /// The revision before the current entry's changes.
    base_rev: i64,
    sub: i64,
    batch: sled::Batch,
    pending: HashMap<Revision, KeyValue>,
    events: Vec<Event>,
}

impl WriteTxn<'_> {
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

    /// Closes the current entry: its changes keep their revision, the next entry's get the next.
    pub fn finish_entry(&mut self) {
        self.base_rev = self.rev();
        self.sub = 0;
    }

    pub fn compact_rev(&self) -> i64 {
        self.st.compact_rev
    }

    pub fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult, MvccError> {
        range_in(&self.st, self.rev(), range, opts, |r| {
            match self.pending.get(&r) {
                Some(kv) => Ok(kv.clone()),
                None => self.store.load(r),
            }
        })
    }

    fn next_rev(&mut self) -> Revision {
        let r = Revision {
            main: self.base_rev + 1,
            sub: self.sub,
        };
        self.sub += 1;
        r
    }

    /// Returns the revision of the write.
    pub fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64) -> i64 {
        let rev = self.next_rev();
        let (create_revision, version) = self.st.index.put(key, rev);
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: rev.main,
            version,
            value,
            lease,
        };
        self.batch
            .insert(&rev.to_key(), encode_value(MARK_PUT, &kv));
        self.events.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv.clone()),
            prev_kv: None,
        });
        self.pending.insert(rev, kv);
        rev.main
    }

    /// Deletes every key visible in `range`; returns how many.
    pub fn delete_range(&mut self, range: &KeyRange) -> usize {
        let at = self.rev();
        let keys: Vec<Vec<u8>> = self
            .st
            .index
            .visible(range, at)
            .map(|(k, _)| k.to_vec())
            .collect();
        for key in &keys {
            let rev = self.next_rev();
            self.st.index.tombstone(key, rev);
            let kv = KeyValue {
                key: key.clone(),
                mod_revision: rev.main,
                ..Default::default()
            };
            self.batch
                .insert(&rev.to_key(), encode_value(MARK_TOMBSTONE, &kv));
            self.events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(kv),
                prev_kv: None,
            });
        }
        keys.len()
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

    /// Removes history older than `at` from the index and the backend.
    pub fn compact(&mut self, at: i64) -> Result<usize, MvccError> {
        self.check_compact(at)?;
        let removed = self.st.index.compact(at);
        for r in &removed {
            self.batch.remove(&r.to_key());
        }
        self.st.compact_rev = at;
        Ok(removed.len())
    }

    /// Applies everything as one backend batch together with the raft index of the last entry
    /// in it, then publishes the new revision. Returns the events, in revision order.
    pub fn commit(mut self, applied_index: u64) -> Result<Vec<Event>, BackendError> {
        let new_rev = self.rev();
        backend::put_u64(&mut self.batch, backend::META_APPLIED_INDEX, applied_index);
        backend::put_u64(&mut self.batch, backend::META_REVISION, new_rev as u64);
        backend::put_u64(
            &mut self.batch,
            backend::META_COMPACT_REVISION,
            self.st.compact_rev as u64,
        );
        self.store.backend.apply(std::mem::take(&mut self.batch))?;
        self.st.rev = new_rev;
        Ok(std::mem::take(&mut self.events))
    }
}
