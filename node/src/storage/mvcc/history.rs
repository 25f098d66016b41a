//! Reading the event history back from the backend: what a watcher that starts in the past,
//! or fell behind, is sent.

use super::key_index::KeyRange;
use super::revision::{self, Revision};
use super::store::MvccStore;
use super::MvccError;
use crate::proto::cairnpb::TombstoneRecord;
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::storage::backend::PREFIX_TOMBSTONES;
use prost::Message;

/// A chunk of history.
pub struct History {
    /// In revision order; never ends in the middle of a revision.
    pub events: Vec<Event>,
    /// The revision to read from next: past `to` once everything up to it was read.
    pub next: i64,
}

impl MvccStore {
    /// Events in `range` with revisions `from..=to`, stopping at a revision boundary once
    /// `max_events` are gathered. Fails with `Compacted` if `from` is below the compaction.
    pub fn events(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
        max_events: usize,
        prev_kv: bool,
    ) -> Result<History, MvccError> {
        // The read lock keeps compaction from moving while we read.
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        if from < st.compact_rev {
            return Err(MvccError::Compacted);
        }
        let to = to.min(st.rev);
        if from > to {
            return Ok(History { events: Vec::new(), next: from });
        }
        let backend_err = |e: sled::Error| MvccError::Backend(e.to_string());
        let lo = Revision { main: from, sub: 0 };
        let hi = Revision { main: to + 1, sub: 0 };
        let mut changes: Vec<(Revision, Event)> = Vec::new();
        for item in self.backend.range(lo.to_key()..hi.to_key()) {
            let (k, v) = item.map_err(backend_err)?;
            let rev = Revision::from_key(&k).ok_or_else(|| MvccError::Backend("bad revision key".into()))?;
            let kv = revision::decode_put(&k, &v).map_err(|e| MvccError::Backend(e.to_string()))?;
            if range.contains(&kv.key) {
                changes.push((rev, Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: None }));
            }
        }
        let mut tlo = [0u8; 9];
        tlo[0] = PREFIX_TOMBSTONES;
        tlo[1..].copy_from_slice(&(from as u64).to_be_bytes());
        let mut thi = tlo;
        thi[1..].copy_from_slice(&((to + 1) as u64).to_be_bytes());
        for item in self.backend.range(tlo..thi) {
            let (k, v) = item.map_err(backend_err)?;
            let main = revision::tombstones_main(&k).ok_or_else(|| MvccError::Backend("bad tombstone key".into()))?;
            if main <= st.compact_rev {
                // Compacted (perhaps not yet deleted): a tombstone at the compaction revision
                // is history no read can see.
                continue;
            }
            let rec = TombstoneRecord::decode(&v[..]).map_err(|e| MvccError::Backend(e.to_string()))?;
            for (sub, key) in rec.subs.into_iter().zip(rec.keys) {
                if range.contains(&key) {
                    let kv = KeyValue { key, mod_revision: main, ..Default::default() };
                    changes.push((
                        Revision { main, sub },
                        Event { r#type: EventType::Delete as i32, kv: Some(kv), prev_kv: None },
                    ));
                }
            }
        }
        changes.sort_unstable_by_key(|(r, _)| *r);
        let mut events = Vec::new();
        let mut next = to + 1;
        for (rev, mut ev) in changes {
            if events.len() >= max_events
                && events.last().is_some_and(|e: &Event| e.kv.as_ref().map(|k| k.mod_revision) != Some(rev.main))
            {
                next = rev.main;
                break;
            }
            if prev_kv {
                let key = ev.kv.as_ref().map(|k| k.key.clone()).unwrap_or_default();
                ev.prev_kv = previous(self, &st.index, &key, rev, st.compact_rev)?;
            }
            events.push(ev);
        }
        Ok(History { events, next })
    }

    /// The value `key` had just before `rev`, unless that is compacted away.
    pub fn prev_kv(&self, key: &[u8], rev: Revision) -> Result<Option<KeyValue>, MvccError> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        previous(self, &st.index, key, rev, st.compact_rev)
    }
}

fn previous(
    store: &MvccStore,
    index: &super::key_index::KeyIndex,
    key: &[u8],
    rev: Revision,
    compact_rev: i64,
) -> Result<Option<KeyValue>, MvccError> {
    let at = rev.main - 1;
    if at < compact_rev || at < 1 {
        return Ok(None);
    }
    let range = KeyRange::Single(key.to_vec());
    // Within one revision a txn cannot touch a key twice, so "just before" is `main - 1`.
    let found = index.visible(&range, at).next().map(|(_, r)| r);
    match found {
        Some(r) => store.load(r).map(Some),
        None => Ok(None),
    }
}
