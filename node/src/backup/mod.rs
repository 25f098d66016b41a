//! Continuous backups in S3 and restores from them (DESIGN §4). The operator writes them;
//! `cairn restore` reads them; both live here so that the format has one definition.
//!
//! Under `s3://bucket/prefix/`:
//! - `catalog.json`: the fulls, the generations of writers and the head (see `catalog`). It is
//!   the only object ever overwritten, always with a conditional PUT, and what makes any other
//!   object part of a backup.
//! - `full/<ms>-g<generation>.snap.zst`: a snapshot exactly as Maintenance.Snapshot streams it
//!   (so as `etcdctl snapshot save` writes it), zstd-compressed, uploaded in parts.
//! - `delta/<from>-<to>-g<generation>.cdl`: the changes of revisions from..=to (see `delta`).

pub mod catalog;
pub mod delta;
pub mod full;
pub mod replay;
pub mod restore;
pub mod s3;

#[cfg(test)]
mod catalog_tests;
