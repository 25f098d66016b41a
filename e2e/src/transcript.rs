//! etcdctl transcripts compared between etcd and Cairn: each answer with a newline after it,
//! and what differs from run to run (ports, ids, a lease's remaining TTL, the order a new
//! member's random id gives it) masked.

use crate::harness::Member;
use regex::Regex;
use std::time::{Duration, Instant};

/// etcdctl against `m`: what it printed and its errors, then a newline.
pub fn ctl(m: &Member, args: &[&str]) -> String {
    m.ctl(args) + "\n"
}

/// Ports and ids differ from run to run; what is left must not. The member list of
/// `ETCD_INITIAL_CLUSTER` is sorted (it comes in id order).
pub fn normalize(s: &str) -> String {
    let s = Regex::new(r"http://127\.0\.0\.1:\d+").unwrap().replace_all(s, "URL");
    // etcdctl prints ids unpadded in lists, space-padded to 16 in "Member <id> ... cluster <id>".
    let s = Regex::new(r"(Member|cluster) +[0-9a-f]+").unwrap().replace_all(&s, "$1 ID");
    let s = Regex::new(r"\b[0-9a-f]{10,16}\b").unwrap().replace_all(&s, "ID");
    let s = Regex::new(r"remaining\(\d+s\)").unwrap().replace_all(&s, "remaining(N)");
    let s = Regex::new(r#"ETCD_INITIAL_CLUSTER="([^"]*)""#).unwrap().replace_all(&s, |c: &regex::Captures| {
        let mut parts: Vec<&str> = c[1].split(',').collect();
        parts.sort();
        format!("ETCD_INITIAL_CLUSTER=\"{}\"", parts.join(","))
    });
    s.into_owned()
}

/// Retries `args` on `m` until the output contains `want` (a learner catches up at its own
/// pace); returns that output.
pub fn ctl_until(m: &Member, args: &[&str], want: &str, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let out = ctl(m, args);
        if out.contains(want) {
            return out;
        }
        assert!(start.elapsed() < within, "{args:?} never answered {want:?}; last answer:\n{out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
