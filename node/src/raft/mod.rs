//! The only module that touches raft-rs. `RaftNode` owns the `RawNode` on a thread of its own
//! and runs the Ready loop; everyone else talks to it through a `RaftHandle`, and the raft
//! log on disk through `read_log` and `create_log`, in Cairn's terms.

mod force;
mod handle;
mod log;
mod node;
mod storage;

pub use force::force_new_cluster;
pub use handle::RaftHandle;
pub use node::{spawn, NodeConfig, Parts, Started};

use crate::storage::wal::{Identity, TornTail, WalError};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error(transparent)]
    Log(#[from] WalError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error(transparent)]
    Applier(#[from] crate::apply::Stopped),
    #[error("raft: {0}")]
    Io(#[from] std::io::Error),
}

/// What a member's raft log holds, as bootstrap needs to know it.
#[derive(Debug)]
pub struct LogSummary {
    pub identity: Identity,
    /// The index the log's latest snapshot marker covers (the backend holds everything
    /// before it).
    pub snapshot_index: u64,
    /// The last entry the log holds.
    pub last_index: u64,
    /// A torn write at its end, which opening the log cuts.
    pub torn: Option<TornTail>,
}

/// Reads the raft log in `dir` without changing anything on disk.
pub fn read_log(dir: &Path) -> Result<LogSummary, WalError> {
    let r = log::RaftLog::read(dir)?;
    Ok(LogSummary { identity: r.identity, snapshot_index: r.snapshot.index, last_index: r.last_index(), torn: r.torn })
}

/// Creates the raft log of a member founding a new cluster of `voters`: membership as of
/// index 1, term 1 (as etcd's bootstrap entries are), so the first election makes term 2.
pub fn create_log(dir: &Path, identity: Identity, voters: Vec<u64>) -> Result<(), WalError> {
    let (snapshot, hard_state) = storage::bootstrap_state(voters);
    log::RaftLog::create(dir, identity, &snapshot, &hard_state).map(drop)
}

/// Creates the empty raft log of a member joining a running cluster: its configuration
/// comes with the first snapshot the leader sends.
pub fn create_joining_log(dir: &Path, identity: Identity) -> Result<(), WalError> {
    log::RaftLog::create(dir, identity, &Default::default(), &Default::default()).map(drop)
}

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
    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Relaxed)
    }
    pub fn has_leader(&self) -> bool {
        self.leader() != 0
    }
}
