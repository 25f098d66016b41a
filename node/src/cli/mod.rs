//! The tools of the `cairn` binary (its subcommands): `bench`, `snapshot save|status|restore`,
//! `restore` from a backup in S3, and etcd's proxies, `gateway start` and `grpc-proxy start`.
//! They are the binary's, not the library's: a member never runs them.

pub mod backup;
pub mod bench;
pub mod connect;
pub mod gateway;
pub mod grpc_proxy;
pub mod snapshot;
