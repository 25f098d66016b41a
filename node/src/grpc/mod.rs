//! gRPC services, one file each. Handlers validate, then either read locally (after a
//! ReadIndex for linearizable reads) or propose through raft and wait; they never write
//! storage themselves.

pub mod auth;
pub mod cluster;
pub mod election;
mod forward;
pub mod health;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod quota;
mod recipes;
pub mod status;
pub mod validate;
pub mod watch;

use crate::apply::{FromApplied, Origin};
use crate::auth::{AuthInfo, AuthStore, CertName, Credentials, Need};
use crate::error::EtcdError;
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
    pub membership: Arc<crate::membership::Membership>,
    /// Turns true when the server stops: long-lived streams end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// How this member dials other members' client URLs (forwarding to the leader): with
    /// its own client certificate and trusted CA when they serve TLS.
    pub dial: cairn_api::dial::DialOptions,
    /// Who may do what: every service asks it, and only it.
    pub auth: Arc<AuthStore>,
}

/// What a request carries that can identify its sender: its token (gRPC clients send it as
/// `token`, the gateway's as `authorization`), and the name of the client certificate the
/// server verified.
pub fn credentials<T>(r: &tonic::Request<T>) -> Credentials {
    let md = r.metadata();
    let token = md.get("token").or_else(|| md.get("authorization")).and_then(|v| v.to_str().ok());
    Credentials {
        token: token.map(str::to_string),
        cert_name: r.extensions().get::<CertName>().map(|c| c.0.to_string()),
    }
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

    /// Who a request is from (nobody when it carries nothing that says).
    pub async fn identify(&self, creds: &Credentials) -> Result<AuthInfo, EtcdError> {
        let found = self.auth.identify(creds, self.raft.applied_watch(), self.raft.request_timeout()).await?;
        Ok(found.unwrap_or_default())
    }

    /// A client's request, to propose: refused here if its token is not valid.
    pub async fn client(&self, creds: &Credentials) -> Result<Origin, EtcdError> {
        Ok(Origin::Client(self.identify(creds).await?))
    }

    /// Calls only root may make (members, snapshots, defragmentation, hashes).
    pub async fn admin(&self, creds: &Credentials) -> Result<AuthInfo, EtcdError> {
        let who = self.identify(creds).await?;
        self.auth.check(&who, Need::Admin)?;
        Ok(who)
    }

    /// `admin`, for the Maintenance calls etcd 3.4 checks (defragment, hash, hashKV,
    /// snapshot): they answer the auth package's own errors.
    pub async fn maintenance_admin(&self, creds: &Credentials) -> Result<AuthInfo, EtcdError> {
        self.admin(creds).await.map_err(|e| match e {
            EtcdError::UserEmpty
            | EtcdError::UserNotFound
            | EtcdError::PermissionDenied
            | EtcdError::InvalidAuthToken => EtcdError::AuthUnconverted(Box::new(e)),
            other => other,
        })
    }

    /// A read served by this member, as `who` (etcd's doSerialize): checked against `needs`
    /// first, and refused after if the auth store changed meanwhile.
    pub fn serve_read<T>(
        &self,
        who: &AuthInfo,
        needs: &[Need<'_>],
        read: impl FnOnce() -> Result<T, EtcdError>,
    ) -> Result<T, EtcdError> {
        self.auth.check_all(who, needs)?;
        let out = read();
        if who.revision != 0 && who.revision != self.auth.revision() {
            return Err(EtcdError::AuthOldRevision);
        }
        out
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

    /// A handler's last step: fill the header, map the error.
    pub fn answer<T: Headed>(&self, r: Result<T, EtcdError>) -> Result<tonic::Response<T>, tonic::Status> {
        r.map(|mut resp| {
            self.fill(&mut resp);
            tonic::Response::new(resp)
        })
        .map_err(tonic::Status::from)
    }

    /// `answer` for the Cluster service: etcd's headers there carry no revision.
    pub fn answer_unrevised<T: Headed>(&self, r: Result<T, EtcdError>) -> Result<tonic::Response<T>, tonic::Status> {
        self.answer(r).map(|mut resp| {
            if let Some(h) = resp.get_mut().header_mut() {
                h.revision = 0;
            }
            resp
        })
    }

    /// `answer` for the calls etcd answers without a header (Defragment, MoveLeader: etcd
    /// 3.4 returns them empty, and client libraries' tests check it).
    pub fn answer_bare<T>(&self, r: Result<T, EtcdError>) -> Result<tonic::Response<T>, tonic::Status> {
        r.map(tonic::Response::new).map_err(tonic::Status::from)
    }

    /// Replicates a request made for `origin` and returns the response applying it produced.
    pub async fn propose<T: FromApplied>(&self, origin: &Origin, req: Request) -> Result<T, EtcdError> {
        let applied = self.raft.propose(origin, req).await?;
        let shown = format!("{applied:?}");
        T::from_applied(applied).ok_or_else(|| EtcdError::Internal(format!("unexpected apply result {shown}")))
    }
}
