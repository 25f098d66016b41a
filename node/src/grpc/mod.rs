//! gRPC services, one file each. Handlers validate, then either read locally (after a
//! ReadIndex for linearizable reads) or propose through raft and wait; they never write
//! storage themselves.

pub mod cluster;
pub mod election;
mod forward;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod quota;
mod recipes;
pub mod status;
pub mod validate;
pub mod watch;

use crate::apply::FromApplied;
use crate::error::EtcdError;
use crate::metrics::Metrics;
use crate::proto::cairnpb::internal_request::Request;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::raft::RaftHandle;
use crate::storage::mvcc::MvccStore;
use std::sync::Arc;

/// Every etcd response carries a header; this reaches it generically.
pub trait Headed {
    fn header_mut(&mut self) -> &mut Option<ResponseHeader>;
}

#[macro_export]
macro_rules! headed {
    ($($ty:ty),* $(,)?) => {$(
        impl $crate::grpc::Headed for $ty {
            fn header_mut(&mut self) -> &mut Option<$crate::proto::etcdserverpb::ResponseHeader> {
                &mut self.header
            }
        }
    )*};
}

/// What every service uses: the ids and term and revision a response header carries, the
/// count of each call, the learner check, raft (to propose and to read linearizably), the
/// store (to read), and the stop signal. What a service needs beyond it, it is given alone.
pub struct Common {
    pub cluster_id: u64,
    pub member_id: u64,
    pub raft: RaftHandle,
    pub mvcc: Arc<MvccStore>,
    pub metrics: Arc<Metrics>,
    pub membership: Arc<crate::membership::Membership>,
    /// Turns true when the server stops: long-lived streams end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// How this member dials other members' client URLs (forwarding to the leader): with
    /// its own client certificate and trusted CA when they serve TLS.
    pub dial: cairn_api::dial::DialOptions,
}

impl Common {
    /// A learner serves serializable reads only (and Status); the rest is refused with
    /// etcd's error before anything else is looked at.
    pub fn not_learner(&self) -> Result<(), EtcdError> {
        if self.membership.me_is_learner() {
            return Err(EtcdError::NotSupportedForLearner);
        }
        Ok(())
    }

    /// The same check for whole services (every call of Lease, Watch, Lock, Election and
    /// Cluster), as a tonic interceptor.
    pub fn learner_gate(
        self: &Arc<Self>,
    ) -> impl Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
        let ctx = self.clone();
        move |r| ctx.not_learner().map(|()| r).map_err(tonic::Status::from)
    }

    /// Resolves once the server is stopping.
    pub async fn stopped(&self) {
        let mut s = self.stopping.clone();
        let _ = s.wait_for(|v| *v).await;
    }
}

impl Common {
    /// Fills a response header as etcd does: ids and term always; the revision only when the
    /// response did not set one (then the current revision).
    pub fn fill(&self, resp: &mut impl Headed) {
        let h = resp.header_mut().get_or_insert_with(ResponseHeader::default);
        h.cluster_id = self.cluster_id;
        h.member_id = self.member_id;
        h.raft_term = self.raft.status().term();
        if h.revision == 0 {
            h.revision = self.mvcc.current_revision();
        }
    }

    /// A handler's last step: fill the header, count the call, map the error.
    pub fn answer<T: Headed>(
        &self,
        service: &'static str,
        method: &'static str,
        r: Result<T, EtcdError>,
    ) -> Result<tonic::Response<T>, tonic::Status> {
        let code = r.as_ref().err().map_or(tonic::Code::Ok, status::code);
        self.metrics.grpc_handled(service, method, code);
        r.map(|mut resp| {
            self.fill(&mut resp);
            tonic::Response::new(resp)
        })
        .map_err(tonic::Status::from)
    }

    /// `answer` for the calls etcd answers without a header (Defragment, MoveLeader: etcd
    /// 3.4 returns them empty, and client libraries' tests check it).
    pub fn answer_bare<T>(
        &self,
        service: &'static str,
        method: &'static str,
        r: Result<T, EtcdError>,
    ) -> Result<tonic::Response<T>, tonic::Status> {
        let code = r.as_ref().err().map_or(tonic::Code::Ok, status::code);
        self.metrics.grpc_handled(service, method, code);
        r.map(tonic::Response::new).map_err(tonic::Status::from)
    }

    /// Replicates a request and returns the response applying it produced.
    pub async fn propose<T: FromApplied>(&self, req: Request) -> Result<T, EtcdError> {
        let applied = self.raft.propose(req).await?;
        let shown = format!("{applied:?}");
        T::from_applied(applied).ok_or_else(|| EtcdError::Internal(format!("unexpected apply result {shown}")))
    }
}
