//! Revisions and their byte encoding in the backend.

use crate::storage::backend::PREFIX_REV;

/// `main` is the store revision of a change; `sub` orders the changes within one revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    /// Big-endian so that the backend's byte order is revision order.
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

/// Stored value: one marker byte (put or tombstone) then the encoded `mvccpb.KeyValue`.
pub const MARK_PUT: u8 = 0;
pub const MARK_TOMBSTONE: u8 = 1;
