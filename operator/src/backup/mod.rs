//! Backups of a CairnCluster to S3 (DESIGN §4): the format and the restore live in the node
//! crate (`cairn_backup`); here are the writer that makes them, its schedule, and the
//! runner that keeps one writer per cluster going while the operator leads.

pub mod cron;
pub mod error;
pub mod health;
pub mod reconcile;
pub mod runner;
pub mod watch;
pub mod writer;
