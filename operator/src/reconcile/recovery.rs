//! The record of a recovery from quorum loss: what it starts from (the survivor, its revision,
//! the newest revision seen before), what it discards, and what that may have cost.

use super::observe::Seen;
use super::status::rfc3339_now;
use crate::crd::{CairnCluster, RecordedRecovery, RecoveryStage};

/// The record made before the first step.
pub fn start(c: &CairnCluster, seen: &Seen, survivor: &str, lost: &[String]) -> RecordedRecovery {
    RecordedRecovery {
        survivor: survivor.to_string(),
        lost: lost.to_vec(),
        stage: RecoveryStage::Forcing,
        revision: seen.statuses.get(survivor).map_or(0, |s| s.revision),
        last_seen_revision: c.status.as_ref().and_then(|s| s.revision),
        started: rfc3339_now(),
        completed: None,
    }
}

/// The record of the recovery in progress, completed now.
pub fn finish(c: &CairnCluster) -> Option<RecordedRecovery> {
    let mut r = c.status.as_ref()?.recovery.clone()?;
    r.completed = Some(rfc3339_now());
    Some(r)
}

/// What a recovery loses, for its Event: the survivor has every write it applied; writes the
/// lost majority acknowledged after that are gone.
pub fn lost_note(r: &RecordedRecovery) -> String {
    let at_risk = match r.last_seen_revision {
        Some(seen) if seen > r.revision => format!(
            "revisions {} to {} (the newest the operator saw) and any acknowledged after them are lost",
            r.revision + 1,
            seen
        ),
        Some(seen) => format!(
            "the operator last saw revision {seen}; writes the lost members acknowledged after it, if any, are lost"
        ),
        None => "writes the lost members acknowledged after it, if any, are lost".to_string(),
    };
    format!(
        "quorum lost for good: {} discarded; {} restarts from its data (revision {}) as a one-member cluster; {at_risk}",
        r.lost.join(", "),
        r.survivor,
        r.revision
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(revision: i64, seen: Option<i64>) -> RecordedRecovery {
        RecordedRecovery {
            survivor: "demo-0".into(),
            lost: vec!["demo-1".into(), "demo-2".into()],
            stage: RecoveryStage::Forcing,
            revision,
            last_seen_revision: seen,
            started: "2026-12-02T00:00:00Z".into(),
            completed: None,
        }
    }

    #[test]
    fn the_note_names_the_revisions_at_risk() {
        let n = lost_note(&record(40, Some(45)));
        assert!(n.contains("demo-1, demo-2 discarded") && n.contains("revisions 41 to 45"), "{n}");
        let n = lost_note(&record(45, Some(45)));
        assert!(n.contains("last saw revision 45"), "{n}");
    }
}
