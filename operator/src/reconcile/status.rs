//! The CairnCluster's status as the reconciler reports it: members (name, id, learner,
//! healthy), the leader, revision and size, the phase, and the Available, Progressing and
//! Degraded conditions (their transition times kept while they hold).

use super::observe::Seen;
use super::plan::{Change, Step};
use crate::crd::{CairnCluster, CairnClusterStatus, MemberStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::Value;

pub fn rfc3339_now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A condition, its transition time kept while its status holds.
pub fn condition(c: &CairnCluster, kind: &str, ok: bool, reason: &str, message: &str) -> Condition {
    let status = if ok { "True" } else { "False" };
    let previous = c.status.as_ref().and_then(|s| s.conditions.iter().find(|x| x.type_ == kind && x.status == status));
    // Whole seconds, as the API server keeps them.
    let now = || {
        Time(
            k8s_openapi::jiff::Timestamp::from_second(k8s_openapi::jiff::Timestamp::now().as_second())
                .unwrap_or_default(),
        )
    };
    Condition {
        type_: kind.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: previous.map_or_else(now, |p| p.last_transition_time.clone()),
        observed_generation: c.metadata.generation,
    }
}

/// The condition of this type, wherever it stands in the list.
pub fn find<'a>(st: &'a CairnClusterStatus, kind: &str) -> Option<&'a Condition> {
    st.conditions.iter().find(|x| x.type_ == kind)
}

/// The status as the merge patch that writes it: every field the reconciler owns is written,
/// an empty one as null or [] so that what went away (a leader, members) does not stay. The
/// fields the steps record (change, recovery, restore and their last ones) are left out:
/// they are written only by the steps.
pub fn patch_body(st: &CairnClusterStatus) -> Value {
    let mut v = serde_json::to_value(st).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        for owned in ["leader", "dbSize"] {
            o.entry(owned).or_insert(Value::Null);
        }
        o.entry("members").or_insert(Value::Array(Vec::new()));
    }
    serde_json::json!({ "status": v })
}

/// The step in words, for the Progressing condition's message.
pub fn describe(step: &Step) -> String {
    match step {
        Step::Bootstrap { names } => format!("founding members {}", names.join(", ")),
        Step::AddLearner { name } => format!("adding {name} as a learner"),
        Step::CreatePod { name } => format!("creating the pod of {name}"),
        Step::Promote { name, .. } => format!("promoting learner {name}"),
        Step::MoveLeader { from, to } => format!("moving leadership from {from:x} to {to:x}"),
        Step::Remove { name, .. } => format!("removing {name}"),
        Step::DeletePod { name, claim: true } => format!("deleting the pod and claim of {name}"),
        Step::DeletePod { name, claim: false } => format!("deleting the pod of {name}"),
        Step::Update { name } => format!("updating {name}: its pod is made again as the spec asks"),
        Step::Finish => "completing the change in progress".into(),
        Step::Recover { survivor, .. } => format!("quorum lost for good: recovering from {survivor}"),
        Step::CreateForcedPod { name } => format!("starting {name} as a one-member cluster (--force-new-cluster)"),
        Step::Restart { name } => format!("restarting {name} without --force-new-cluster"),
        Step::FinishRecovery { survivor } => format!("{survivor} serves alone: completing the recovery"),
        Step::Rebuild { .. } => "every member's data is lost: rebuilding from the newest backup".into(),
        Step::StartRestore => "every member stopped: restoring each from the backup".into(),
        Step::CreateRestoredPod { name } => format!("creating the pod of {name}, which restores from the backup"),
        Step::FinishRestore => "every member restored: completing the restore".into(),
        Step::Wait { reason } | Step::Degraded { reason } | Step::Stalled { reason, .. } => reason.clone(),
        Step::Done => "the cluster is as its spec asks".into(),
    }
}

