//! Why a backup writer's session ended (it starts another, and reports this meanwhile).

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error(transparent)]
    Backup(#[from] cairn_backup::BackupError),
    #[error(transparent)]
    Dial(#[from] cairn_api::dial::DialError),
    /// A member's answer.
    #[error("{}", .0.message())]
    Member(#[from] tonic::Status),
    #[error("timed out")]
    TimedOut(#[from] tokio::time::error::Elapsed),
    #[error("the catalog: {0}")]
    Catalog(#[from] serde_json::Error),
    /// What was being done when `source` happened.
    #[error("{what}: {source}")]
    During { what: String, source: Box<WriterError> },
    #[error("{0}")]
    Failed(String),
}

impl WriterError {
    pub fn during(self, what: impl Into<String>) -> WriterError {
        WriterError::During { what: what.into(), source: Box::new(self) }
    }
}

pub type Result<T> = std::result::Result<T, WriterError>;
