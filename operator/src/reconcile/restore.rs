//! Restoring every member of a cluster from a backup — a rebuild after quorum loss with no
//! member's data left, or a CairnRestore: what the backup can give (checked before anything
//! is stopped), the record made before the first step, and what it cost.

use super::status::rfc3339_now;
use crate::crd::{RecordedRestore, RestoreSpec, RestoreStage, S3Location};
use cairn_backup::catalog::{Plan, Target};

/// How far past the newest revision anyone saw the restored cluster's revision goes. Writes
/// in the seconds between the operator's last look and the stop are far fewer; revisions
/// are 64-bit, so the gap costs nothing.
pub const BUMP_MARGIN: i64 = 1_000_000;

/// Why a backup cannot be restored from now.
#[derive(Debug, PartialEq)]
pub enum Unusable {
    /// It does not hold what is asked (the message names what it holds): asking again will
    /// not change that.
    Refused(String),
    /// It could not be read (S3 unreachable, credentials missing): maybe later.
    Unreadable(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Refused(m) | Unusable::Unreadable(m) => f.write_str(m),
        }
    }
}

/// What a backup can restore to `target`, checked before anything is stopped.
pub async fn check(client: &kube::Client, ns: &str, s3: &S3Location, target: Target) -> Result<Plan, Unusable> {
    let config = crate::backup::runner::s3_config(client, ns, s3).await.map_err(Unusable::Unreadable)?;
    let store = cairn_backup::s3::Store::new(&config);
    cairn_backup::fetch::plan(&store, target).await.map_err(|e| {
        let message = format!("{}: {e}", store.url(""));
        match e {
            cairn_backup::BackupError::S3 { .. } => Unusable::Unreadable(message),
            _ => Unusable::Refused(message),
        }
    })
}

/// The bump that takes the restored revision past both the newest revision backed up and the
/// newest the operator saw the cluster at, by `BUMP_MARGIN`. For a time target the restored
/// revision is only known to be at least the full snapshot's, so the bump counts from there.
pub fn bump(plan: &Plan, target: Target, last_seen: Option<i64>) -> i64 {
    let floor = match target {
        Target::Revision(r) => r,
        Target::Latest => plan.reaches,
        Target::Time(_) => plan.full.revision,
    };
    plan.head.max(last_seen.unwrap_or(0)) - floor + BUMP_MARGIN
}

/// The record of a restore, made before its first step. A latest target is pinned to the
/// revision the plan reaches, so that every member restores the same.
pub fn record(
    id: String,
    requested_by: Option<String>,
    s3: S3Location,
    (target, time): (Target, Option<String>),
    plan: &Plan,
    last_seen: Option<i64>,
    members: Vec<String>,
) -> RecordedRestore {
    let revision = match target {
        Target::Revision(r) => Some(r),
        Target::Latest => Some(plan.reaches),
        Target::Time(_) => None,
    };
    RecordedRestore {
        id,
        requested_by,
        source: RestoreSpec { s3, revision, time },
        bump_revision: bump(plan, target, last_seen),
        members,
        stage: RestoreStage::Stopping,
        last_seen_revision: last_seen.max(Some(plan.head)),
        started: rfc3339_now(),
        completed: None,
    }
}

/// s3://bucket/prefix, for messages.
pub fn location(s3: &S3Location) -> String {
    format!("s3://{}/{}", s3.bucket, s3.prefix.trim_matches('/'))
}

/// "revision N" or "time T", for messages.
pub fn target(r: &RestoreSpec) -> String {
    match (r.revision, &r.time) {
        (Some(v), _) => format!("revision {v}"),
        (None, Some(t)) => format!("time {t}"),
        (None, None) => "the newest revision".into(),
    }
}

/// The note of a rebuild's Event: what is lost.
pub fn rebuild_note(r: &RecordedRestore, lost: &[String]) -> String {
    let target = r.source.revision.unwrap_or_default();
    let newest = r.last_seen_revision.unwrap_or(target);
    let cost = if newest > target {
        format!("revisions {} to {newest} (the newest seen) and any acknowledged after them are lost", target + 1)
    } else {
        format!("writes acknowledged after revision {target}, if any, are lost")
    };
    let gone = if lost.is_empty() { "every member".to_string() } else { lost.join(", ") };
    format!(
        "quorum lost for good and no member's data left ({gone}): every member is rebuilt from the newest backup, \
         revision {target}; {cost}; the cluster goes on from revision {}",
        target + r.bump_revision
    )
}

/// A restore recorded as complete.
pub fn finish(r: &RecordedRestore) -> RecordedRestore {
    RecordedRestore { completed: Some(rfc3339_now()), ..r.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_backup::catalog::Full;

    fn plan(full: i64, reaches: i64, head: i64) -> Plan {
        let full = Full {
            revision: full,
            key: "full/x".into(),
            sha256: String::new(),
            bytes: 0,
            stored_bytes: 0,
            unix_ms: 0,
            generation: 1,
            restart: true,
        };
        Plan { full, deltas: vec![], reaches, head }
    }

    #[test]
    fn the_bump_goes_past_every_revision_seen_whatever_the_target() {
        let p = plan(100, 500, 500);
        assert_eq!(40 + bump(&p, Target::Revision(40), Some(900)), 900 + BUMP_MARGIN);
        assert_eq!(500 + bump(&p, Target::Latest, None), 500 + BUMP_MARGIN);
        // A time target restores somewhere from the full snapshot on: past it either way.
        for restored in [100, 300, 500] {
            assert!(restored + bump(&p, Target::Time(0), Some(700)) >= 700 + BUMP_MARGIN);
        }
    }

    #[test]
    fn a_latest_target_is_pinned_and_the_note_names_what_is_lost() {
        let s3: S3Location = serde_yaml::from_str("{bucket: b}").unwrap();
        let r = record("id".into(), None, s3, (Target::Latest, None), &plan(100, 500, 500), Some(520), vec![]);
        assert_eq!((r.source.revision, r.last_seen_revision), (Some(500), Some(520)));
        let note = rebuild_note(&r, &["demo-0".into()]);
        assert!(note.contains("revisions 501 to 520") && note.contains("(demo-0)"), "{note}");
    }
}
