//! The planner: from what the spec asks and what is observed (member pods and claims, the
//! cluster's member list and each member's health, the membership change in progress) to the
//! ONE next step. It is pure, so every transition and failure is a table test; the reconciler
//! carries the step out, records it, and plans again.
//!
//! Rules it keeps: one membership change at a time (a change in progress is finished first);
//! never a step that would leave fewer healthy voters than a quorum; new members join as
//! learners and are promoted once healthy; a leader is never removed (leadership moves first);
//! a member whose data is gone, or that stays unhealthy while quorum holds, is removed and
//! comes back as a new learner. Quorum lost for good (see `quorum_lost`) is recovered from
//! the member with the most data, never while a majority can still form.

use crate::crd::RecoveryMode;
use crate::quorum::quorum;
use std::time::Duration;

/// Members are `<cluster>-<ordinal>`; a claim and a pod carry the member's name.
pub fn member_name(cluster: &str, ordinal: usize) -> String {
    format!("{cluster}-{ordinal}")
}

fn ordinal(cluster: &str, name: &str) -> Option<usize> {
    name.strip_prefix(cluster)?.strip_prefix('-')?.parse().ok()
}

/// A member as the cluster's member list shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub id: u64,
    /// The member's name (from its peer URL, so known before it starts).
    pub name: String,
    pub learner: bool,
    /// Healthy: it answers, with a leader, and (learners) has caught up enough to promote.
    pub healthy: bool,
    pub leader: bool,
    /// Its status answered (with or without a leader).
    pub reachable: bool,
    /// Its applied index, when it answered.
    pub applied: u64,
}

/// A member's pod and claim as the API shows them.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Workload {
    pub name: String,
    pub pod: bool,
    pub pod_ready: bool,
    /// Being deleted.
    pub pod_terminating: bool,
    pub claim: bool,
    /// How long its member has been unhealthy (None: healthy or unknown).
    pub unhealthy_for: Option<Duration>,
    /// Its pod starts the member with --force-new-cluster.
    pub forced: bool,
    /// Its pod differs from what the spec asks now (image, flags, resources...).
    pub outdated: bool,
}

/// A membership change in progress, recorded (in the CairnCluster's status) before it starts
/// so that a restarted operator finishes it.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A learner added for `name`; next its pod, then its promotion.
    Adding { name: String, since: Duration },
    /// `name` removed from the member list; next its pod and claim go.
    Removing { name: String },
    /// `name`'s pod made again from the spec as it is now; next it is waited for.
    Updating { name: String, since: Duration },
}

/// A recovery from quorum loss in progress, as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovery {
    pub survivor: String,
    pub lost: Vec<String>,
    /// Past the forced start: the survivor runs again without --force-new-cluster.
    pub restarting: bool,
}

/// A restore of every member from a backup in progress, as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Restoring {
    /// The founders it makes.
    pub members: Vec<String>,
    /// Past stopping: no member runs, each starts from the backup.
    pub starting: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub cluster: String,
    pub replicas: usize,
    /// None when no member could be asked (the cluster is not up, or not reachable).
    pub members: Option<Vec<Member>>,
    /// When `members` is None: the list the most advanced member that answers holds
    /// locally (it may be stale), for deciding whether quorum is lost for good, nothing else.
    pub local: Option<Vec<Member>>,
    pub workloads: Vec<Workload>,
    pub change: Option<Change>,
    pub recovery: Option<Recovery>,
    pub restore: Option<Restoring>,
    /// The cluster has served (its status holds a revision): every member's data gone is
    /// then a loss to recover from, never a reason to found an empty cluster.
    pub founded: bool,
    /// spec.backup is set: a cluster with no member's data left is rebuilt from it.
    pub backup: bool,
    pub recovery_mode: RecoveryMode,
    /// How long a majority must stay unreachable before quorum counts as lost for good.
    pub unreachable_for: Duration,
    /// How long one member's update may take before the roll stops.
    pub progress_deadline: Duration,
    /// How long a member may stay unhealthy, quorum holding, before it is replaced.
    pub replace_after: Duration,
    /// Now, on the same clock as `Change::Adding::since`.
    pub now: Duration,
}

