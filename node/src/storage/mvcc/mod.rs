//! Multi-version key-value store: every change gets a revision; history is kept until
//! compaction. Writers are serialized (only the applier writes); readers see a consistent
//! revision because the in-memory index and the revision counter only change under the
//! write lock, after the backend batch that backs them is applied.

mod hash;
mod history;
mod key_index;
mod range;
mod revision;
mod store;
pub mod watch;
mod write;

pub use hash::KvHash;
pub use history::History;
pub use key_index::KeyRange;
pub use range::{range_request, RangeView};
pub use revision::{tombstones_main, Revision};
pub use store::{MvccStore, RangeOptions, RangeResult, ReadTxn};
pub use write::WriteTxn;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MvccError {
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    #[error("backend: {0}")]
    Backend(String),
}

#[cfg(test)]
mod tests;

impl From<MvccError> for crate::error::EtcdError {
    fn from(e: MvccError) -> Self {
        match e {
            MvccError::Compacted => crate::error::EtcdError::Compacted,
            MvccError::FutureRev => crate::error::EtcdError::FutureRev,
            MvccError::Backend(s) => crate::error::EtcdError::Internal(s),
        }
    }
}
