//! Cairn's wire, shared by the member (`cairn-node`), the operator and the tests: etcd's v3
//! API and Cairn's own protos (the replicated request envelope, the peer transport, the
//! backup records) with their generated gRPC clients and servers; dialing an endpoint as
//! etcdctl names it; and the format of the snapshots Maintenance.Snapshot streams.

pub mod dial;
pub mod proto;
pub mod snapshot;