/// How long a learner may take to catch up before the cluster is reported Degraded.
pub const PROMOTE_DEADLINE: Duration = Duration::from_secs(300);
/// How far behind the leader's applied index an updated member may be and count as caught up.
pub const CAUGHT_UP: u64 = 1000;

#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Claims and pods of the founding members, all at once, with initial-cluster-state new.
    Bootstrap { names: Vec<String> },
    /// MemberAdd(learner) with `name`'s peer URL; records Change::Adding first.
    AddLearner { name: String },
    /// The claim (if missing) and pod of a member. Its initial-cluster-state is `new` for a
    /// founder (the names Bootstrap gave, recorded) and `existing` for every member added
    /// later; a member that has run before ignores it and starts from its data.
    CreatePod { name: String },
    /// MemberPromote; "not in sync" means wait (and Degraded past PROMOTE_DEADLINE).
    Promote { id: u64, name: String },
    /// MoveLeader away from the member about to go.
    MoveLeader { from: u64, to: u64 },
    /// MemberRemove; records Change::Removing first.
    Remove { id: u64, name: String },
    /// Delete the pod of a member no longer in the cluster (and its claim if `claim`).
    DeletePod { name: String, claim: bool },
    /// Records Change::Updating, then deletes the member's out-of-date pod (its claim stays):
    /// it comes back made from the spec as it is now.
    Update { name: String },
    /// An update did not come back healthy within the progress deadline: the roll stops here
    /// (reported as UpdateStalled) until the member recovers or the spec changes again.
    Stalled { name: String, reason: String },
    /// Clear the recorded change: it is complete.
    Finish,
    /// Quorum is lost for good: records the recovery (dropping any membership change), then
    /// deletes the survivor's pod (its claim stays) and the lost members' pods and claims.
    Recover { survivor: String, lost: Vec<String> },
    /// The survivor's pod, starting it with --force-new-cluster.
    CreateForcedPod { name: String },
    /// The survivor is a one-member cluster: records the stage, then deletes its forced pod
    /// (it comes back without the flag).
    Restart { name: String },
    /// The survivor serves again as itself: the recovery is recorded as complete.
    FinishRecovery { survivor: String },
    /// Quorum lost for good and no member's data left, backups on: records a restore of the
    /// newest backup (which the act looks up, and refuses if there is none), then deletes
    /// every member's pod and claim.
    Rebuild { lost: Vec<String> },
    /// A recorded restore found every member stopped: records that they start now.
    StartRestore,
    /// A founder's claim (if missing) and its pod, which restores its data dir from the
    /// backup before the member starts.
    CreateRestoredPod { name: String },
    /// The restored members serve: the restore is recorded as complete.
    FinishRestore,
    /// Nothing to do but wait (for a pod to start, a member to become healthy...).
    Wait { reason: String },
    /// Waiting, and the cluster is not as asked: reported as the Degraded condition.
    Degraded { reason: String },
    /// As asked.
    Done,
}

fn wait(reason: impl Into<String>) -> Step {
    Step::Wait { reason: reason.into() }
}

