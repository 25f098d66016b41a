//! The backup part of a reconcile: the writer started, kept or stopped, and what it reports
//! turned into status.lastBackup, the BackupHealthy condition, Events and metrics.

use super::health::{health, last_backup};
use super::runner::Runners;
use super::runner::{id, s3_config, writer_config};
use crate::crd::{CairnCluster, CairnClusterStatus};
use crate::metrics::Metrics;
use crate::reconcile::observe::Seen;
use crate::reconcile::status::condition;
use kube::runtime::events::{Event, EventType};

pub async fn reconcile(
    client: &kube::Client,
    runners: &Runners,
    metrics: &Metrics,
    c: &CairnCluster,
    seen: &Seen,
    status: &mut CairnClusterStatus,
) -> Vec<Event> {
    let cluster = id(c);
    let Some(spec) = &c.spec.backup else {
        runners.stop(&cluster);
        return Vec::new();
    };
    // While every member is restored from a backup there is nothing to read, and what the
    // restored cluster serves first must not count as a continuation of the old one.
    if c.status.as_ref().is_some_and(|s| s.restore.is_some()) {
        runners.stop(&cluster);
        return Vec::new();
    }
    let ns = crate::resources::namespace(c);
    let settings = match (writer_config(spec), s3_config(client, &ns, &spec.s3).await) {
        (Ok(cfg), Ok(s3)) => Ok((cfg, s3)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let (cfg, s3) = match settings {
        Ok(s) => s,
        Err(e) => {
            runners.stop(&cluster);
            status.conditions.push(condition(c, "BackupHealthy", false, "InvalidConfig", &e));
            return Vec::new();
        }
    };
    let interval = cfg.delta_interval;
    // Voters only: a learner serves no snapshot and no watch.
    let voters: Vec<String> = seen
        .observed
        .members
        .iter()
        .flatten()
        .filter(|m| !m.learner)
        .filter_map(|m| seen.endpoints.get(&m.name).cloned())
        .collect();
    if !voters.is_empty() {
        runners.ensure(&cluster, s3, cfg, voters);
    }
    let progress = runners.take_progress(&cluster).unwrap_or_default();
    let now = cairn_backup::time::now_ms();
    let h = health(&progress, interval, now);
    status.conditions.push(condition(c, "BackupHealthy", h.ok, h.reason, &h.message));
    status.last_backup = Some(last_backup(&progress));

    let labels = crate::metrics::cluster(c);
    let m = metrics;
    if let Some(ms) = progress.full_unix_ms {
        m.backup_last_full.get_or_create(&labels).set(ms as f64 / 1000.0);
    }
    if let Some(ms) = progress.current_unix_ms {
        m.backup_last_current.get_or_create(&labels).set(ms as f64 / 1000.0);
    }
    if let Some(lag) = progress.lag_ms {
        m.backup_delta_lag.get_or_create(&labels).set(lag as f64 / 1000.0);
    }
    m.backup_uploaded_bytes.get_or_create(&labels).set(progress.bytes_uploaded as i64);
    m.backup_healthy.get_or_create(&labels).set(i64::from(h.ok));

    progress
        .notes
        .into_iter()
        .map(|(reason, note)| Event {
            type_: if reason == "FullBackup" { EventType::Normal } else { EventType::Warning },
            reason: reason.into(),
            note: Some(note),
            action: "Backup".into(),
            secondary: None,
        })
        .collect()
}
