//! Prometheus metrics on /metrics: reconciles, errors by kind, membership changes by reason,
//! and each cluster's health (ready members, available).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(String, String), u64>>,
    gauges: Mutex<BTreeMap<(String, String), f64>>,
}

impl Metrics {
    /// `name` with its label set (`kind="kube"`, or "" for none).
    pub fn inc(&self, name: &str, labels: &str) {
        *self.counters.lock().unwrap_or_else(|e| e.into_inner()).entry((name.into(), labels.into())).or_default() += 1;
    }

    /// Adds `v` to a counter kept as a float (bytes, say).
    pub fn add(&self, name: &str, labels: &str, v: f64) {
        *self.gauges.lock().unwrap_or_else(|e| e.into_inner()).entry((name.into(), labels.into())).or_default() += v;
    }

    pub fn set(&self, name: &str, labels: &str, v: f64) {
        self.gauges.lock().unwrap_or_else(|e| e.into_inner()).insert((name.into(), labels.into()), v);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let help = |name: &str| match name {
            "cairn_operator_reconciles_total" => "Reconciles run.",
            "cairn_operator_reconcile_errors_total" => "Reconciles that failed, by kind of error.",
            "cairn_operator_membership_changes_total" => "Membership changes made, by reason.",
            "cairn_cluster_ready_members" => "Healthy voting members of a cluster.",
            "cairn_cluster_available" => "Whether a cluster has a healthy quorum (1) or not (0).",
            "cairn_backup_last_full_timestamp_seconds" => "When the newest full snapshot in S3 was taken.",
            "cairn_backup_last_current_timestamp_seconds" => "The last time every change seen was in S3.",
            "cairn_backup_delta_lag_seconds" => {
                "Of the newest delta: from its oldest change's arrival to its commit in S3."
            }
            "cairn_backup_uploaded_bytes" => "Bytes this operator process uploaded to S3 for a cluster.",
            "cairn_backup_healthy" => "Whether a cluster's backups are current (1) or not (0).",
            "cairn_defrag_runs_total" => "Defragmentations of members, by outcome.",
            "cairn_defrag_reclaimed_bytes" => "Bytes given back by defragmentation since the operator started.",
            _ => "",
        };
        let mut last = String::new();
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let gauges = self.gauges.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let rows = counters
            .into_iter()
            .map(|(k, v)| (k, v as f64, "counter"))
            .chain(gauges.into_iter().map(|(k, v)| (k, v, "gauge")));
        for ((name, labels), v, kind) in rows {
            if name != last {
                let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", help(&name));
                last = name.clone();
            }
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {v}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
        out
    }
}

/// Serves /metrics (and /healthz) on `addr` until the process ends.
pub async fn serve(addr: std::net::SocketAddr, metrics: std::sync::Arc<Metrics>) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_with_help_and_type_once_per_name() {
        let m = Metrics::default();
        m.inc("cairn_operator_reconciles_total", "");
        m.inc("cairn_operator_reconciles_total", "");
        m.inc("cairn_operator_reconcile_errors_total", r#"kind="kube""#);
        m.set("cairn_cluster_ready_members", r#"namespace="default",cluster="demo""#, 3.0);
        let text = m.render();
        assert!(
            text.contains("# TYPE cairn_operator_reconciles_total counter\ncairn_operator_reconciles_total 2\n"),
            "{text}"
        );
        assert!(text.contains(r#"cairn_operator_reconcile_errors_total{kind="kube"} 1"#), "{text}");
        assert!(text.contains(r#"cairn_cluster_ready_members{namespace="default",cluster="demo"} 3"#), "{text}");
        assert_eq!(text.matches("# TYPE cairn_operator_reconciles_total").count(), 1);
    }
}