pub fn plan(o: &Observed) -> Step {
    let work = |name: &str| o.workloads.iter().find(|w| w.name == name);
    if let Some(r) = &o.restore {
        return restoring(o, r);
    }
    if let Some(r) = &o.recovery {
        return recovering(o, r);
    }
    let Some(members) = &o.members else {
        if let Some(step) = o.local.as_deref().and_then(|local| quorum_lost(o, local)) {
            return step;
        }
        // A cluster that has served, with no member's pod or data left.
        if o.founded && o.local.is_none() && o.workloads.iter().all(|w| !w.pod && !w.claim) {
            let lost: Vec<String> = o.workloads.iter().map(|w| w.name.clone()).collect();
            return no_data_left(o, &lost);
        }
        // Nobody answers. A cluster never started gets its founders; otherwise its pods
        // are recreated (their claims hold the data) and we wait for them.
        if o.workloads.is_empty() && o.change.is_none() {
            return Step::Bootstrap { names: (0..o.replicas).map(|i| member_name(&o.cluster, i)).collect() };
        }
        if let Some(w) = o.workloads.iter().find(|w| w.claim && !w.pod) {
            return Step::CreatePod { name: w.name.clone() };
        }
        return wait("no member answers yet");
    };
    let voters: Vec<&Member> = members.iter().filter(|m| !m.learner).collect();
    let healthy_voters = voters.iter().filter(|m| m.healthy).count();
    let has_quorum = healthy_voters >= quorum(voters.len());
    if !has_quorum {
        if let Some(step) = quorum_lost(o, members) {
            return step;
        }
    }

    // A change in progress comes first.
    match &o.change {
        Some(Change::Adding { name, since }) => {
            let Some(m) = members.iter().find(|m| m.name == *name) else {
                // The MemberAdd was recorded but not made (or refused): try again.
                return if has_quorum {
                    Step::AddLearner { name: name.clone() }
                } else {
                    Step::Degraded { reason: "quorum lost".into() }
                };
            };
            if !m.learner {
                return Step::Finish;
            }
            if work(name).is_none_or(|w| !w.pod) {
                return Step::CreatePod { name: name.clone() };
            }
            if m.healthy {
                return Step::Promote { id: m.id, name: name.clone() };
            }
            if o.now.saturating_sub(*since) > PROMOTE_DEADLINE {
                return Step::Degraded {
                    reason: format!("learner {name} has not caught up within {PROMOTE_DEADLINE:?}"),
                };
            }
            return wait(format!("learner {name} catching up"));
        }
        Some(Change::Updating { name, since }) => {
            return updating(o, members, name, *since);
        }
        Some(Change::Removing { name }) => {
            if let Some(m) = members.iter().find(|m| m.name == *name) {
                return Step::Remove { id: m.id, name: name.clone() };
            }
            return match work(name) {
                Some(w) if w.pod || w.claim => Step::DeletePod { name: name.clone(), claim: true },
                _ => Step::Finish,
            };
        }
        None => {}
    }

    // Pods of current members that are missing (deleted, or lost with their node).
    for m in members {
        match work(&m.name) {
            Some(w) if w.pod && !w.pod_terminating => {}
            Some(w) if w.pod_terminating => return wait(format!("pod {} terminating", m.name)),
            // A claim without a pod: the member's data is there, it comes back as it was.
            Some(w) if w.claim => return Step::CreatePod { name: m.name.clone() },
            // Neither pod nor claim: the data is gone; replaced below, if quorum allows.
            _ => {}
        }
    }
    // A member whose data is gone, or unhealthy for long: remove it (then re-added).
    if has_quorum {
        for m in members {
            let lost = work(&m.name).is_none_or(|w| !w.claim);
            let stuck = work(&m.name).and_then(|w| w.unhealthy_for).is_some_and(|d| d >= o.replace_after);
            if !(lost || stuck) {
                continue;
            }
            let after = voters.len() - usize::from(!m.learner);
            let healthy_after = healthy_voters - usize::from(!m.learner && m.healthy);
            if after > 0 && healthy_after < quorum(after) {
                continue;
            }
            if m.leader {
                if let Some(to) = voters.iter().find(|v| v.healthy && !v.leader) {
                    return Step::MoveLeader { from: m.id, to: to.id };
                }
                continue;
            }
            return Step::Remove { id: m.id, name: m.name.clone() };
        }
    }
    // Pods and claims that belong to no member.
    for w in &o.workloads {
        if !members.iter().any(|m| m.name == w.name) && (w.pod || w.claim) && !w.pod_terminating {
            return Step::DeletePod { name: w.name.clone(), claim: true };
        }
    }
    if !has_quorum {
        return Step::Degraded { reason: format!("{healthy_voters} of {} voters healthy: no quorum", voters.len()) };
    }
    if let Some(l) = members.iter().find(|m| m.learner) {
        // A learner nobody is promoting (its change record was lost): promote it when ready.
        return if l.healthy {
            Step::Promote { id: l.id, name: l.name.clone() }
        } else {
            wait(format!("learner {} catching up", l.name))
        };
    }
    if voters.len() < o.replicas {
        if healthy_voters < voters.len() {
            return wait("a member is unhealthy: no new member until all are healthy");
        }
        let used: Vec<usize> = members.iter().filter_map(|m| ordinal(&o.cluster, &m.name)).collect();
        let next = (0..).find(|i| !used.contains(i)).unwrap_or(0);
        return Step::AddLearner { name: member_name(&o.cluster, next) };
    }
    if voters.len() > o.replicas {
        // The highest ordinal goes; if it leads, leadership moves first.
        let victim = voters.iter().max_by_key(|m| ordinal(&o.cluster, &m.name).unwrap_or(usize::MAX)).expect("voters");
        let healthy_after = healthy_voters - usize::from(victim.healthy);
        if healthy_after < quorum(voters.len() - 1) {
            return Step::Degraded { reason: "removing a member now would lose quorum".into() };
        }
        if victim.leader {
            return match voters.iter().find(|v| v.healthy && v.id != victim.id) {
                Some(to) => Step::MoveLeader { from: victim.id, to: to.id },
                None => Step::Degraded { reason: "no healthy member to hand leadership to".into() },
            };
        }
        return Step::Remove { id: victim.id, name: victim.name.clone() };
    }
    if healthy_voters < voters.len() {
        return Step::Degraded { reason: format!("{healthy_voters} of {} members healthy", voters.len()) };
    }
    roll(o, &voters).unwrap_or(Step::Done)
}

