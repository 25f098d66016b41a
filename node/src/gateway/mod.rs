//! etcd 3.4's JSON gateway on the client port: `POST /v3/<service>/<call>` (and the `/v3beta/`
//! aliases 3.4 still serves) with a JSON request, answered in JSON — by the same service
//! implementations the gRPC server uses, called in process (never a second implementation
//! of a call). Streaming calls (watch, lease keep-alive, snapshot, election observe) answer
//! newline-delimited `{"result":…}` objects, as grpc-gateway does. An `Authorization` header
//! carries a token, as the gateway passes it on to etcd's gRPC server.

mod json;
mod stream;

use crate::auth::CertName;
use crate::grpc::auth::AuthService;
use crate::grpc::cluster::ClusterService;
use crate::grpc::election::ElectionService;
use crate::grpc::kv::KvService;
use crate::grpc::lease::LeaseService;
use crate::grpc::lock::LockService;
use crate::grpc::maintenance::MaintenanceService;
use crate::grpc::watch::WatchService;
use crate::grpc::Common;
use crate::proto::etcdserverpb::auth_server::Auth;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::v3electionpb::election_server::Election;
use crate::proto::v3lockpb::lock_server::Lock;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension};
use axum::http::HeaderMap;
use axum::Router;
use std::future::Future;
use std::sync::Arc;

/// The service implementations, shared by the gRPC server and the gateway.
pub struct Services {
    pub common: Arc<Common>,
    pub kv: Arc<KvService>,
    pub lease: Arc<LeaseService>,
    pub watch: Arc<WatchService>,
    pub cluster: Arc<ClusterService>,
    pub maintenance: Arc<MaintenanceService>,
    pub auth: Arc<AuthService>,
    pub election: Arc<ElectionService>,
    pub lock: Arc<LockService>,
}

/// What a gRPC call made for an HTTP request carries: the token of its `Authorization`
/// header and the name on the connection's client certificate.
fn grpc_request<T>(msg: T, headers: &HeaderMap, cert: Option<Extension<CertName>>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(token) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Ok(v) = token.parse() {
            req.metadata_mut().insert("authorization", v);
        }
    }
    if let Some(Extension(name)) = cert {
        req.extensions_mut().insert(name);
    }
    req
}

/// Routes `path` under both prefixes.
fn post<H, T>(router: Router, path: &str, handler: H) -> Router
where
    H: axum::handler::Handler<T, ()> + Clone,
    T: 'static,
{
    ["/v3/", "/v3beta/"]
        .iter()
        .fold(router, |r, prefix| r.route(&format!("{prefix}{path}"), axum::routing::post(handler.clone())))
}

