//! Revisions and how history is laid out in the backend.

use crate::proto::mvccpb::KeyValue;
use crate::storage::backend::{BackendError, PREFIX_REV, PREFIX_TOMBSTONES};
use prost::Message;

/// `main` is the store revision of a change; `sub` orders the changes within one revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    /// The backend key of a put. Big-endian, so the backend's byte order is revision order.
    pub fn to_key(self) -> [u8; 17] {
        let mut k = [0u8; 17];
        k[0] = PREFIX_REV;
        k[1..9].copy_from_slice(&(self.main as u64).to_be_bytes());
        k[9..17].copy_from_slice(&(self.sub as u64).to_be_bytes());
        k
    }

    pub fn from_key(k: &[u8]) -> Option<Revision> {
        if k.len() != 17 || k[0] != PREFIX_REV {
            return None;
        }
        Some(Revision {
            main: u64::from_be_bytes(k[1..9].try_into().ok()?) as i64,
            sub: u64::from_be_bytes(k[9..17].try_into().ok()?) as i64,
        })
    }
}

/// Tombstones of one revision are stored in records of at most this many, so that no record
/// grows large (sled rewrites whole nodes, and a huge value makes every rewrite expensive).
pub const TOMBSTONES_PER_RECORD: i64 = 256;

/// The backend key of the tombstone record holding the tombstone at `rev`.
pub fn tombstones_key(rev: Revision) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = PREFIX_TOMBSTONES;
    k[1..9].copy_from_slice(&(rev.main as u64).to_be_bytes());
    k[9..17].copy_from_slice(&((rev.sub / TOMBSTONES_PER_RECORD) as u64).to_be_bytes());
    k
}

/// The main revision of a tombstone record key.
pub fn tombstones_main(k: &[u8]) -> Option<i64> {
    if k.len() != 17 || k[0] != PREFIX_TOMBSTONES {
        return None;
    }
    Some(u64::from_be_bytes(k[1..9].try_into().ok()?) as i64)
}

pub fn corrupt(key: &[u8], why: impl ToString) -> BackendError {
    BackendError::Corrupt { key: hex::encode(key), why: why.to_string() }
}

pub fn decode_put(key: &[u8], v: &[u8]) -> Result<KeyValue, BackendError> {
    KeyValue::decode(v).map_err(|e| corrupt(key, e))
}