/// The next step of a roll, if a member's pod is out of date: followers first (lowest
/// ordinal first), the leader last, and leadership moved off it before its turn. Only called
/// with every voter healthy and no change in progress.
fn roll(o: &Observed, voters: &[&Member]) -> Option<Step> {
    let outdated = |m: &Member| o.workloads.iter().any(|w| w.name == m.name && w.outdated);
    let by_ordinal = |m: &&&Member| ordinal(&o.cluster, &m.name).unwrap_or(usize::MAX);
    if let Some(m) = voters.iter().filter(|m| outdated(m) && !m.leader).min_by_key(by_ordinal) {
        return Some(Step::Update { name: m.name.clone() });
    }
    let leader = voters.iter().find(|m| outdated(m) && m.leader)?;
    if voters.len() == 1 {
        // Nobody to hand leadership to: the one member is briefly away.
        return Some(Step::Update { name: leader.name.clone() });
    }
    // To an updated member, so that leadership moves once.
    let to = voters.iter().filter(|v| !v.leader).min_by_key(|v| (outdated(v), by_ordinal(v)))?;
    Some(Step::MoveLeader { from: leader.id, to: to.id })
}

/// A member being updated: its pod made again, then waited for until it is healthy and caught
/// up with the leader. If the spec changed again while it fails, its pod is made again from
/// the new spec (that is how fixing the spec resumes a stalled roll).
fn updating(o: &Observed, members: &[Member], name: &str, since: Duration) -> Step {
    let Some(m) = members.iter().find(|m| m.name == name) else { return Step::Finish };
    let Some(w) = o.workloads.iter().find(|w| w.name == name).filter(|w| w.claim) else {
        // Its data is gone: replaced as any member that lost its data, once this is closed.
        return Step::Finish;
    };
    if w.pod_terminating {
        return wait(format!("{name}'s old pod terminating"));
    }
    if !w.pod {
        return Step::CreatePod { name: name.to_string() };
    }
    if m.healthy {
        let leader_applied = members.iter().find(|l| l.leader).map_or(0, |l| l.applied);
        if leader_applied.saturating_sub(m.applied) <= CAUGHT_UP || w.outdated {
            return Step::Finish;
        }
        return wait(format!("{name} catching up ({} behind the leader)", leader_applied - m.applied));
    }
    if w.outdated {
        return Step::Update { name: name.to_string() };
    }
    if o.now.saturating_sub(since) > o.progress_deadline {
        return Step::Stalled {
            name: name.to_string(),
            reason: format!(
                "{name} has not come back healthy within {:?} of its update: the roll stops here (fix the spec, \
                 or the member, and it resumes)",
                o.progress_deadline
            ),
        };
    }
    wait(format!("{name} starting after its update"))
}

