//! etcd 3.4's metric families that Cairn has a meaning for, with etcd's names, help texts,
//! types, labels and histogram buckets. A family etcd has and Cairn has nothing to count for
//! (bbolt's spill and rebalance, the v2 store, the gRPC proxy's cache) is left out rather
//! than exported as a constant zero.

use super::exposition::Untyped;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};
use std::sync::atomic::AtomicU64;

/// A label set of one label.
pub type Label = [(&'static str, String); 1];
/// A label set of two labels.
pub type Labels2 = [(&'static str, String); 2];
/// A gauge of float values (sizes etcd exports as floats, durations).
pub type FloatGauge = Gauge<f64, AtomicU64>;
/// Histograms per peer need their buckets made for each new label set.
pub type HistogramFamily = Family<Label, Histogram, fn() -> Histogram>;

/// Registers `metric` under `name` and hands back a handle that updates the registered one.
/// Counters are named without `_total`: OpenMetrics (and so prometheus-client) adds it.
pub fn reg<M: Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
    r.register(name, help_text(help), metric.clone());
    metric
}

/// etcd's help text as prometheus-client will print it: the library ends every help text
/// with a full stop of its own.
pub fn help_text(help: &str) -> &str {
    help.strip_suffix('.').unwrap_or(help)
}

fn histogram(start: f64, factor: f64, count: u16) -> Histogram {
    Histogram::new(exponential_buckets(start, factor, count))
}

fn peer_rtt_histogram() -> Histogram {
    // etcd: 0.1 ms doubling to about 0.8 s.
    histogram(0.0001, 2.0, 14)
}

pub struct Server {
    pub has_leader: Gauge,
    pub is_leader: Gauge,
    pub is_learner: Gauge,
    pub leader_changes_seen: Counter,
    pub proposals_committed: Gauge,
    pub proposals_applied: Gauge,
    pub proposals_pending: Gauge,
    pub proposals_failed: Counter,
    pub quota_backend_bytes: FloatGauge,
    pub read_indexes_failed: Counter,
    pub slow_read_indexes: Counter,
    pub health_success: Untyped,
    pub health_failures: Untyped,
    pub learner_promote_successes: Untyped,
    pub client_requests: Family<Labels2, Counter>,
    pub version: Family<Label, Gauge>,
    pub cluster_version: Family<Label, Gauge>,
    pub id: Family<Label, Gauge>,
}

impl Server {
    pub fn register(r: &mut Registry) -> Server {
        Server {
            has_leader: reg(
                r,
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
                Gauge::default(),
            ),
            is_leader: reg(
                r,
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
                Gauge::default(),
            ),
            is_learner: reg(
                r,
                "etcd_server_is_learner",
                "Whether or not this member is a learner. 1 if is, 0 otherwise.",
                Gauge::default(),
            ),
            leader_changes_seen: reg(
                r,
                "etcd_server_leader_changes_seen",
                "The number of leader changes seen.",
                Counter::default(),
            ),
            // Gauges in etcd despite their names.
            proposals_committed: reg(
                r,
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
                Gauge::default(),
            ),
            proposals_applied: reg(
                r,
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
                Gauge::default(),
            ),
            proposals_pending: reg(
                r,
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
                Gauge::default(),
            ),
            proposals_failed: reg(
                r,
                "etcd_server_proposals_failed",
                "The total number of failed proposals seen.",
                Counter::default(),
            ),
            quota_backend_bytes: reg(
                r,
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes.",
                FloatGauge::default(),
            ),
            read_indexes_failed: reg(
                r,
                "etcd_server_read_indexes_failed",
                "The total number of failed read indexes seen.",
                Counter::default(),
            ),
            slow_read_indexes: reg(
                r,
                "etcd_server_slow_read_indexes",
                "The total number of pending read indexes not in sync with leader's or timed out read index requests.",
                Counter::default(),
            ),
            health_success: reg(
                r,
                "etcd_server_health_success",
                "The total number of successful health checks",
                Untyped::default(),
            ),
            health_failures: reg(
                r,
                "etcd_server_health_failures",
                "The total number of failed health checks",
                Untyped::default(),
            ),
            learner_promote_successes: reg(
                r,
                "etcd_server_learner_promote_successes",
                "The total number of successful learner promotions while this member is leader.",
                Untyped::default(),
            ),
            client_requests: reg(
                r,
                "etcd_server_client_requests",
                "The total number of client requests per client version.",
                Family::default(),
            ),
            version: reg(
                r,
                "etcd_server_version",
                "Which version is running. 1 for 'server_version' label with current version.",
                Family::default(),
            ),
            cluster_version: reg(
                r,
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                Family::default(),
            ),
            id: reg(
                r,
                "etcd_server_id",
                "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
                Family::default(),
            ),
        }
    }
}

pub struct Disk {
    pub wal_fsync: Histogram,
    pub wal_write_bytes: Gauge,
    pub backend_commit: Histogram,
    pub backend_defrag: Histogram,
    pub defrag_inflight: Gauge,
    pub backend_snapshot: Histogram,
}

impl Disk {
    pub fn register(r: &mut Registry) -> Disk {
        Disk {
            wal_fsync: reg(
                r,
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
                histogram(0.001, 2.0, 14),
            ),
            // A gauge in etcd.
            wal_write_bytes: reg(
                r,
                "etcd_disk_wal_write_bytes_total",
                "Total number of bytes written in WAL.",
                Gauge::default(),
            ),
            backend_commit: reg(
                r,
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
                histogram(0.001, 2.0, 14),
            ),
            backend_defrag: reg(
                r,
                "etcd_disk_backend_defrag_duration_seconds",
                "The latency distribution of backend defragmentation.",
                histogram(0.1, 2.0, 13),
            ),
            defrag_inflight: reg(
                r,
                "etcd_disk_defrag_inflight",
                "Whether or not defrag is active on the member. 1 means active, 0 means not.",
                Gauge::default(),
            ),
            backend_snapshot: reg(
                r,
                "etcd_disk_backend_snapshot_duration_seconds",
                "The latency distribution of backend snapshots.",
                histogram(0.01, 2.0, 17),
            ),
        }
    }
}

/// etcd exports its mvcc counters twice, under `etcd_mvcc_` and (older) `etcd_debugging_mvcc_`;
/// dashboards read both, so both names are registered on one counter.
pub struct Mvcc {
    pub put: Counter,
    pub delete: Counter,
    pub range: Counter,
    pub txn: Counter,
    pub put_size: Gauge,
    pub keys: Gauge,
    pub current_revision: Gauge,
    pub compact_revision: Gauge,
    pub db_total_size: Gauge,
    pub db_in_use_size: Gauge,
    pub watchers: Gauge,
    pub slow_watchers: Gauge,
    pub watch_streams: Gauge,
    pub events: Counter,
    pub compaction_keys: Counter,
    pub hash: Histogram,
    pub hash_rev: Histogram,
}

impl Mvcc {
    pub fn register(r: &mut Registry) -> Mvcc {
        let twice = |r: &mut Registry, name: &str, help: &str| {
            let c = reg(r, &format!("etcd_mvcc_{name}"), help, Counter::default());
            reg(r, &format!("etcd_debugging_mvcc_{name}"), help, c)
        };
        let db_total_size = Gauge::default();
        let help = "Total size of the underlying database physically allocated in bytes.";
        let db_total_size = reg(r, "etcd_debugging_mvcc_db_total_size_in_bytes", help, db_total_size);
        Mvcc {
            put: twice(r, "put", "Total number of puts seen by this member."),
            delete: twice(r, "delete", "Total number of deletes seen by this member."),
            range: twice(r, "range", "Total number of ranges seen by this member."),
            txn: twice(r, "txn", "Total number of txns seen by this member."),
            put_size: reg(
                r,
                "etcd_debugging_mvcc_total_put_size_in_bytes",
                "The total size of put kv pairs seen by this member.",
                Gauge::default(),
            ),
            keys: reg(r, "etcd_debugging_mvcc_keys_total", "Total number of keys.", Gauge::default()),
            current_revision: reg(
                r,
                "etcd_debugging_mvcc_current_revision",
                "The current revision of store.",
                Gauge::default(),
            ),
            compact_revision: reg(
                r,
                "etcd_debugging_mvcc_compact_revision",
                "The revision of the last compaction in store.",
                Gauge::default(),
            ),
            db_total_size: reg(r, "etcd_mvcc_db_total_size_in_bytes", help, db_total_size),
            db_in_use_size: reg(
                r,
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
                Gauge::default(),
            ),
            watchers: reg(r, "etcd_debugging_mvcc_watcher_total", "Total number of watchers.", Gauge::default()),
            slow_watchers: reg(
                r,
                "etcd_debugging_mvcc_slow_watcher_total",
                "Total number of unsynced slow watchers.",
                Gauge::default(),
            ),
            watch_streams: reg(
                r,
                "etcd_debugging_mvcc_watch_stream_total",
                "Total number of watch streams.",
                Gauge::default(),
            ),
            events: reg(
                r,
                "etcd_debugging_mvcc_events",
                "Total number of events sent by this member.",
                Counter::default(),
            ),
            compaction_keys: reg(
                r,
                "etcd_debugging_mvcc_db_compaction_keys",
                "Total number of db keys compacted.",
                Counter::default(),
            ),
            hash: reg(
                r,
                "etcd_mvcc_hash_duration_seconds",
                "The latency distribution of storage hash operation.",
                histogram(0.01, 2.0, 15),
            ),
            hash_rev: reg(
                r,
                "etcd_mvcc_hash_rev_duration_seconds",
                "The latency distribution of storage hash by revision operation.",
                histogram(0.01, 2.0, 15),
            ),
        }
    }
}

pub struct Lease {
    pub granted: Counter,
    pub revoked: Counter,
    pub renewed: Counter,
    pub expired: Counter,
    pub ttl: Histogram,
    pub auth_revision: Gauge,
}

impl Lease {
    pub fn register(r: &mut Registry) -> Lease {
        Lease {
            granted: reg(r, "etcd_debugging_lease_granted", "The total number of granted leases.", Counter::default()),
            revoked: reg(r, "etcd_debugging_lease_revoked", "The total number of revoked leases.", Counter::default()),
            renewed: reg(
                r,
                "etcd_debugging_lease_renewed",
                "The number of renewed leases seen by the leader.",
                Counter::default(),
            ),
            expired: reg(
                r,
                "etcd_debugging_server_lease_expired",
                "The total number of expired leases.",
                Counter::default(),
            ),
            ttl: reg(r, "etcd_debugging_lease_ttl_total", "Bucketed histogram of lease TTLs.", histogram(1.0, 2.0, 14)),
            auth_revision: reg(
                r,
                "etcd_debugging_auth_revision",
                "The current revision of auth store.",
                Gauge::default(),
            ),
        }
    }
}

pub struct Network {
    pub peer_sent_bytes: Family<Label, Counter>,
    pub peer_received_bytes: Family<Label, Counter>,
    pub peer_sent_failures: Family<Label, Counter>,
    pub peer_received_failures: Family<Label, Counter>,
    pub peer_round_trip_time: HistogramFamily,
    pub active_peers: Family<Labels2, Gauge>,
    pub disconnected_peers: Family<Labels2, Counter>,
    pub client_grpc_sent_bytes: Counter,
    pub client_grpc_received_bytes: Counter,
}

impl Network {
    pub fn register(r: &mut Registry) -> Network {
        Network {
            peer_sent_bytes: reg(
                r,
                "etcd_network_peer_sent_bytes",
                "The total number of bytes sent to peers.",
                Family::default(),
            ),
            peer_received_bytes: reg(
                r,
                "etcd_network_peer_received_bytes",
                "The total number of bytes received from peers.",
                Family::default(),
            ),
            peer_sent_failures: reg(
                r,
                "etcd_network_peer_sent_failures",
                "The total number of send failures from peers.",
                Family::default(),
            ),
            peer_received_failures: reg(
                r,
                "etcd_network_peer_received_failures",
                "The total number of receive failures from peers.",
                Family::default(),
            ),
            peer_round_trip_time: reg(
                r,
                "etcd_network_peer_round_trip_time_seconds",
                "Round-Trip-Time histogram between peers",
                Family::new_with_constructor(peer_rtt_histogram as fn() -> Histogram),
            ),
            active_peers: reg(
                r,
                "etcd_network_active_peers",
                "The current number of active peer connections.",
                Family::default(),
            ),
            disconnected_peers: reg(
                r,
                "etcd_network_disconnected_peers",
                "The total number of disconnected peers.",
                Family::default(),
            ),
            client_grpc_sent_bytes: reg(
                r,
                "etcd_network_client_grpc_sent_bytes",
                "The total number of bytes sent to grpc clients.",
                Counter::default(),
            ),
            client_grpc_received_bytes: reg(
                r,
                "etcd_network_client_grpc_received_bytes",
                "The total number of bytes received from grpc clients.",
                Counter::default(),
            ),
        }
    }
}
