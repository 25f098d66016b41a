//! Throughput and latency percentiles of one bench run.

use std::time::Duration;

pub struct Report {
    sorted: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Report {
    pub fn new(mut latencies: Vec<Duration>, errors: usize, elapsed: Duration) -> Report {
        latencies.sort_unstable();
        Report { sorted: latencies, errors, elapsed }
    }

    fn pct(&self, p: f64) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let i = ((self.sorted.len() as f64 * p).ceil() as usize).clamp(1, self.sorted.len()) - 1;
        self.sorted[i].as_secs_f64() * 1000.0
    }

    fn rps(&self) -> f64 {
        self.sorted.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn json(&self) -> String {
        serde_json::json!({
            "ok": self.sorted.len(),
            "errors": self.errors,
            "seconds": self.elapsed.as_secs_f64(),
            "requests_per_second": self.rps(),
            "p50_ms": self.pct(0.50),
            "p90_ms": self.pct(0.90),
            "p99_ms": self.pct(0.99),
            "max_ms": self.pct(1.0),
        })
        .to_string()
    }

    pub fn text(&self) -> String {
        format!(
            "Summary:\n  Total:\t{:.4} secs.\n  Requests/sec:\t{:.1}\n  OK:\t{}\n  Errors:\t{}\nLatency (ms):\n  p50:\t{:.3}\n  p90:\t{:.3}\n  p99:\t{:.3}\n  max:\t{:.3}\n",
            self.elapsed.as_secs_f64(),
            self.rps(),
            self.sorted.len(),
            self.errors,
            self.pct(0.50),
            self.pct(0.90),
            self.pct(0.99),
            self.pct(1.0)
        )
    }
}