/// A unary call: JSON in, the call, JSON out (or grpc-gateway's error body).
fn unary<Req, Resp, F, Fut>(router: Router, path: &str, call: F) -> Router
where
    Req: serde::de::DeserializeOwned + Default + Send + 'static,
    Resp: serde::Serialize + Send + 'static,
    F: Fn(tonic::Request<Req>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>> + Send,
{
    let handler = move |headers: HeaderMap, cert: Option<Extension<CertName>>, body: Bytes| {
        let call = call.clone();
        async move {
            let msg = match json::request::<Req>(&body) {
                Ok(m) => m,
                Err(s) => return json::error(&s),
            };
            match call(grpc_request(msg, &headers, cert)).await {
                Ok(r) => json::answer(r.get_ref()),
                Err(s) => json::error(&s),
            }
        }
    };
    post(router, path, handler)
}

/// A unary route calling `$method` of service `$svc`; `gated`: refused on a learner, as the
/// gRPC server's interceptor refuses that service.
macro_rules! unary {
    ($r:ident, $s:ident, $path:literal, $svc:ident, $method:path) => {{
        let svc = $s.$svc.clone();
        $r = unary($r, $path, move |req| {
            let svc = svc.clone();
            async move { $method(&*svc, req).await }
        });
    }};
    ($r:ident, $s:ident, $path:literal, $svc:ident, $method:path, gated) => {{
        let (svc, common) = ($s.$svc.clone(), $s.common.clone());
        $r = unary($r, $path, move |req| {
            let (svc, common) = (svc.clone(), common.clone());
            async move {
                common.not_learner()?;
                $method(&*svc, req).await
            }
        });
    }};
}

/// etcd's client port allows any origin (its `--cors` default): every answer says so, and a
/// preflight request is answered here.
pub async fn cors(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::{header, HeaderValue, Method};
    let preflight = req.method() == Method::OPTIONS;
    let mut resp = if preflight { axum::response::Response::default() } else { next.run(req).await };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("accept, content-type, authorization"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}

/// grpc-gateway's answer to a path it does not route (Go's http.Error).
async fn not_found() -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")];
    (StatusCode::NOT_FOUND, headers, "Not Found\n").into_response()
}

/// The gateway's routes. `body_limit`: the largest JSON body taken (requests are as large as
/// gRPC's, and base64 makes their bytes a third larger).
pub fn routes(s: Arc<Services>, body_limit: usize) -> Router {
    let mut r = Router::new();
    unary!(r, s, "kv/range", kv, Kv::range);
    unary!(r, s, "kv/put", kv, Kv::put);
    unary!(r, s, "kv/deleterange", kv, Kv::delete_range);
    unary!(r, s, "kv/txn", kv, Kv::txn);
    unary!(r, s, "kv/compaction", kv, Kv::compact);
    unary!(r, s, "lease/grant", lease, Lease::lease_grant, gated);
    unary!(r, s, "lease/revoke", lease, Lease::lease_revoke, gated);
    unary!(r, s, "lease/timetolive", lease, Lease::lease_time_to_live, gated);
    unary!(r, s, "lease/leases", lease, Lease::lease_leases, gated);
    // 3.4's older paths for three of them.
    unary!(r, s, "kv/lease/revoke", lease, Lease::lease_revoke, gated);
    unary!(r, s, "kv/lease/timetolive", lease, Lease::lease_time_to_live, gated);
    unary!(r, s, "kv/lease/leases", lease, Lease::lease_leases, gated);
    unary!(r, s, "cluster/member/add", cluster, Cluster::member_add, gated);
    unary!(r, s, "cluster/member/remove", cluster, Cluster::member_remove, gated);
    unary!(r, s, "cluster/member/update", cluster, Cluster::member_update, gated);
    unary!(r, s, "cluster/member/list", cluster, Cluster::member_list, gated);
    unary!(r, s, "cluster/member/promote", cluster, Cluster::member_promote, gated);
    unary!(r, s, "maintenance/alarm", maintenance, Maintenance::alarm);
    unary!(r, s, "maintenance/status", maintenance, Maintenance::status);
    unary!(r, s, "maintenance/defragment", maintenance, Maintenance::defragment);
    // Hash and HashKV share a path in etcd's gateway; the first registered, Hash, answers.
    unary!(r, s, "maintenance/hash", maintenance, Maintenance::hash);
    unary!(r, s, "maintenance/transfer-leadership", maintenance, Maintenance::move_leader);
    unary!(r, s, "auth/enable", auth, Auth::auth_enable, gated);
    unary!(r, s, "auth/disable", auth, Auth::auth_disable, gated);
    unary!(r, s, "auth/authenticate", auth, Auth::authenticate, gated);
    unary!(r, s, "auth/user/add", auth, Auth::user_add, gated);
    unary!(r, s, "auth/user/get", auth, Auth::user_get, gated);
    unary!(r, s, "auth/user/list", auth, Auth::user_list, gated);
    unary!(r, s, "auth/user/delete", auth, Auth::user_delete, gated);
    unary!(r, s, "auth/user/changepw", auth, Auth::user_change_password, gated);
    unary!(r, s, "auth/user/grant", auth, Auth::user_grant_role, gated);
    unary!(r, s, "auth/user/revoke", auth, Auth::user_revoke_role, gated);
    unary!(r, s, "auth/role/add", auth, Auth::role_add, gated);
    unary!(r, s, "auth/role/get", auth, Auth::role_get, gated);
    unary!(r, s, "auth/role/list", auth, Auth::role_list, gated);
    unary!(r, s, "auth/role/delete", auth, Auth::role_delete, gated);
    unary!(r, s, "auth/role/grant", auth, Auth::role_grant_permission, gated);
    unary!(r, s, "auth/role/revoke", auth, Auth::role_revoke_permission, gated);
    unary!(r, s, "election/campaign", election, Election::campaign, gated);
    unary!(r, s, "election/proclaim", election, Election::proclaim, gated);
    unary!(r, s, "election/leader", election, Election::leader, gated);
    unary!(r, s, "election/resign", election, Election::resign, gated);
    unary!(r, s, "lock", lock, Lock::lock, gated);
    unary!(r, s, "lock/unlock", lock, Lock::unlock, gated);
    let r = stream::routes(r, s)
        .route("/v3/{*call}", axum::routing::any(not_found))
        .route("/v3beta/{*call}", axum::routing::any(not_found));
    r.layer(DefaultBodyLimit::max(body_limit))
}
