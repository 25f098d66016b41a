//! Automatic compaction (--auto-compaction-mode/-retention), as etcd 3.4's compactors do it,
//! run by the leader only (a new leader starts afresh):
//! - periodic, retention P: the current revision is sampled every min(P, 1h)/10; every
//!   min(P, 1h) the store is compacted at the revision it had P ago.
//! - revision, retention N: every 5 minutes, compacted at (current revision - N).

use crate::grpc::ServerCtx;
use crate::proto::cairnpb::internal_request::Request;
use crate::proto::etcdserverpb::{CompactionRequest, CompactionResponse};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Periodic(Duration),
    Revision(i64),
}

/// etcd's reading of the flags: a bare number is hours (periodic) or revisions (revision);
/// otherwise a duration. Retention 0 turns automatic compaction off.
pub fn policy(mode: &str, retention: &str) -> Result<Option<Policy>, String> {
    if let Ok(n) = retention.parse::<i64>() {
        return match (n, mode) {
            (0, _) => Ok(None),
            (n, _) if n < 0 => Err(format!("--auto-compaction-retention: {retention:?} must not be negative")),
            (n, "periodic") => Ok(Some(Policy::Periodic(Duration::from_secs(n as u64 * 3600)))),
            (n, _) => Ok(Some(Policy::Revision(n))),
        };
    }
    match (crate::config::parse_duration(retention), mode) {
        (Some(d), "periodic") => Ok(Some(Policy::Periodic(d))),
        (Some(_), _) => {
            Err(format!("--auto-compaction-retention: revision mode takes a number of revisions, not {retention:?}"))
        }
        (None, _) if matches!(retention, "0s" | "0m" | "0h") => Ok(None),
        (None, _) => Err(format!("--auto-compaction-retention: error parsing CompactionRetention: {retention:?}")),
    }
}

/// The revision to compact at, from samples (time, revision) oldest first: the newest one
/// at least `period` old.
fn periodic_target(samples: &VecDeque<(Instant, i64)>, now: Instant, period: Duration) -> Option<i64> {
    samples.iter().rev().find(|(t, _)| now.duration_since(*t) >= period).map(|(_, r)| *r)
}

const REVISION_INTERVAL: Duration = Duration::from_secs(5 * 60);

pub async fn run(ctx: Arc<ServerCtx>, policy: Policy) {
    let (tick, every) = match policy {
        Policy::Periodic(p) => {
            let every = p.min(Duration::from_secs(3600));
            (every / 10, every)
        }
        Policy::Revision(_) => (REVISION_INTERVAL, REVISION_INTERVAL),
    };
    let mut timer = tokio::time::interval(tick);
    let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
    let mut leading_since: Option<Instant> = None;
    let mut last_run = Instant::now();
    loop {
        tokio::select! {
            _ = timer.tick() => {}
            _ = ctx.stopped() => return,
        }
        let now = Instant::now();
        if !ctx.raft.status().is_leader() {
            leading_since = None;
            samples.clear();
            continue;
        }
        let since = *leading_since.get_or_insert(now);
        let current = ctx.mvcc.current_revision();
        let target = match policy {
            Policy::Periodic(period) => {
                samples.push_back((now, current));
                // Only what is needed: the newest sample older than the period and after.
                while samples.len() > 1 && now.duration_since(samples[1].0) >= period {
                    samples.pop_front();
                }
                if now.duration_since(last_run.max(since)) < every {
                    continue;
                }
                periodic_target(&samples, now, period)
            }
            Policy::Revision(keep) => {
                if now.duration_since(since) < every {
                    continue;
                }
                Some(current - keep)
            }
        };
        let Some(rev) = target.filter(|r| *r > ctx.mvcc.compact_revision()) else { continue };
        last_run = now;
        tracing::info!(revision = rev, ?policy, "starting auto-compaction");
        let req = Request::Compaction(CompactionRequest { revision: rev, physical: false });
        if let Err(e) = ctx.propose::<CompactionResponse>(req).await {
            tracing::warn!(revision = rev, error = %e, "auto-compaction failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_reads_as_etcd_reads_it() {
        assert_eq!(policy("periodic", "0"), Ok(None));
        assert_eq!(policy("periodic", "1"), Ok(Some(Policy::Periodic(Duration::from_secs(3600)))));
        assert_eq!(policy("periodic", "30m"), Ok(Some(Policy::Periodic(Duration::from_secs(1800)))));
        assert_eq!(policy("revision", "1000"), Ok(Some(Policy::Revision(1000))));
        assert!(policy("revision", "1h").is_err());
        assert!(policy("periodic", "soon").is_err());
        assert!(policy("periodic", "-1").is_err());
    }

    #[test]
    fn periodic_compaction_keeps_exactly_the_retention() {
        let t0 = Instant::now();
        let samples: VecDeque<(Instant, i64)> =
            (0..10).map(|i| (t0 + Duration::from_secs(i), 100 + i as i64 * 10)).collect();
        let now = t0 + Duration::from_secs(12);
        // 5 s of history kept: the revision of 7 s into the run (12 - 5).
        assert_eq!(periodic_target(&samples, now, Duration::from_secs(5)), Some(170));
        assert_eq!(periodic_target(&samples, now, Duration::from_secs(60)), None, "nothing that old yet");
    }
}
