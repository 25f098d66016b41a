//! Durable state: the raft write-ahead log, the sled backend and MVCC on top of it.

pub mod backend;
pub mod crc32c;
pub mod datadir;
pub mod disk;
pub mod image;
pub mod mvcc;
pub mod private;
pub mod wal;
