//! Plain HTTP beside gRPC on the client port: /health, /version and /metrics.

use crate::alarm::Alarms;
use crate::grpc::Common;
use crate::metrics::Sample;
use crate::storage::backend::Backend;
use crate::storage::mvcc::watch::WatchHub;
use crate::version::{CLUSTER_VERSION, ETCD_API_VERSION};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// What the routes read.
pub struct HttpState {
    pub common: Arc<Common>,
    pub alarms: Arc<Alarms>,
    pub backend: Arc<Backend>,
    pub hub: Arc<WatchHub>,
}

pub fn routes(ctx: Arc<HttpState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .with_state(ctx)
}

async fn health(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let ctx = &state.common;
    // Healthy means: this member has published itself to the cluster (etcd serves clients
    // only from then on), there is a leader, and a linearizable read goes through now.
    // A raised alarm makes the member unhealthy too, as in etcd.
    let published = ctx.membership.get(ctx.member_id).is_some_and(|m| !m.client_urls.is_empty());
    let ok = published
        && state.alarms.all().is_empty()
        && ctx.raft.status().has_leader()
        && ctx.raft.linearizable_read().await.is_ok();
    let server = &crate::metrics::get().server;
    if ok { &server.health_success } else { &server.health_failures }.inc();
    // etcd answers failure through Go's http.Error: plain text, a newline after the JSON.
    if ok {
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{\"health\":\"true\"}")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "{\"health\":\"false\"}\n",
        )
    }
}

async fn version() -> impl IntoResponse {
    let body = serde_json::json!({
        "etcdserver": ETCD_API_VERSION,
        "etcdcluster": CLUSTER_VERSION,
        "cairn": env!("CARGO_PKG_VERSION"),
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string())
}

async fn metrics(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> impl IntoResponse {
    let ctx = &state.common;
    let s = ctx.raft.status();
    let (watchers, slow_watchers) = state.hub.stats();
    let backend = state.backend.clone();
    let db_size_in_use = tokio::task::spawn_blocking(move || backend.bytes_in_use()).await.unwrap_or(0);
    let sample = Sample {
        has_leader: s.has_leader(),
        is_leader: s.is_leader(),
        is_learner: ctx.membership.me_is_learner(),
        committed: s.commit_index(),
        applied: ctx.raft.applied_index(),
        pending: ctx.raft.pending_proposals(),
        db_size: state.backend.size_on_disk(),
        db_size_in_use,
        keys: ctx.mvcc.key_count(),
        revision: ctx.mvcc.current_revision(),
        // etcd's -1: never compacted.
        compact_revision: match ctx.mvcc.compact_revision() {
            0 => -1,
            r => r,
        },
        watchers,
        slow_watchers,
        auth_revision: ctx.auth.revision(),
    };
    let openmetrics = crate::metrics::wants_openmetrics(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let kind = if openmetrics { crate::metrics::OPENMETRICS } else { crate::metrics::TEXT };
    ([(header::CONTENT_TYPE, kind)], crate::metrics::get().render(&sample, openmetrics))
}
