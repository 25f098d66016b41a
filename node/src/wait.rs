//! Waiters for proposals, keyed by request id. A result is matched to its request by id, never
//! by order: after a leader change entries can commit in another order than proposed, or not
//! at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Who waits for which result (`T`: what applying a request produced).
pub struct Waiters<T> {
    next: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<T>>>,
}

impl<T> Default for Waiters<T> {
    fn default() -> Self {
        // A random start keeps ids of a restarted member apart from those it used before.
        Waiters { next: AtomicU64::new(rand::random::<u64>() >> 1), pending: Mutex::new(HashMap::new()) }
    }
}

impl<T> Waiters<T> {
    pub fn register(&self) -> (u64, oneshot::Receiver<T>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        (id, rx)
    }

    pub fn trigger(&self, id: u64, result: T) {
        if let Some(tx) = self.lock().remove(&id) {
            let _ = tx.send(result);
        }
    }

    pub fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<T>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}
