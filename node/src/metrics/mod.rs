//! /metrics: etcd 3.4's metric families under etcd's names, so that etcd's dashboards, the
//! etcd mixin's alerts and kube-prometheus work unchanged. Kept in prometheus-client's
//! registry, one per process as etcd's (and every Prometheus client's) default registry is:
//! a process runs one member. Counters are counted where things happen; what the member's
//! state already knows (leader, sizes, revisions) is read when /metrics is scraped.

mod exposition;
mod families;
mod grpc;
mod process;

pub use exposition::{wants_openmetrics, OPENMETRICS, TEXT};
pub use grpc::observe as observe_grpc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

pub struct Metrics {
    registry: Registry,
    pub server: families::Server,
    pub disk: families::Disk,
    pub mvcc: families::Mvcc,
    pub lease: families::Lease,
    pub network: families::Network,
    grpc: grpc::Grpc,
    process: process::Process,
    /// Cairn's own: times a watcher's stream was full and it went on from history.
    pub watchers_fell_behind: Counter,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Sets up the process's metrics; `extensive` as etcd's `--metrics extensive` (gRPC handling
/// time histograms). The first call decides; without one, `get` sets up the basic set.
pub fn init(extensive: bool) -> &'static Metrics {
    METRICS.get_or_init(|| Metrics::new(extensive))
}

pub fn get() -> &'static Metrics {
    init(false)
}

/// What a scrape reads from the member serving it.
pub struct Sample {
    pub has_leader: bool,
    pub is_leader: bool,
    pub is_learner: bool,
    pub committed: u64,
    pub applied: u64,
    pub pending: usize,
    pub db_size: u64,
    pub db_size_in_use: u64,
    pub keys: usize,
    pub revision: i64,
    pub compact_revision: i64,
    pub watchers: usize,
    pub slow_watchers: usize,
    pub auth_revision: u64,
}

impl Metrics {
    fn new(extensive: bool) -> Metrics {
        let mut r = Registry::default();
        let server = families::Server::register(&mut r);
        server.version.get_or_create(&[("server_version", crate::version::ETCD_API_VERSION.into())]).set(1);
        server
            .cluster_version
            .get_or_create(&[("cluster_version", crate::version::CLUSTER_VERSION_MINOR.into())])
            .set(1);
        let watchers_fell_behind = Counter::default();
        r.register(
            "cairn_watchers_fell_behind",
            "Times a watcher's stream was full and it went on from history",
            watchers_fell_behind.clone(),
        );
        Metrics {
            server,
            disk: families::Disk::register(&mut r),
            mvcc: families::Mvcc::register(&mut r),
            lease: families::Lease::register(&mut r),
            network: families::Network::register(&mut r),
            grpc: grpc::Grpc::register(&mut r, extensive),
            process: process::Process::register(&mut r),
            watchers_fell_behind,
            registry: r,
        }
    }

    /// What stays as it is for the member's life: its id, its backend quota (none: 0).
    pub fn identify(&self, member_id: u64, quota_bytes: Option<u64>) {
        self.server.id.get_or_create(&[("server_id", format!("{member_id:x}"))]).set(1);
        self.server.quota_backend_bytes.set(quota_bytes.unwrap_or(0) as f64);
    }

    /// The exposition: OpenMetrics when the scraper asks for it, else Prometheus text 0.0.4.
    pub fn render(&self, s: &Sample, openmetrics: bool) -> String {
        let g = &self.server;
        g.has_leader.set(s.has_leader as i64);
        g.is_leader.set(s.is_leader as i64);
        g.is_learner.set(s.is_learner as i64);
        g.proposals_committed.set(s.committed as i64);
        g.proposals_applied.set(s.applied as i64);
        g.proposals_pending.set(s.pending as i64);
        let m = &self.mvcc;
        m.db_total_size.set(s.db_size as i64);
        m.db_in_use_size.set(s.db_size_in_use as i64);
        m.keys.set(s.keys as i64);
        m.current_revision.set(s.revision);
        m.compact_revision.set(s.compact_revision);
        m.watchers.set(s.watchers as i64);
        m.slow_watchers.set(s.slow_watchers as i64);
        self.lease.auth_revision.set(s.auth_revision as i64);
        self.process.sample();
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        if openmetrics {
            out
        } else {
            exposition::to_text(&out)
        }
    }
}
