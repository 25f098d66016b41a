//! In-memory index: for every key, the revisions at which it changed. Rebuilt from the
//! backend at start; values stay in the backend.

use super::Revision;
use std::collections::BTreeMap;
use std::ops::Bound;

/// A key range as etcd requests express it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRange {
    Single(Vec<u8>),
    /// `[start, end)`; `end: None` means every key from `start` on (etcd's range_end "\0").
    Span {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
    },
}

impl KeyRange {
    pub fn from_request(key: &[u8], range_end: &[u8]) -> KeyRange {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::Span { start: key.to_vec(), end: None },
            end => KeyRange::Span { start: key.to_vec(), end: Some(end.to_vec()) },
        }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        match self {
            KeyRange::Single(key) => key == k,
            KeyRange::Span { start, end } => k >= start.as_slice() && end.as_ref().is_none_or(|e| k < e.as_slice()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Change {
    rev: Revision,
    tombstone: bool,
}

#[derive(Debug, Default)]
struct History {
    changes: Vec<Change>,
    /// Create revision, version and lease of the live generation (meaningless after a
    /// tombstone).
    created: i64,
    version: i64,
    lease: i64,
}

impl History {
    fn at(&self, main: i64) -> Option<Revision> {
        let n = self.changes.partition_point(|c| c.rev.main <= main);
        let c = self.changes[..n].last()?;
        (!c.tombstone).then_some(c.rev)
    }

    fn live(&self) -> bool {
        self.changes.last().is_some_and(|c| !c.tombstone)
    }
}

#[derive(Debug, Default)]
pub struct KeyIndex {
    keys: BTreeMap<Vec<u8>, History>,
    /// Keys whose newest change is a put (etcd_debugging_mvcc_keys_total).
    live: usize,
}

impl KeyIndex {
    /// Records a put and returns the (create revision, version) the new value carries.
    pub fn put(&mut self, key: &[u8], rev: Revision, lease: i64) -> (i64, i64) {
        let h = self.keys.entry(key.to_vec()).or_default();
        h.lease = lease;
        if h.live() {
            h.version += 1;
        } else {
            h.created = rev.main;
            h.version = 1;
            self.live += 1;
        }
        h.changes.push(Change { rev, tombstone: false });
        (h.created, h.version)
    }

    pub fn tombstone(&mut self, key: &[u8], rev: Revision) {
        if let Some(h) = self.keys.get_mut(key) {
            self.live -= usize::from(h.live());
            h.changes.push(Change { rev, tombstone: true });
        }
    }

    /// Used while rebuilding from the backend, in revision order.
    pub fn restore(&mut self, key: &[u8], rev: Revision, tombstone: bool, created: i64, version: i64, lease: i64) {
        let h = self.keys.entry(key.to_vec()).or_default();
        let was = h.live();
        h.changes.push(Change { rev, tombstone });
        self.live = self.live + usize::from(h.live()) - usize::from(was);
        if !tombstone {
            h.created = created;
            h.version = version;
            h.lease = lease;
        }
    }

    /// Live keys attached to a lease, with the lease.
    pub fn leased(&self) -> Vec<(Vec<u8>, i64)> {
        self.keys.iter().filter(|(_, h)| h.live() && h.lease != 0).map(|(k, h)| (k.clone(), h.lease)).collect()
    }

    /// Keys visible at revision `main` within `range`, in key order, with the revision of the
    /// value each one had then.
    pub fn visible<'a>(
        &'a self,
        range: &'a KeyRange,
        main: i64,
    ) -> Box<dyn Iterator<Item = (&'a [u8], Revision)> + 'a> {
        match range {
            KeyRange::Single(k) => Box::new(
                self.keys
                    .get_key_value(k.as_slice())
                    .and_then(|(k, h)| h.at(main).map(|r| (k.as_slice(), r)))
                    .into_iter(),
            ),
            KeyRange::Span { start, end } => {
                if end.as_ref().is_some_and(|e| e <= start) {
                    return Box::new(std::iter::empty());
                }
                let hi = match end {
                    Some(e) => Bound::Excluded(e.as_slice()),
                    None => Bound::Unbounded,
                };
                Box::new(
                    self.keys
                        .range::<[u8], _>((Bound::Included(start.as_slice()), hi))
                        .filter_map(move |(k, h)| h.at(main).map(|r| (k.as_slice(), r))),
                )
            }
        }
    }

    /// Drops every change that no read at `at` or later can see, returning them (with their
    /// tombstone flag) so that their records can be deleted from the backend. Every tombstone
    /// at or before `at` is among them.
    pub fn compact(&mut self, at: i64) -> Vec<(Revision, bool)> {
        let mut removed = Vec::new();
        self.keys.retain(|_, h| {
            let n = h.changes.partition_point(|c| c.rev.main <= at);
            if n == 0 {
                return true;
            }
            // The newest change at or before `at` is what a read at `at` sees: keep it unless
            // it is a tombstone (then the key simply does not exist at `at`).
            let keep_from = if h.changes[n - 1].tombstone { n } else { n - 1 };
            removed.extend(h.changes.drain(..keep_from).map(|c| (c.rev, c.tombstone)));
            !h.changes.is_empty()
        });
        removed
    }

    /// The revision of every key's value visible at `main`.
    pub fn visible_revisions(&self, main: i64) -> std::collections::HashSet<Revision> {
        self.keys.values().filter_map(|h| h.at(main)).collect()
    }

    /// Whether the change at `rev` of `key` is still in the index (compaction drops the rest).
    pub fn holds(&self, key: &[u8], rev: Revision) -> bool {
        self.keys.get(key).is_some_and(|h| h.changes.iter().any(|c| c.rev == rev))
    }

    /// Keys that exist now (not deleted). Compaction never changes it: it keeps each key's
    /// newest change unless that is a tombstone.
    pub fn key_count(&self) -> usize {
        self.live
    }
}
