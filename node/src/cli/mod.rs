//! The offline tools of the `cairn` binary (its subcommands): `bench`, `snapshot save|status|
//! restore`, and `restore` from a backup in S3. They are the binary's, not the library's: a
//! member never runs them.

pub mod backup;
pub mod bench;
pub mod connect;
pub mod snapshot;
