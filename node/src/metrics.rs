//! Prometheus text exposition under etcd's metric names, so existing dashboards work.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A Prometheus histogram with etcd's disk buckets (1ms doubling to 8.192s).
pub struct Histogram {
    buckets: [AtomicU64; 14],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: Default::default(), count: AtomicU64::new(0), sum_nanos: AtomicU64::new(0) }
    }
}

impl Histogram {
    fn bound(i: usize) -> f64 {
        0.001 * (1u64 << i) as f64
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in self.buckets.iter().enumerate() {
            if secs <= Self::bound(i) {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in self.buckets.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {}", Self::bound(i), b.load(Ordering::Relaxed));
        }
        let count = self.count();
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}");
    }
}

pub struct Metrics {
    handled: Mutex<BTreeMap<(&'static str, &'static str, i32), u64>>,
    start_time: f64,
    /// Every WAL fsync; with group commit its count grows much slower than the writes.
    pub wal_fsync: Arc<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            handled: Mutex::new(BTreeMap::new()),
            start_time: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
            wal_fsync: Arc::default(),
        }
    }
}

/// Server state sampled at scrape time.
pub struct Gauges {
    pub has_leader: bool,
    pub is_leader: bool,
    pub term: u64,
    pub committed: u64,
    pub applied: u64,
    pub pending: usize,
    pub db_size: u64,
    pub db_size_in_use: u64,
    pub keys: usize,
    pub revision: i64,
    pub watchers: usize,
    pub slow_watchers: usize,
    pub watchers_fell_behind: u64,
}

impl Metrics {
    pub fn grpc_handled(&self, service: &'static str, method: &'static str, code: tonic::Code) {
        *self.handled.lock().unwrap_or_else(|e| e.into_inner()).entry((service, method, code as i32)).or_default() += 1;
    }

    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, kind: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        gauge(
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            "gauge",
            g.has_leader as u8 as f64,
        );
        gauge("etcd_server_is_leader", "Whether or not this member is a leader.", "gauge", g.is_leader as u8 as f64);
        gauge(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
            "gauge",
            g.committed as f64,
        );
        gauge(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
            "gauge",
            g.applied as f64,
        );
        gauge(
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit.",
            "gauge",
            g.pending as f64,
        );
        gauge("etcd_server_term", "The raft term of this member.", "gauge", g.term as f64);
        gauge(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            "gauge",
            g.db_size as f64,
        );
        gauge(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
            "gauge",
            g.db_size_in_use as f64,
        );
        gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.", "gauge", g.keys as f64);
        gauge("etcd_debugging_mvcc_current_revision", "The current revision of store.", "gauge", g.revision as f64);
        gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers.", "gauge", g.watchers as f64);
        gauge(
            "etcd_debugging_mvcc_slow_watcher_total",
            "Total number of unsynced slow watchers.",
            "gauge",
            g.slow_watchers as f64,
        );
        gauge(
            "cairn_watchers_fell_behind_total",
            "Times a watcher's stream was full and it went on from history.",
            "counter",
            g.watchers_fell_behind as f64,
        );
        let p = process_stats();
        gauge("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", p.rss as f64);
        gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", p.vsize as f64);
        gauge(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
            p.cpu_seconds,
        );
        gauge("process_open_fds", "Number of open file descriptors.", "gauge", p.open_fds as f64);
        gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
            self.start_time,
        );
        self.wal_fsync.render(
            &mut out,
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
        );
        let _ = writeln!(
            out,
            "# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.\n# TYPE grpc_server_handled_total counter"
        );
        for ((service, method, code), n) in self.handled.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // gRPC's own spelling of the code names (OK, not Ok).
            let code = match tonic::Code::from_i32(*code) {
                tonic::Code::Ok => "OK".to_string(),
                c => format!("{c:?}"),
            };
            let _ = writeln!(
                out,
                "grpc_server_handled_total{{grpc_code=\"{code}\",grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"unary\"}} {n}"
            );
        }
        out
    }
}

#[derive(Default)]
struct ProcessStats {
    rss: u64,
    vsize: u64,
    cpu_seconds: f64,
    open_fds: usize,
}

/// Reads /proc/self; on a system without it the process metrics read 0.
fn process_stats() -> ProcessStats {
    let mut p = ProcessStats::default();
    // SAFETY: sysconf has no preconditions.
    let (page, ticks) = unsafe { (libc::sysconf(libc::_SC_PAGESIZE), libc::sysconf(libc::_SC_CLK_TCK)) };
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name, which is in parentheses and may hold spaces.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
            // Counting from the state field (index 0): utime 11, stime 12, vsize 20, rss 21.
            p.cpu_seconds = (num(11) + num(12)) as f64 / ticks.max(1) as f64;
            p.vsize = num(20);
            p.rss = num(21) * page.max(0) as u64;
        }
    }
    p.open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    p
}
