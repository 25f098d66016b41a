//! The two text formats /metrics answers in. prometheus-client writes OpenMetrics; a scraper
//! that asks for it (Prometheus does) gets that. Anything else (curl, promtool, scripts
//! written for etcd) gets Prometheus's text format 0.0.4, which etcd serves by default: the
//! same samples, with counter families named by their `_total` samples, `untyped` for
//! `unknown`, and no `# EOF`.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an Accept header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.split(',').any(|t| t.trim().starts_with("application/openmetrics-text")))
}

/// OpenMetrics text as Prometheus text 0.0.4.
pub fn to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut lines = openmetrics.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            // HELP comes right before its family's TYPE, which decides the name.
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let kind = lines.peek().and_then(|t| t.strip_prefix("# TYPE ")).and_then(|t| t.split_once(' '));
            if let Some((_, kind)) = kind {
                let (name, kind) = text_family(name, kind);
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
                lines.next();
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn text_family<'a>(name: &'a str, kind: &'a str) -> (String, &'a str) {
    match kind {
        "counter" => (format!("{name}_total"), kind),
        "unknown" => (name.to_string(), "untyped"),
        _ => (name.to_string(), kind),
    }
}

/// A count etcd exports under a name without `_total` (etcd_server_health_success, say).
/// OpenMetrics would rename a counter, so it is exported untyped to keep etcd's name.
#[derive(Clone, Debug, Default)]
pub struct Untyped(Arc<AtomicU64>);

impl Untyped {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl EncodeMetric for Untyped {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&(self.get() as i64))
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_sample_name_and_unknown_becomes_untyped() {
        let om = "# HELP etcd_mvcc_put Puts.\n# TYPE etcd_mvcc_put counter\netcd_mvcc_put_total 2\n\
                  # HELP etcd_server_health_success Checks\n# TYPE etcd_server_health_success unknown\n\
                  etcd_server_health_success 1\n# HELP g A gauge.\n# TYPE g gauge\ng 3\n# EOF\n";
        assert_eq!(
            to_text(om),
            "# HELP etcd_mvcc_put_total Puts.\n# TYPE etcd_mvcc_put_total counter\netcd_mvcc_put_total 2\n\
             # HELP etcd_server_health_success Checks\n# TYPE etcd_server_health_success untyped\n\
             etcd_server_health_success 1\n# HELP g A gauge.\n# TYPE g gauge\ng 3\n"
        );
    }

    #[test]
    fn only_an_openmetrics_accept_gets_openmetrics() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain")));
        assert!(!wants_openmetrics(None));
    }
}
