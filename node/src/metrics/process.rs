//! The process_* metrics every Prometheus client exports (etcd's Go client among them), read
//! from /proc at scrape time.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A counter read rather than counted (the kernel counts CPU time).
#[derive(Clone, Debug, Default)]
struct ReadCounter(Arc<AtomicU64>);

impl ReadCounter {
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}

impl EncodeMetric for ReadCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&f64::from_bits(self.0.load(Ordering::Relaxed)), None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

type FloatGauge = Gauge<f64, AtomicU64>;

pub struct Process {
    rss: Gauge,
    vsize: Gauge,
    cpu: ReadCounter,
    open_fds: Gauge,
    max_fds: Gauge,
}

impl Process {
    pub fn register(r: &mut Registry) -> Process {
        let p = Process {
            rss: Gauge::default(),
            vsize: Gauge::default(),
            cpu: ReadCounter::default(),
            open_fds: Gauge::default(),
            max_fds: Gauge::default(),
        };
        let start = FloatGauge::default();
        start.set(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0));
        r.register("process_resident_memory_bytes", "Resident memory size in bytes", p.rss.clone());
        r.register("process_virtual_memory_bytes", "Virtual memory size in bytes", p.vsize.clone());
        r.register("process_cpu_seconds", "Total user and system CPU time spent in seconds", p.cpu.clone());
        r.register("process_open_fds", "Number of open file descriptors", p.open_fds.clone());
        r.register("process_max_fds", "Maximum number of open file descriptors", p.max_fds.clone());
        r.register("process_start_time_seconds", "Start time of the process since unix epoch in seconds", start);
        p
    }

    pub fn sample(&self) {
        let s = process_stats();
        self.rss.set(s.rss as i64);
        self.vsize.set(s.vsize as i64);
        self.cpu.set(s.cpu_seconds);
        self.open_fds.set(s.open_fds as i64);
        self.max_fds.set(s.max_fds as i64);
    }
}

#[derive(Default)]
struct ProcessStats {
    rss: u64,
    vsize: u64,
    cpu_seconds: f64,
    open_fds: usize,
    max_fds: u64,
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
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        p.max_fds = limit.rlim_cur;
    }
    p
}
