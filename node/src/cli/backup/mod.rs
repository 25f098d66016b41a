//! `cairn restore`: a member's data dir from a backup in S3 (the format and what a restore
//! fetches are cairn-backup's; replaying it into the member's store is here).

pub mod replay;
pub mod restore;
