//! Why a backup operation failed, with the object or call it was about.

use crate::catalog::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// An S3 call failed: what it was for, and the SDK's account of why.
    #[error("{what}: {why}")]
    S3 { what: String, why: String },
    /// A conditional PUT lost: somebody else wrote the object since it was read.
    #[error("s3://{0}: changed by another writer")]
    Conflict(String),
    /// An object is missing or not what the backup says it is.
    #[error("{0}")]
    Object(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A member's snapshot stream failed or did not check out.
    #[error("{0}")]
    Snapshot(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

impl BackupError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
        let what = what.into();
        move |source| BackupError::Io { what, source }
    }
}
