//! Backups on demand (DESIGN §4): a `CairnBackup` takes one full snapshot of a named cluster
//! now, as a backup of its own (catalog and full snapshot) that `cairn restore` and
//! `spec.bootstrap.restore` read like any other. Its own controller, beside the clusters'.

pub mod backup;
pub mod crd;
