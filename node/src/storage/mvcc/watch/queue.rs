//! A watch stream's outgoing queue, bounded in responses AND in bytes.
//!
//! A count bound alone is not a memory bound: one applier batch of 512 large puts is a single
//! response, so 1024 queued responses could hold gigabytes for a client that stopped reading.
//! Here a response is refused once the bytes already queued reach the budget; the response
//! that crosses it is still taken (a revision is never split, and an empty queue must always
//! accept one response or a huge revision could never be delivered). So one stream holds at
//! most `max_bytes` plus one response.

use crate::proto::etcdserverpb::WatchResponse;
use prost::Message;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

#[derive(Clone)]
pub struct QueueSender {
    tx: mpsc::Sender<WatchResponse>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

pub struct QueueReceiver {
    rx: mpsc::Receiver<WatchResponse>,
    queued: Arc<AtomicUsize>,
}

pub fn stream_queue(max_responses: usize, max_bytes: usize) -> (QueueSender, QueueReceiver) {
    let (tx, rx) = mpsc::channel(max_responses);
    let queued = Arc::new(AtomicUsize::new(0));
    (QueueSender { tx, queued: queued.clone(), max_bytes }, QueueReceiver { rx, queued })
}

impl QueueSender {
    /// Whether a response would be taken now.
    pub fn has_room(&self) -> bool {
        self.tx.capacity() > 0 && self.queued.load(Ordering::Relaxed) < self.max_bytes
    }

    /// Never waits: `Full` when the client is behind, `Closed` when it is gone.
    pub fn try_send(&self, r: WatchResponse) -> Result<(), TrySendError<WatchResponse>> {
        if self.tx.is_closed() {
            return Err(TrySendError::Closed(r));
        }
        if self.queued.load(Ordering::Relaxed) >= self.max_bytes {
            return Err(TrySendError::Full(r));
        }
        let n = r.encoded_len();
        // Counted before it is visible to the receiver, so the count never goes below zero.
        self.queued.fetch_add(n, Ordering::Relaxed);
        self.tx.try_send(r).inspect_err(|_| {
            self.queued.fetch_sub(n, Ordering::Relaxed);
        })
    }

    /// For the stream's own answers (`created`, `canceled`, progress): waits for a slot, not
    /// for bytes, as these are small and must not be dropped. False once the client is gone.
    pub async fn send(&self, r: WatchResponse) -> bool {
        let n = r.encoded_len();
        self.queued.fetch_add(n, Ordering::Relaxed);
        let sent = self.tx.send(r).await.is_ok();
        if !sent {
            self.queued.fetch_sub(n, Ordering::Relaxed);
        }
        sent
    }

    /// Bytes waiting for the client (for tests and metrics).
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

impl QueueReceiver {
    pub async fn recv(&mut self) -> Option<WatchResponse> {
        let r = self.rx.recv().await?;
        self.queued.fetch_sub(r.encoded_len(), Ordering::Relaxed);
        Some(r)
    }

    pub fn into_stream(self) -> impl futures::Stream<Item = WatchResponse> {
        futures::stream::unfold(self, |mut q| async move { q.recv().await.map(|r| (r, q)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mvccpb::{Event, KeyValue};

    fn big(bytes: usize) -> WatchResponse {
        let kv = KeyValue { key: b"k".to_vec(), value: vec![0; bytes], ..Default::default() };
        WatchResponse { events: vec![Event { kv: Some(kv), ..Default::default() }], ..Default::default() }
    }

    #[tokio::test]
    async fn bytes_bound_the_queue_but_one_response_always_fits() {
        let (tx, mut rx) = stream_queue(1024, 1000);
        // Larger than the whole budget, yet taken: the queue is empty.
        assert!(tx.try_send(big(5000)).is_ok());
        assert!(matches!(tx.try_send(big(1)), Err(TrySendError::Full(_))));
        assert!(!tx.has_room());
        assert_eq!(rx.recv().await.unwrap().events[0].kv.as_ref().unwrap().value.len(), 5000);
        assert_eq!(tx.queued_bytes(), 0);
        assert!(tx.has_room());
        for _ in 0..3 {
            tx.try_send(big(300)).unwrap();
        }
        assert!(tx.try_send(big(300)).is_ok(), "900 queued is under the budget");
        assert!(tx.try_send(big(300)).is_err(), "1200 queued is not");
        drop(rx);
        assert!(matches!(tx.try_send(big(1)), Err(TrySendError::Closed(_))));
    }

    #[tokio::test]
    async fn the_count_bound_still_holds_for_small_responses() {
        let (tx, _rx) = stream_queue(2, 1 << 20);
        tx.try_send(big(1)).unwrap();
        tx.try_send(big(1)).unwrap();
        assert!(matches!(tx.try_send(big(1)), Err(TrySendError::Full(_))));
        assert!(!tx.has_room());
    }
}
