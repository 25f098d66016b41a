//! Continuous backups in S3 (DESIGN §4). The operator writes them; `cairn restore` reads
//! them; both use this crate, so the format has one definition.
//!
//! Under `s3://bucket/prefix/`:
//! - `catalog.json`: the fulls, the generations of writers and the head (see `catalog`). It is
//!   the only object ever overwritten, always with a conditional PUT, and what makes any other
//!   object part of a backup.
//! - `full/<ms>-g<generation>.snap.zst`: a snapshot exactly as Maintenance.Snapshot streams it
//!   (so as `etcdctl snapshot save` writes it), zstd-compressed, uploaded in parts.
//! - `delta/<from>-<to>-g<generation>.cdl`: the changes of revisions from..=to (see `delta`).
//!
//! What a restore does with them (replay into a member's store) is the member's business:
//! `cairn restore`, in cairn-node, on top of `fetch`.

pub mod catalog;
pub mod credentials;
pub mod delta;
mod error;
pub mod fetch;
pub mod full;
pub mod s3;
pub mod time;

pub use error::BackupError;

#[cfg(test)]
mod catalog_tests;
