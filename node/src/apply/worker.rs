//! The applier's own thread, and the handle raft and the maintenance services reach it by.
//! Work arrives on one bounded queue, in order: committed entries from raft, a snapshot's
//! image to install, and the jobs that must run between two batches (an image of the
//! backend, a defragmentation, a hash). What raft must learn back (membership changes that
//! passed, images written) goes on a queue of its own, which raft drains on every pass.

use super::{Applier, Committed};
use crate::error::EtcdError;
use crate::membership::Change;
use crate::storage::backend::Backend;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

/// Committed batches and jobs waiting for the applier.
const QUEUE: usize = 1024;

enum Item {
    Entries(Vec<Committed>),
    /// Replace the state with a snapshot's image, as of `index`.
    Install {
        index: u64,
        image: PathBuf,
    },
    /// Write an image of the backend as of the last applied entry, for a snapshot to send.
    BuildImage,
    /// The same for a client (Maintenance.Snapshot): to `path`, answered when done.
    WriteImage {
        path: PathBuf,
        reply: oneshot::Sender<Result<u64, String>>,
    },
    Defragment {
        reply: oneshot::Sender<Result<(u64, u64), String>>,
    },
    Hash {
        reply: oneshot::Sender<Result<u32, String>>,
    },
}

/// What the applier tells raft.
pub enum ApplierEvent {
    /// A membership change passed validation and is in the backend: raft applies it too.
    ConfChange(Change),
    /// An image raft asked for is written (`None`: writing it failed; raft asks again).
    ImageBuilt(Option<BuiltImage>),
}

/// A backend image for a raft snapshot: its index and file, and the configuration as of it.
pub struct BuiltImage {
    pub index: u64,
    pub path: PathBuf,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

/// The applier stopped (the member is stopping).
#[derive(Debug, thiserror::Error)]
#[error("the applier stopped")]
pub struct Stopped;

#[derive(Clone)]
pub struct ApplierHandle {
    tx: SyncSender<Item>,
    /// The last entry applied.
    applied: Arc<AtomicU64>,
    /// The last entry applied and flushed to disk: the WAL may drop what precedes it.
    durable: Arc<AtomicU64>,
}

pub struct Spawned {
    pub handle: ApplierHandle,
    pub events: Receiver<ApplierEvent>,
    /// Ends once every handle is dropped, after flushing the backend.
    pub thread: JoinHandle<()>,
}

/// Starts the applier's thread. `snapshot_count`: how many applied entries may wait for a
/// backend flush (then the WAL before them can go); images go to `snap_dir`.
pub fn spawn(
    applier: Applier,
    backend: Arc<Backend>,
    snapshot_count: u64,
    snap_dir: PathBuf,
) -> std::io::Result<Spawned> {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let (events_tx, events) = mpsc::channel();
    let last = applier.last_applied();
    let handle = ApplierHandle { tx, applied: Arc::new(AtomicU64::new(last)), durable: Arc::new(AtomicU64::new(last)) };
    let worker = Worker {
        applier,
        backend,
        snapshot_count,
        snap_dir,
        events: events_tx,
        applied: handle.applied.clone(),
        durable: handle.durable.clone(),
    };
    let thread = std::thread::Builder::new().name("cairn-apply".into()).spawn(move || worker.run(rx))?;
    Ok(Spawned { handle, events, thread })
}

impl ApplierHandle {
    fn send(&self, item: Item) -> Result<(), Stopped> {
        self.tx.send(item).map_err(|_| Stopped)
    }

    /// Hands over committed entries (in order, after everything handed over before).
    pub fn apply(&self, entries: Vec<Committed>) -> Result<(), Stopped> {
        if entries.is_empty() {
            return Ok(());
        }
        self.send(Item::Entries(entries))
    }

    /// Replaces the state with the image of a snapshot, as of raft index `index`.
    pub fn install(&self, index: u64, image: PathBuf) -> Result<(), Stopped> {
        self.send(Item::Install { index, image })
    }

    /// Asks for an image of the backend for a raft snapshot (answered by an event).
    pub fn build_image(&self) -> Result<(), Stopped> {
        self.send(Item::BuildImage)
    }

    /// Writes a consistent image of the backend to `path` (the applier pauses meanwhile);
    /// returns the raft index it is as of.
    pub async fn write_image(&self, path: PathBuf) -> Result<u64, EtcdError> {
        let (reply, rx) = oneshot::channel();
        self.job(Item::WriteImage { path, reply })?;
        rx.await.map_err(|_| EtcdError::Stopped)?.map_err(EtcdError::Internal)
    }