/// Whether quorum is lost for good, and what to do about it. For good: the voters that still
/// have their data (claims) and have not been unreachable for `unreachable_for` are fewer
/// than a quorum. Never while the reachable voters are a quorum: they may still elect.
fn quorum_lost(o: &Observed, members: &[Member]) -> Option<Step> {
    let work = |name: &str| o.workloads.iter().find(|w| w.name == name);
    let voters: Vec<&Member> = members.iter().filter(|m| !m.learner).collect();
    let q = quorum(voters.len());
    if voters.iter().filter(|m| m.reachable).count() >= q {
        return None;
    }
    let gone = |m: &Member| {
        let w = work(&m.name);
        // Its claim is going or gone, and its pod too (a terminating pod may still vote).
        let data_gone = w.is_none_or(|w| !w.claim && !w.pod);
        let away = !m.reachable && w.and_then(|w| w.unhealthy_for).is_some_and(|d| d >= o.unreachable_for);
        data_gone || away
    };
    let left: Vec<&Member> = voters.iter().copied().filter(|m| !gone(m)).collect();
    if left.len() >= q {
        return None;
    }
    let lost_voters: Vec<String> = voters.iter().filter(|m| gone(m)).map(|m| m.name.clone()).collect();
    // The survivor: the reachable member with data that applied the most (the lowest
    // ordinal among equals, so every reconcile picks the same one).
    let survivor = members
        .iter()
        .filter(|m| m.reachable && work(&m.name).is_some_and(|w| w.claim))
        .max_by_key(|m| (m.applied, std::cmp::Reverse(ordinal(&o.cluster, &m.name))));
    let Some(survivor) = survivor else {
        // A member that still has its data may come back: nothing is thrown away for a backup
        // while one does.
        let with_data: Vec<&str> = o.workloads.iter().filter(|w| w.claim).map(|w| w.name.as_str()).collect();
        if !with_data.is_empty() {
            return Some(Step::Degraded {
                reason: format!(
                    "quorum lost ({} gone); {} still have their data but do not answer: waiting for one to come back \
                     (delete their claims to have the cluster rebuilt from its backup)",
                    lost_voters.join(", "),
                    with_data.join(", ")
                ),
            });
        }
        return Some(no_data_left(o, &lost_voters));
    };
    let lost: Vec<String> = members.iter().filter(|m| m.name != survivor.name).map(|m| m.name.clone()).collect();
    match o.recovery_mode {
        RecoveryMode::Automatic => Some(Step::Recover { survivor: survivor.name.clone(), lost }),
        RecoveryMode::Manual => Some(Step::Degraded {
            reason: format!(
                "quorum lost for good ({} gone); recovery is Manual: Automatic would restart {} (applied index {}, the highest) \
                 with --force-new-cluster, delete {} with their claims, and add members back as learners; \
                 set spec.recovery.mode to Automatic to have it done",
                lost_voters.join(", "),
                survivor.name,
                survivor.applied,
                lost.join(", ")
            ),
        }),
    }
}

