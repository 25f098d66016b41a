//! Cairn: an etcd v3 compatible key-value store on raft-rs, sled and tonic.

pub mod proto;
pub mod storage;
