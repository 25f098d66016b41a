//! Watchers and the hub that feeds them.
//!
//! A *synced* watcher is at the head: the applier hands it each committed batch's events
//! (`notify`), without ever waiting. When a watcher's stream queue is full it becomes
//! *unsynced* (etcd's "victim") at the first revision it did not get, and `catch_up` — run by
//! a task of its own — reads its missed events back from the MVCC history, in bounded chunks,
//! until it is at the head again. A watcher that starts in the past begins unsynced. Nothing
//! is buffered beyond the stream queues (bounded in bytes, see `queue`), and nothing is lost: a watcher whose history has been
//! compacted away is canceled with the compaction revision.

use super::{KeyRange, MvccStore};
use crate::proto::etcdserverpb::{ResponseHeader, WatchResponse};
use crate::proto::mvccpb::{event::EventType, Event};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::Notify;

mod queue;
pub use queue::{stream_queue, QueueReceiver, QueueSender};

/// Events read from history per catch-up step (a revision is never split).
const CATCH_UP_EVENTS: usize = 1000;

/// A watcher is named by its stream and its id on that stream.
pub type WatcherKey = (u64, i64);

#[derive(Clone)]
pub struct Watcher {
    pub range: KeyRange,
    /// The next revision this watcher is owed.
    pub next_rev: i64,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
    /// The stream's queue, shared by all its watchers.
    pub tx: QueueSender,
}

impl Watcher {
    fn wants(&self, ev: &Event) -> bool {
        let Some(kv) = &ev.kv else { return false };
        let filtered = if ev.r#type == EventType::Put as i32 { self.no_put } else { self.no_delete };
        kv.mod_revision >= self.next_rev && !filtered && self.range.contains(&kv.key)
    }
}

#[derive(Default)]
struct Inner {
    /// The newest revision notified.
    rev: i64,
    synced: HashMap<WatcherKey, Watcher>,
    unsynced: HashMap<WatcherKey, Watcher>,
}

pub struct WatchHub {
    inner: Mutex<Inner>,
    /// Wakes the catch-up task.
    pub lagging: Notify,
}

fn response(watch_id: i64, revision: i64, events: Vec<Event>) -> WatchResponse {
    WatchResponse {
        header: Some(ResponseHeader { revision, ..Default::default() }),
        watch_id,
        events,
        ..Default::default()
    }
}

