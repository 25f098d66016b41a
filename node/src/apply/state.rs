//! The state the applier owns, opened: the backend with its one writer, and the MVCC store
//! over it. Opening finishes what the applier had started before a crash (a snapshot's image
//! half loaded) and writes a new member's founders, so that the writer never leaves apply/
//! (and the offline tools that make new data dirs).

use crate::proto::cairnpb::MemberRecord;
use crate::storage::backend::{Backend, BackendError, BackendWriter};
use crate::storage::mvcc::{MvccError, MvccStore};
use prost::Message;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    #[error("loading the snapshot image {path}: {source}")]
    Image { path: String, source: std::io::Error },
}

pub struct State {
    pub backend: Arc<Backend>,
    pub mvcc: Arc<MvccStore>,
    /// The last raft index applied.
    pub applied: u64,
    pub(super) writer: BackendWriter,
}

/// Opens the backend at `db`. A new member writes its `founders` first. An image of the
/// snapshot at `snapshot_index` (the WAL's latest marker), if the backend is behind it, is the
/// install a crash interrupted: loaded now, before anything else writes.
pub fn open_state(
    db: &Path,
    founders: Option<&[MemberRecord]>,
    snapshot_index: u64,
    image: &Path,
) -> Result<State, OpenError> {
    let (backend, writer) = Backend::open(db)?;
    if let Some(members) = founders {
        write_initial_members(&writer, members)?;
    }
    let mut applied = backend.applied_index()?;
    if applied < snapshot_index && image.exists() {
        tracing::info!(index = snapshot_index, "loading the snapshot a crash interrupted");
        crate::storage::image::load(&writer, image)
            .map_err(|source| OpenError::Image { path: image.display().to_string(), source })?;
        applied = backend.applied_index()?;
    }
    let mvcc = Arc::new(MvccStore::open(backend.clone())?);
    Ok(State { backend, mvcc, applied, writer })
}

/// A new cluster's members, as every founding member writes them from --initial-cluster
/// before its first entry (all write the same, so they agree without a raft round).
pub fn write_initial_members(writer: &BackendWriter, members: &[MemberRecord]) -> Result<(), BackendError> {
    let mut batch = sled::Batch::default();
    for m in members {
        batch.insert(&crate::membership::record_key(m.id), m.encode_to_vec());
    }
    writer.apply(batch)?;
    writer.flush()
}
