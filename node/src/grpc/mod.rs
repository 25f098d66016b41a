//! gRPC services, one file each. Handlers validate, then either read locally (after a
//! ReadIndex for linearizable reads) or propose through raft and wait; they never write
//! storage themselves.

pub mod kv;
pub mod status;
pub mod validate;

use crate::metrics::Metrics;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::raft::RaftHandle;
use crate::storage::backend::Backend;
use crate::storage::mvcc::MvccStore;
use std::sync::Arc;

/// What every service needs; shared behind an Arc.
pub struct ServerCtx {
    pub cluster_id: u64,
    pub member_id: u64,
    pub raft: RaftHandle,
    pub mvcc: Arc<MvccStore>,
    pub backend: Arc<Backend>,
    pub metrics: Arc<Metrics>,
    pub max_txn_ops: usize,
}

impl ServerCtx {
    /// Fills a response header as etcd does: ids and term always; the revision only when the
    /// response did not set one (then the current revision).
    pub fn fill(&self, header: &mut Option<ResponseHeader>) {
        let h = header.get_or_insert_with(ResponseHeader::default);
        h.cluster_id = self.cluster_id;
        h.member_id = self.member_id;
        h.raft_term = self.raft.status().term();
        if h.revision == 0 {
            h.revision = self.mvcc.current_revision();
        }
    }
}