    /// Rewrites the backend into a compact copy (the applier pauses meanwhile); returns the
    /// size on disk before and after.
    pub async fn defragment(&self) -> Result<(u64, u64), EtcdError> {
        let (reply, rx) = oneshot::channel();
        self.job(Item::Defragment { reply })?;
        rx.await.map_err(|_| EtcdError::Stopped)?.map_err(EtcdError::Internal)
    }

    /// A hash of the whole backend (the applier pauses meanwhile).
    pub async fn hash(&self) -> Result<u32, EtcdError> {
        let (reply, rx) = oneshot::channel();
        self.job(Item::Hash { reply })?;
        rx.await.map_err(|_| EtcdError::Stopped)?.map_err(EtcdError::Internal)
    }

    /// A client's job: refused when the queue is full rather than waited for.
    fn job(&self, item: Item) -> Result<(), EtcdError> {
        self.tx.try_send(item).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => EtcdError::TooManyRequests,
            mpsc::TrySendError::Disconnected(_) => EtcdError::Stopped,
        })
    }

    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }
}

struct Worker {
    applier: Applier,
    backend: Arc<Backend>,
    snapshot_count: u64,
    snap_dir: PathBuf,
    events: Sender<ApplierEvent>,
    applied: Arc<AtomicU64>,
    durable: Arc<AtomicU64>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Item>) {
        let mut last_flushed = self.durable.load(Ordering::Relaxed);
        let mut last = last_flushed;
        loop {
            // With compaction garbage left, poll so the cleanup proceeds between batches.
            let wait = if self.applier.has_garbage() { Duration::ZERO } else { Duration::from_secs(1) };
            match rx.recv_timeout(wait) {
                Ok(Item::Entries(entries)) => {
                    for change in self.applier.apply(&entries) {
                        // Fails only when raft is gone, that is when the member stops.
                        let _ = self.events.send(ApplierEvent::ConfChange(change));
                    }
                    last = last.max(self.applier.last_applied());
                }
                Ok(Item::Install { index, image }) => {
                    if let Err(e) = self.applier.install(index, &image) {
                        crate::fatal::stop("installing a snapshot failed", &e);
                    }
                    tracing::info!(index, "installed a snapshot");
                    // The image load flushed the backend.
                    last = index;
                    last_flushed = index;
                    self.durable.store(index, Ordering::Release);
                }
                Ok(Item::BuildImage) => {
                    let path = crate::storage::image::path(&self.snap_dir, last);
                    let built = match crate::storage::image::write(&self.backend, &path) {
                        Ok(bytes) => {
                            tracing::info!(index = last, bytes, "wrote a backend image for a snapshot");
                            // The configuration as of the image: what its member records say.
                            let m = self.applier.membership();
                            Some(BuiltImage { index: last, path, voters: m.voters(), learners: m.learners() })
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "writing a backend image failed");
                            None
                        }
                    };
                    let _ = self.events.send(ApplierEvent::ImageBuilt(built));
                }
                Ok(Item::Defragment { reply }) => {
                    // Between batches: nothing writes while the copy is made and switched to.
                    let started = std::time::Instant::now();
                    let r = self.applier.defragment().map_err(|e| e.to_string());
                    if let Ok((before, after)) = &r {
                        tracing::info!(before, after, took = ?started.elapsed(), "defragmented the backend");
                    }
                    let _ = reply.send(r);
                }
                Ok(Item::Hash { reply }) => {
                    // Between batches, so the hash is of one point in time.
                    let _ = reply.send(self.backend.hash().map_err(|e| e.to_string()));
                }
                Ok(Item::WriteImage { path, reply }) => {
                    // Between batches, so the image is one consistent point in time.
                    let r = crate::storage::image::write(&self.backend, &path).map(|_| last).map_err(|e| e.to_string());
                    let _ = reply.send(r);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.applied.store(last, Ordering::Release);
            if let Err(e) = self.applier.collect_garbage() {
                crate::fatal::stop("deleting compacted records failed", &e);
            }
            if last - last_flushed >= self.snapshot_count {
                // The WAL may only drop entries the backend holds on disk.
                if let Err(e) = self.backend.flush() {
                    crate::fatal::stop("backend flush failed", &e);
                }
                last_flushed = last;
                self.durable.store(last, Ordering::Release);
            }
        }
        if let Err(e) = self.backend.flush() {
            tracing::error!(error = %e, "final backend flush failed");
        }
    }
}
