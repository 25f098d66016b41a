//! Automatic compaction (--auto-compaction-mode/-retention), as etcd 3.4's compactors do it,
//! run by the leader only (a new leader starts afresh):
//! - periodic, retention P: the current revision is sampled every min(P, 1h)/10; every
//!   min(P, 1h) the store is compacted at the revision it had P ago.
//! - revision, retention N: every 5 minutes, compacted at (current revision - N).

use crate::config::Policy;
use crate::grpc::Common;
use crate::proto::cairnpb::internal_request::Request;
use crate::proto::etcdserverpb::{CompactionRequest, CompactionResponse};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The revision to compact at, from samples (time, revision) oldest first: the newest one
/// at least `period` old.
fn periodic_target(samples: &VecDeque<(Instant, i64)>, now: Instant, period: Duration) -> Option<i64> {
    samples.iter().rev().find(|(t, _)| now.duration_since(*t) >= period).map(|(_, r)| *r)
}

const REVISION_INTERVAL: Duration = Duration::from_secs(5 * 60);

pub async fn run(ctx: Arc<Common>, policy: Policy) {
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
        if let Err(e) = ctx.propose::<CompactionResponse>(&crate::apply::Origin::Member, req).await {
            tracing::warn!(revision = rev, error = %e, "auto-compaction failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