/// Quorum lost for good with no member's data left anywhere: rebuilt from the newest backup
/// (Automatic, with spec.backup), else reported with what to do.
fn no_data_left(o: &Observed, lost: &[String]) -> Step {
    let gone = if lost.is_empty() { "every member".to_string() } else { lost.join(", ") };
    let reason = match (o.recovery_mode, o.backup) {
        (RecoveryMode::Automatic, true) => return Step::Rebuild { lost: lost.to_vec() },
        (RecoveryMode::Automatic, false) => format!(
            "every member's data is gone ({gone}) and spec.backup is not set: there is nothing to rebuild from; \
             recreate the cluster from a backup of your own (spec.bootstrap.restore)"
        ),
        (RecoveryMode::Manual, true) => format!(
            "every member's data is gone ({gone}); recovery is Manual: Automatic would rebuild every member from the \
             newest backup in spec.backup.s3 (keys at their revisions, the revision counter moved past the newest seen); \
             set spec.recovery.mode to Automatic to have it done, or apply a CairnRestore"
        ),
        (RecoveryMode::Manual, false) => format!(
            "every member's data is gone ({gone}) and spec.backup is not set: recreate the cluster from a backup of \
             your own (spec.bootstrap.restore)"
        ),
    };
    Step::Degraded { reason }
}

/// The steps of a recorded restore: every member stopped, then every founder started from the
/// backup. No member serves while another is restored.
fn restoring(o: &Observed, r: &Restoring) -> Step {
    let founder = |name: &str| r.members.iter().any(|m| m == name);
    if !r.starting {
        if let Some(w) = o.workloads.iter().find(|w| w.pod && !w.pod_terminating) {
            return Step::DeletePod { name: w.name.clone(), claim: !founder(&w.name) };
        }
        if o.workloads.iter().any(|w| w.pod) {
            return wait("restoring: members stopping");
        }
        if let Some(w) = o.workloads.iter().find(|w| w.claim && !founder(&w.name)) {
            return Step::DeletePod { name: w.name.clone(), claim: true };
        }
        return Step::StartRestore;
    }
    let work = |name: &str| o.workloads.iter().find(|w| w.name == name);
    if let Some(name) = r.members.iter().find(|n| work(n).is_none_or(|w| !w.pod)) {
        return Step::CreateRestoredPod { name: name.clone() };
    }
    let serving = o.members.as_ref().is_some_and(|ms| {
        ms.len() == r.members.len() && ms.iter().all(|m| m.healthy && !m.learner && founder(&m.name))
    });
    if serving {
        return Step::FinishRestore;
    }
    wait("restoring: members restoring from the backup")
}

/// The steps of a recorded recovery, each done once whatever the operator's restarts.
fn recovering(o: &Observed, r: &Recovery) -> Step {
    let work = |name: &str| o.workloads.iter().find(|w| w.name == name);
    if let Some(w) = r.lost.iter().filter_map(|n| work(n)).find(|w| (w.pod && !w.pod_terminating) || w.claim) {
        return Step::DeletePod { name: w.name.clone(), claim: true };
    }
    let Some(w) = work(&r.survivor).filter(|w| w.claim) else {
        return Step::Degraded { reason: format!("recovering: the survivor {}'s claim is gone", r.survivor) };
    };
    if w.pod_terminating {
        return wait(format!("recovering: {}'s pod terminating", r.survivor));
    }
    let alone = o.members.as_ref().is_some_and(|ms| ms.len() == 1 && ms[0].name == r.survivor && ms[0].healthy);
    if !r.restarting {
        return match () {
            _ if !w.pod => Step::CreateForcedPod { name: r.survivor.clone() },
            _ if !w.forced => Step::DeletePod { name: r.survivor.clone(), claim: false },
            _ if alone => Step::Restart { name: r.survivor.clone() },
            _ => wait(format!("recovering: {} starting as a one-member cluster", r.survivor)),
        };
    }
    match () {
        _ if !w.pod => Step::CreatePod { name: r.survivor.clone() },
        _ if w.forced => Step::DeletePod { name: r.survivor.clone(), claim: false },
        // The lost members' pods gone for good first: a new member may take a lost one's name.
        _ if r.lost.iter().any(|n| work(n).is_some_and(|w| w.pod)) => {
            wait("recovering: lost members' pods terminating")
        }
        _ if alone => Step::FinishRecovery { survivor: r.survivor.clone() },
        _ => wait(format!("recovering: {} restarting without --force-new-cluster", r.survivor)),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
