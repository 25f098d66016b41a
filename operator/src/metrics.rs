//! Prometheus metrics on /metrics (OpenMetrics, from prometheus-client's registry):
//! reconciles, errors by kind, membership changes by reason, each cluster's health (ready
//! members, available), its backups and its defragmentations.

use crate::crd::CairnCluster;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};
use std::sync::atomic::AtomicU64;

/// A cluster's series: its namespace and name.
pub type Cluster = [(&'static str, String); 2];
type One = [(&'static str, String); 1];
type Three = [(&'static str, String); 3];
type Seconds = Gauge<f64, AtomicU64>;

pub fn cluster(c: &CairnCluster) -> Cluster {
    [("namespace", crate::resources::namespace(c)), ("cluster", crate::resources::name(c))]
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Counter,
    pub reconcile_errors: Family<One, Counter>,
    pub membership_changes: Family<One, Counter>,
    pub ready_members: Family<Cluster, Gauge>,
    pub available: Family<Cluster, Gauge>,
    pub backup_last_full: Family<Cluster, Seconds>,
    pub backup_last_current: Family<Cluster, Seconds>,
    pub backup_delta_lag: Family<Cluster, Seconds>,
    pub backup_uploaded_bytes: Family<Cluster, Gauge>,
    pub backup_healthy: Family<Cluster, Gauge>,
    defrag_runs: Family<Three, Counter>,
    pub defrag_reclaimed_bytes: Family<Cluster, Counter>,
}

/// Registers `metric` and hands back a handle to it. prometheus-client adds `_total` to a
/// counter's name and a full stop to its help.
fn reg<M: Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
    r.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::default();
        let r = &mut r;
        Metrics {
            reconciles: reg(r, "cairn_operator_reconciles", "Reconciles run", Counter::default()),
            reconcile_errors: reg(
                r,
                "cairn_operator_reconcile_errors",
                "Reconciles that failed, by kind of error",
                Family::default(),
            ),
            membership_changes: reg(
                r,
                "cairn_operator_membership_changes",
                "Membership changes made, by reason",
                Family::default(),
            ),
            ready_members: reg(
                r,
                "cairn_cluster_ready_members",
                "Healthy voting members of a cluster",
                Family::default(),
            ),
            available: reg(
                r,
                "cairn_cluster_available",
                "Whether a cluster has a healthy quorum (1) or not (0)",
                Family::default(),
            ),
            backup_last_full: reg(
                r,
                "cairn_backup_last_full_timestamp_seconds",
                "When the newest full snapshot in S3 was taken",
                Family::default(),
            ),
            backup_last_current: reg(
                r,
                "cairn_backup_last_current_timestamp_seconds",
                "The last time every change seen was in S3",
                Family::default(),
            ),
            backup_delta_lag: reg(
                r,
                "cairn_backup_delta_lag_seconds",
                "Of the newest delta: from its oldest change's arrival to its commit in S3",
                Family::default(),
            ),
            backup_uploaded_bytes: reg(
                r,
                "cairn_backup_uploaded_bytes",
                "Bytes this operator process uploaded to S3 for a cluster",
                Family::default(),
            ),
            backup_healthy: reg(
                r,
                "cairn_backup_healthy",
                "Whether a cluster's backups are current (1) or not (0)",
                Family::default(),
            ),
            defrag_runs: reg(r, "cairn_defrag_runs", "Defragmentations of members, by outcome", Family::default()),
            defrag_reclaimed_bytes: reg(
                r,
                "cairn_defrag_reclaimed_bytes",
                "Bytes given back by defragmentation since the operator started",
                Family::default(),
            ),
            registry: std::mem::take(r),
        }
    }
}

impl Metrics {
    pub fn reconcile_error(&self, kind: &str) {
        self.reconcile_errors.get_or_create(&[("kind", kind.to_string())]).inc();
    }

    pub fn membership_changed(&self, reason: &str) {
        self.membership_changes.get_or_create(&[("reason", reason.to_string())]).inc();
    }

    pub fn defragmented(&self, cluster: &Cluster, outcome: &str) {
        let [ns, name] = cluster.clone();
        self.defrag_runs.get_or_create(&[ns, name, ("outcome", outcome.to_string())]).inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves /metrics (and /healthz) on `addr` until the process ends.
pub async fn serve(addr: std::net::SocketAddr, metrics: std::sync::Arc<Metrics>) -> std::io::Result<()> {
    use axum::routing::get;
    const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || async move { ([(axum::http::header::CONTENT_TYPE, OPENMETRICS)], metrics.render()) }),
        )
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_under_their_names_with_labels() {
        let m = Metrics::default();
        m.reconciles.inc();
        m.reconciles.inc();
        m.reconcile_error("kube");
        let demo: Cluster = [("namespace", "default".into()), ("cluster", "demo".into())];
        m.ready_members.get_or_create(&demo).set(3);
        m.defragmented(&demo, "ok");
        let text = m.render();
        assert!(
            text.contains("# TYPE cairn_operator_reconciles counter\ncairn_operator_reconciles_total 2\n"),
            "{text}"
        );
        assert!(text.contains(r#"cairn_operator_reconcile_errors_total{kind="kube"} 1"#), "{text}");
        assert!(text.contains(r#"cairn_cluster_ready_members{namespace="default",cluster="demo"} 3"#), "{text}");
        assert!(
            text.contains(r#"cairn_defrag_runs_total{namespace="default",cluster="demo",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
