//! Cairn: an etcd v3 compatible key-value store on raft-rs, sled and tonic.

pub mod alarm;
pub mod apply;
pub mod backup;
pub mod bench;
pub mod config;
pub mod dial;
pub mod fatal;
pub mod grpc;
pub mod lease;
pub mod membership;
pub mod metrics;
pub mod proto;
pub mod raft;
pub mod server;
pub mod snapshot;
pub mod storage;
pub mod transport;
pub mod wait;
