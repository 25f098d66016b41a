//! The sled database. Everything lives in ONE tree so that a single `sled::Batch` — data plus
//! the applied raft index — is atomic: after a crash the backend is exactly as of some applied
//! index, and raft replays from there.
//!
//! Key prefixes, in key order: `l` + lease id (a lease), `m` + name (metadata), `q` + main revision + chunk (tombstones
//! of that revision), `r` + revision (a put). The order matters to sled: new puts append at
//! the very end of the keyspace, so no other record shares the leaf they keep rewriting.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend: {0}")]
    Sled(#[from] sled::Error),
    #[error("backend: corrupt value under {key}: {why}")]
    Corrupt { key: String, why: String },
}

pub const PREFIX_REV: u8 = b'r';
pub const PREFIX_TOMBSTONES: u8 = b'q';
pub const PREFIX_LEASE: u8 = b'l';
pub const PREFIX_META: u8 = b'm';

pub const META_APPLIED_INDEX: &[u8] = b"mapplied_index";
pub const META_REVISION: &[u8] = b"mrevision";
pub const META_COMPACT_REVISION: &[u8] = b"mcompact_revision";

pub struct Backend {
    db: sled::Db,
    tree: sled::Tree,
}

impl Backend {
    pub fn open(path: &Path) -> Result<Backend, BackendError> {
        let db = sled::Config::new().path(path).flush_every_ms(Some(200)).open()?;
        let tree = db.open_tree("cairn")?;
        Ok(Backend { db, tree })
    }

    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    pub fn apply(&self, batch: sled::Batch) -> Result<(), BackendError> {
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Waits until every applied batch is on disk.
    pub fn flush(&self) -> Result<(), BackendError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    pub fn get_u64(&self, key: &[u8]) -> Result<Option<u64>, BackendError> {
        match self.tree.get(key)? {
            None => Ok(None),
            Some(v) => {
                let b: [u8; 8] = v.as_ref().try_into().map_err(|_| BackendError::Corrupt {
                    key: String::from_utf8_lossy(key).into_owned(),
                    why: format!("expected 8 bytes, found {}", v.len()),
                })?;
                Ok(Some(u64::from_be_bytes(b)))
            }
        }
    }

    pub fn applied_index(&self) -> Result<u64, BackendError> {
        Ok(self.get_u64(META_APPLIED_INDEX)?.unwrap_or(0))
    }
}

pub fn put_u64(batch: &mut sled::Batch, key: &[u8], v: u64) {
    batch.insert(key, &v.to_be_bytes());
}