pub fn status(c: &CairnCluster, seen: &Seen, step: &Step) -> CairnClusterStatus {
    let members = seen.observed.members.clone().unwrap_or_default();
    let voters: Vec<_> = members.iter().filter(|m| !m.learner).collect();
    let healthy = voters.iter().filter(|m| m.healthy).count();
    let available = !voters.is_empty() && healthy >= crate::quorum::quorum(voters.len());
    let leader = members.iter().find(|m| m.leader);
    let leader_status = leader.and_then(|l| seen.statuses.get(&l.name));
    let recovering = seen.observed.recovery.is_some() || matches!(step, Step::Recover { .. });
    let restoring = seen.observed.restore.is_some() || matches!(step, Step::Rebuild { .. });
    let updating = matches!(seen.observed.change, Some(Change::Updating { .. })) || matches!(step, Step::Update { .. });
    let (phase, progressing, degraded) = match step {
        Step::Stalled { reason, .. } => ("Degraded", None, Some(reason.clone())),
        _ if restoring => {
            ("Restoring", Some(format!("restoring every member from a backup: {}", describe(step))), None)
        }
        _ if recovering => ("Recovering", Some(format!("recovering from quorum loss: {}", describe(step))), None),
        Step::Done => ("Running", None, None),
        Step::Degraded { reason } => ("Degraded", None, Some(reason.clone())),
        _ if seen.observed.members.is_none() => ("Creating", Some(describe(step)), None),
        _ if updating => ("Updating", Some(describe(step)), None),
        _ => ("Reconciling", Some(describe(step)), None),
    };
    let progress_reason = match step {
        Step::Stalled { .. } => "UpdateStalled",
        _ if progressing.is_some() => "Reconciling",
        _ => "AsAsked",
    };
    // Members whose pods are as the spec asks now.
    let updated = members
        .iter()
        .filter(|m| seen.observed.workloads.iter().any(|w| w.name == m.name && w.pod && !w.outdated))
        .count();
    let listed = members
        .iter()
        .map(|m| MemberStatus {
            name: m.name.clone(),
            id: Some(format!("{:x}", m.id)),
            learner: m.learner,
            healthy: m.healthy,
        })
        .collect();
    let progress_message = progressing
        .as_deref()
        .or(degraded.as_deref().filter(|_| progress_reason == "UpdateStalled"))
        .unwrap_or("the cluster is as its spec asks");
    let available_reason = if available { "QuorumHealthy" } else { "NoQuorum" };
    let degraded_reason = if degraded.is_some() { "Degraded" } else { "Healthy" };
    CairnClusterStatus {
        phase: Some(phase.into()),
        members: listed,
        ready_members: Some(healthy as i32),
        updated_members: Some(updated as i32),
        leader: leader.map(|l| l.name.clone()),
        // Without a leader, the newest revision seen stays (a recovery names what it lost by it).
        revision: leader_status.map(|s| s.revision).or(c.status.as_ref().and_then(|s| s.revision)),
        db_size: leader_status.map(|s| s.db_size),
        observed_generation: c.metadata.generation,
        conditions: vec![
            condition(
                c,
                "Available",
                available,
                available_reason,
                &format!("{healthy} of {} voters healthy", voters.len()),
            ),
            condition(c, "Progressing", progressing.is_some(), progress_reason, progress_message),
            condition(c, "Degraded", degraded.is_some(), degraded_reason, degraded.as_deref().unwrap_or("")),
        ],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_clears_what_went_away_and_leaves_the_steps_records_alone() {
        let st = CairnClusterStatus { phase: Some("Creating".into()), ..Default::default() };
        let body = patch_body(&st);
        let s = &body["status"];
        assert_eq!((s["leader"].clone(), s["dbSize"].clone()), (Value::Null, Value::Null));
        assert_eq!(s["members"], serde_json::json!([]));
        for record in ["change", "recovery", "lastRecovery", "restore", "lastRestore"] {
            assert!(s.get(record).is_none(), "{record} is the steps' to write");
        }
    }
}
