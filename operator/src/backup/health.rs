//! BackupHealthy and status.lastBackup from what the writer reports: healthy once a full
//! snapshot is in S3 and everything the watch delivered reached S3 recently (within three
//! delta intervals, and never less than a minute: a store that is slow for a moment is not
//! an outage).

use super::writer::Progress;
use crate::crd::LastBackup;
use std::time::Duration;

#[derive(Debug, PartialEq)]
pub struct Health {
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
}

pub fn last_backup(p: &Progress) -> LastBackup {
    LastBackup {
        full_revision: p.full_revision,
        full_time: p.full_unix_ms.map(cairn_backup::time::format_ms),
        delta_revision: p.head,
        delta_time: p.head_unix_ms.filter(|ms| *ms > 0).map(cairn_backup::time::format_ms),
    }
}

pub fn health(p: &Progress, delta_interval: Duration, now_ms: i64) -> Health {
    let allowed = (delta_interval * 3).max(Duration::from_secs(60)).as_millis() as i64;
    let error = p.last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default();
    let Some(full) = p.full_revision else {
        return match &p.last_error {
            Some(e) => Health { ok: false, reason: "BackupFailing", message: e.clone() },
            None => Health { ok: false, reason: "Starting", message: "taking the first full snapshot".into() },
        };
    };
    match p.current_unix_ms {
        Some(at) if now_ms - at <= allowed => Health {
            ok: true,
            reason: "Current",
            message: format!(
                "full snapshot at revision {full}; changes up to revision {} in S3",
                p.head.unwrap_or(full)
            ),
        },
        Some(at) => Health {
            ok: false,
            reason: "Stalled",
            message: format!("no change has reached S3 for {} s{error}", (now_ms - at) / 1000),
        },
        None => {
            Health { ok: false, reason: "Starting", message: format!("following changes from revision {full}{error}") }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_only_while_backups_advance() {
        let interval = Duration::from_secs(10);
        let starting = Progress::default();
        assert_eq!(health(&starting, interval, 0).reason, "Starting");
        let failing = Progress { last_error: Some("s3 down".into()), ..Default::default() };
        assert_eq!(
            health(&failing, interval, 0),
            Health { ok: false, reason: "BackupFailing", message: "s3 down".into() }
        );
        let current =
            Progress { full_revision: Some(5), head: Some(9), current_unix_ms: Some(100_000), ..Default::default() };
        let h = health(&current, interval, 159_000);
        assert!(h.ok && h.message.contains("revision 9"), "{h:?}");
        let stalled = Progress { last_error: Some("timeout".into()), ..current };
        let h = health(&stalled, interval, 161_000);
        assert!(!h.ok && h.reason == "Stalled" && h.message.contains("61 s; last error: timeout"), "{h:?}");
        let slow = health(
            &Progress { full_revision: Some(5), current_unix_ms: Some(0), ..Default::default() },
            Duration::from_secs(60),
            170_000,
        );
        assert!(slow.ok, "three intervals of a minute each: {slow:?}");
    }

    #[test]
    fn last_backup_in_rfc3339() {
        let p = Progress {
            full_revision: Some(5),
            full_unix_ms: Some(1_763_719_200_000),
            head: Some(9),
            head_unix_ms: Some(1_763_719_210_500),
            ..Default::default()
        };
        let l = last_backup(&p);
        assert_eq!(l.full_time.as_deref(), Some("2025-11-21T10:00:00.000Z"));
        assert_eq!(l.delta_time.as_deref(), Some("2025-11-21T10:00:10.500Z"));
        assert_eq!((l.full_revision, l.delta_revision), (Some(5), Some(9)));
    }
}
