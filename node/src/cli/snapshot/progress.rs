//! Progress of a long save or restore: bytes so far (of how many, when known) and the rate,
//! redrawn in place on standard error at most every quarter second, and only when standard
//! error is a terminal (a log or a pipe gets just the final message of the command).

use super::human_bytes;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const REDRAW: Duration = Duration::from_millis(250);

pub struct Progress {
    label: &'static str,
    total: Option<u64>,
    done: u64,
    started: Instant,
    drawn: Option<Instant>,
    enabled: bool,
}

impl Progress {
    pub fn new(label: &'static str, total: Option<u64>) -> Progress {
        Progress::to_terminal(label, total, std::io::stderr().is_terminal())
    }

    fn to_terminal(label: &'static str, total: Option<u64>, enabled: bool) -> Progress {
        Progress { label, total, done: 0, started: Instant::now(), drawn: None, enabled }
    }

    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
    }

    pub fn add(&mut self, bytes: u64) {
        self.done += bytes;
        if self.enabled && self.drawn.is_none_or(|at| at.elapsed() >= REDRAW) {
            self.draw();
        }
    }

    /// The last figures, then a new line (if anything was drawn).
    pub fn finish(mut self) {
        if self.enabled && self.drawn.is_some() {
            self.draw();
            eprintln!();
        }
    }

    fn draw(&mut self) {
        self.drawn = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{}\x1b[K", self.line(self.started.elapsed()));
        let _ = err.flush();
    }

    fn line(&self, elapsed: Duration) -> String {
        let rate = self.done as f64 / elapsed.as_secs_f64().max(0.001);
        let of = match self.total {
            Some(t) if t > 0 => {
                format!(" / {} ({}%)", human_bytes(t), (self.done as u128 * 100 / t as u128).min(100))
            }
            _ => String::new(),
        };
        format!("{}: {}{of}, {}/s", self.label, human_bytes(self.done), human_bytes(rate as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_bytes_share_and_rate() {
        let mut p = Progress::to_terminal("restoring", Some(2_000_000_000), false);
        p.add(500_000_000);
        assert_eq!(p.line(Duration::from_secs(10)), "restoring: 500 MB / 2.0 GB (25%), 50 MB/s");
        let mut p = Progress::to_terminal("saving", None, false);
        p.add(1500);
        assert_eq!(p.line(Duration::from_secs(1)), "saving: 1.5 kB, 1.5 kB/s");
    }
}
