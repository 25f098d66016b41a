//! Cairn: an etcd v3 compatible key-value store on raft-rs, sled and tonic.

pub mod alarm;
pub mod apply;
pub mod auth;
pub mod config;
pub mod error;
pub mod fatal;
pub mod gateway;
pub mod grpc;
pub mod lease;
pub mod membership;
pub mod metrics;
pub mod raft;
pub mod server;
pub mod storage;
pub mod tls;
pub mod transport;
pub mod version;
pub mod wait;

pub use cairn_api::proto;
