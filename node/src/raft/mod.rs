//! The only module that touches raft-rs. `RaftNode` owns the `RawNode` on a thread of its own
//! and runs the Ready loop; everyone else talks to it through a `RaftHandle`.

mod handle;
mod node;
mod storage;

pub use handle::RaftHandle;
pub use node::{spawn, NodeConfig, Parts, Started};
pub use storage::{bootstrap_state, restore_storage};

/// A membership change as raft carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChangeKind {
    AddVoter,
    AddLearner,
    Promote,
    Remove,
}

/// A raft message for another member, encoded. A snapshot's backend image goes beside it.
pub struct Outgoing {
    pub to: u64,
    pub message: Vec<u8>,
    pub image: Option<std::path::PathBuf>,
    /// The raft index the image is as of (0 without one).
    pub snapshot_index: u64,
}

/// Where the Ready loop sends messages for other members. Must not block.
pub trait Network: Send + Sync {
    fn send(&self, out: Vec<Outgoing>);
}

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What the rest of the server may know of raft, updated by the Ready loop.
#[derive(Default)]
pub struct RaftStatus {
    term: AtomicU64,
    leader: AtomicU64,
    commit: AtomicU64,
    applied: AtomicU64,
    is_leader: AtomicBool,
}

impl RaftStatus {
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Relaxed)
    }
    pub fn leader(&self) -> u64 {
        self.leader.load(Ordering::Relaxed)
    }
    pub fn commit_index(&self) -> u64 {
        self.commit.load(Ordering::Relaxed)
    }
    pub fn applied_index(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }
    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Relaxed)
    }
    pub fn has_leader(&self) -> bool {
        self.leader() != 0
    }
}
