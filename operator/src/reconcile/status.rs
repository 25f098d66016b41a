//! The CairnCluster's status as the reconciler reports it: members (name, id, learner,
//! healthy), the leader, revision and size, the phase, and the Available, Progressing and
//! Degraded conditions (their transition times kept while they hold).

use super::observe::Seen;
use super::plan::Step;
use crate::crd::CairnCluster;
use serde_json::{json, Value};

pub fn rfc3339_now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn condition(c: &CairnCluster, kind: &str, ok: bool, reason: &str, message: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let previous = c.status.as_ref().and_then(|s| s.conditions.iter().find(|x| x.type_ == kind && x.status == status));
    let since = previous
        .map(|p| p.last_transition_time.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(rfc3339_now);
    json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": c.metadata.generation,
    })
}

pub fn status(c: &CairnCluster, seen: &Seen, step: &Step) -> Value {
    let members = seen.observed.members.clone().unwrap_or_default();
    let voters: Vec<_> = members.iter().filter(|m| !m.learner).collect();
    let healthy = voters.iter().filter(|m| m.healthy).count();
    let available = !voters.is_empty() && healthy >= crate::quorum::quorum(voters.len());
    let leader = members.iter().find(|m| m.leader);
    let leader_status = leader.and_then(|l| seen.statuses.get(&l.name));
    let recovering = seen.observed.recovery.is_some() || matches!(step, Step::Recover { .. });
    let restoring = seen.observed.restore.is_some() || matches!(step, Step::Rebuild { .. });
    let (phase, progressing, degraded) = match step {
        _ if restoring => ("Restoring", Some(format!("restoring every member from a backup: {step:?}")), None),
        _ if recovering => ("Recovering", Some(format!("recovering from quorum loss: {step:?}")), None),
        Step::Done => ("Running", None, None),
        Step::Degraded { reason } => ("Degraded", None, Some(reason.clone())),
        _ if seen.observed.members.is_none() => ("Creating", Some(format!("{step:?}")), None),
        _ => ("Reconciling", Some(format!("{step:?}")), None),
    };
    let listed: Vec<Value> = members
        .iter()
        .map(|m| json!({"name": m.name, "id": format!("{:x}", m.id), "learner": m.learner, "healthy": m.healthy}))
        .collect();
    json!({
        "phase": phase,
        "members": listed,
        "readyMembers": healthy,
        "leader": leader.map(|l| l.name.clone()),
        // Without a leader, the newest revision seen stays (a recovery names what it lost by it).
        "revision": leader_status.map(|s| s.revision).or(c.status.as_ref().and_then(|s| s.revision)),
        "dbSize": leader_status.map(|s| s.db_size),
        "observedGeneration": c.metadata.generation,
        "conditions": [
            condition(c, "Available", available, if available { "QuorumHealthy" } else { "NoQuorum" },
                &format!("{healthy} of {} voters healthy", voters.len())),
            condition(c, "Progressing", progressing.is_some(), if progressing.is_some() { "Reconciling" } else { "AsAsked" },
                progressing.as_deref().unwrap_or("the cluster is as its spec asks")),
            condition(c, "Degraded", degraded.is_some(), if degraded.is_some() { "Degraded" } else { "Healthy" },
                degraded.as_deref().unwrap_or("")),
        ],
    })
}