impl WatchHub {
    pub fn new(rev: i64) -> WatchHub {
        WatchHub { inner: Mutex::new(Inner { rev, ..Default::default() }), lagging: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn revision(&self) -> i64 {
        self.lock().rev
    }

    /// (watchers, of which behind).
    pub fn stats(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.synced.len() + inner.unsynced.len(), inner.unsynced.len())
    }

    /// Registers a watcher; returns false if its id is taken on its stream.
    pub fn add(&self, key: WatcherKey, w: Watcher) -> bool {
        let mut inner = self.lock();
        if inner.synced.contains_key(&key) || inner.unsynced.contains_key(&key) {
            return false;
        }
        if w.next_rev > inner.rev {
            inner.synced.insert(key, w);
        } else {
            inner.unsynced.insert(key, w);
            drop(inner);
            self.lagging.notify_one();
        }
        true
    }

    /// The store jumped to `rev` (a snapshot was installed) without events: every watcher
    /// catches up from the new history, or is told it was compacted.
    pub fn resync(&self, rev: i64) {
        let mut inner = self.lock();
        inner.rev = rev;
        let synced = std::mem::take(&mut inner.synced);
        inner.unsynced.extend(synced);
        drop(inner);
        self.lagging.notify_one();
    }

    pub fn contains(&self, key: WatcherKey) -> bool {
        let inner = self.lock();
        inner.synced.contains_key(&key) || inner.unsynced.contains_key(&key)
    }

    pub fn remove(&self, key: WatcherKey) -> bool {
        let mut inner = self.lock();
        inner.synced.remove(&key).is_some() || inner.unsynced.remove(&key).is_some()
    }

    pub fn remove_stream(&self, stream: u64) {
        let mut inner = self.lock();
        inner.synced.retain(|k, _| k.0 != stream);
        inner.unsynced.retain(|k, _| k.0 != stream);
    }

    pub fn is_synced(&self, key: WatcherKey) -> bool {
        self.lock().synced.contains_key(&key)
    }

    /// Whether every watcher of a stream is at the head (a progress notification may go out).
    pub fn stream_synced(&self, stream: u64) -> bool {
        !self.lock().unsynced.keys().any(|k| k.0 == stream)
    }

    /// The applier's hand-off after a commit: `events` of revisions up to `rev`. Never blocks.
    /// `prev` looks up the previous value of an event's key for watchers that asked for it.
    pub fn notify(&self, rev: i64, events: &[Event], prev: impl Fn(&Event) -> Option<Event>) {
        let mut inner = self.lock();
        inner.rev = rev;
        let mut fell_behind = Vec::new();
        let mut gone = Vec::new();
        for (key, w) in inner.synced.iter_mut() {
            let mine: Vec<Event> = events
                .iter()
                .filter(|e| w.wants(e))
                .map(|e| if w.prev_kv { prev(e).unwrap_or_else(|| e.clone()) } else { e.clone() })
                .collect();
            if mine.is_empty() {
                w.next_rev = rev + 1;
                continue;
            }
            let first = mine[0].kv.as_ref().map_or(w.next_rev, |kv| kv.mod_revision);
            match w.tx.try_send(response(key.1, rev, mine)) {
                Ok(()) => w.next_rev = rev + 1,
                Err(TrySendError::Full(_)) => {
                    w.next_rev = first;
                    fell_behind.push(*key);
                }
                Err(TrySendError::Closed(_)) => gone.push(*key),
            }
        }
        for key in gone {
            inner.synced.remove(&key);
        }
        let lagging = !fell_behind.is_empty();
        crate::metrics::get().watchers_fell_behind.inc_by(fell_behind.len() as u64);
        for key in fell_behind {
            if let Some(w) = inner.synced.remove(&key) {
                inner.unsynced.insert(key, w);
            }
        }
        drop(inner);
        if lagging {
            self.lagging.notify_one();
        }
    }

    /// One pass over the unsynced watchers: history is read ONCE, from the lowest revision any
    /// of them is owed, and each gets its part; those whose history is compacted are canceled;
    /// those that reached the head become synced. Returns whether any watcher is still behind.
    pub fn catch_up(&self, mvcc: &MvccStore) -> bool {
        // A snapshot: history is read without holding the hub.
        let todo: Vec<(WatcherKey, Watcher)> = self.lock().unsynced.iter().map(|(k, w)| (*k, w.clone())).collect();
        if todo.is_empty() {
            return false;
        }
        let head = self.revision();
        let compacted = mvcc.compact_revision();
        let mut behind = Vec::new();
        for (key, w) in todo {
            if w.next_rev < compacted {
                let cancel = WatchResponse {
                    header: Some(ResponseHeader { revision: head, ..Default::default() }),
                    watch_id: key.1,
                    canceled: true,
                    // etcd 3.4 leaves cancel_reason empty here: clients key on compact_revision.
                    compact_revision: compacted,
                    ..Default::default()
                };
                if !matches!(w.tx.try_send(cancel), Err(TrySendError::Full(_))) {
                    self.remove(key);
                }
            } else if w.tx.has_room() {
                behind.push((key, w));
            }
            // A full stream waits for its reader: it must not pin everyone's read window.
        }
        let Some(from) = behind.iter().map(|(_, w)| w.next_rev).min() else {
            return !self.lock().unsynced.is_empty();
        };
        // One read serves every watcher owed a revision in its window.
        let everything = KeyRange::Span { start: Vec::new(), end: None };
        let prev_kv = behind.iter().any(|(_, w)| w.prev_kv);
        let hist = match mvcc.events(&everything, from, head, CATCH_UP_EVENTS, prev_kv) {
            Ok(h) => h,
            Err(e) => {
                // Compacted between the check and the read: the next pass cancels.
                tracing::debug!(error = %e, "reading watch history");
                return true;
            }
        };
        for (key, w) in behind {
            let mine: Vec<Event> = hist
                .events
                .iter()
                .filter(|e| w.wants(e))
                .map(|e| if w.prev_kv { e.clone() } else { Event { prev_kv: None, ..e.clone() } })
                .collect();
            if !mine.is_empty() {
                match w.tx.try_send(response(key.1, head, mine)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => continue,
                    Err(TrySendError::Closed(_)) => {
                        self.remove(key);
                        continue;
                    }
                }
            }
            let mut inner = self.lock();
            let head_now = inner.rev;
            if let Some(cur) = inner.unsynced.get_mut(&key) {
                // Only if it is still the watcher we read for (not canceled and re-created).
                if cur.next_rev == w.next_rev {
                    cur.next_rev = hist.next.max(w.next_rev);
                    if cur.next_rev > head_now {
                        let cur = inner.unsynced.remove(&key).expect("just seen");
                        inner.synced.insert(key, cur);
                    }
                }
            }
        }
        !self.lock().unsynced.is_empty()
    }
}

/// Runs `catch_up` whenever a watcher falls behind, and keeps retrying (a stalled client's
/// queue frees up only when it reads) until nobody is behind. Ends when the server stops.
pub async fn run_catch_up(hub: Arc<WatchHub>, mvcc: Arc<MvccStore>, mut stopping: tokio::sync::watch::Receiver<bool>) {
    loop {
        let behind = {
            let (hub, mvcc) = (hub.clone(), mvcc.clone());
            tokio::task::spawn_blocking(move || hub.catch_up(&mvcc)).await.unwrap_or(true)
        };
        let pause = if behind { std::time::Duration::from_millis(2) } else { std::time::Duration::from_secs(1) };
        tokio::select! {
            _ = hub.lagging.notified(), if !behind => {}
            _ = tokio::time::sleep(pause) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}
