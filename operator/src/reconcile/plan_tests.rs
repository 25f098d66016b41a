use super::*;

const C: &str = "demo";

fn name(i: usize) -> String {
    member_name(C, i)
}

fn voter(i: usize) -> Member {
    Member {
        id: 100 + i as u64,
        name: name(i),
        learner: false,
        healthy: true,
        leader: i == 0,
        reachable: true,
        applied: 50,
    }
}

fn learner(i: usize, healthy: bool) -> Member {
    Member { learner: true, healthy, leader: false, ..voter(i) }
}

fn running(i: usize) -> Workload {
    Workload { name: name(i), pod: true, pod_ready: true, claim: true, ..Default::default() }
}

fn at(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// `n` healthy voters (member 0 leads), each with its pod and claim.
fn cluster(n: usize, replicas: usize) -> Observed {
    Observed {
        cluster: C.into(),
        replicas,
        members: Some((0..n).map(voter).collect()),
        local: None,
        workloads: (0..n).map(running).collect(),
        change: None,
        recovery: None,
        restore: None,
        founded: true,
        backup: false,
        recovery_mode: RecoveryMode::Automatic,
        unreachable_for: at(300),
        progress_deadline: at(300),
        replace_after: at(120),
        now: at(1000),
    }
}

fn members(o: &mut Observed) -> &mut Vec<Member> {
    o.members.as_mut().unwrap()
}

fn waits(s: &Step) -> bool {
    matches!(s, Step::Wait { .. })
}

fn degraded(s: &Step, why: &str) -> bool {
    matches!(s, Step::Degraded { reason } if reason.contains(why))
}

#[test]
fn a_new_cluster_starts_with_all_its_founders() {
    let o = Observed { members: None, workloads: vec![], founded: false, ..cluster(0, 3) };
    assert_eq!(plan(&o), Step::Bootstrap { names: vec![name(0), name(1), name(2)] });
}

#[test]
fn a_cluster_that_served_is_never_founded_again_empty() {
    // Every pod and claim gone: rebuilt from the backup, or reported; never Bootstrap.
    let mut o = Observed { members: None, workloads: vec![], ..cluster(0, 3) };
    assert!(degraded(&plan(&o), "spec.backup is not set: there is nothing to rebuild from"));
    o.backup = true;
    assert_eq!(plan(&o), Step::Rebuild { lost: vec![] });
    o.recovery_mode = RecoveryMode::Manual;
    assert!(degraded(&plan(&o), "recovery is Manual: Automatic would rebuild every member from the newest backup"));
    // A pod or a claim left: not every member's data is known to be gone.
    let mut o = Observed { members: None, backup: true, ..cluster(3, 3) };
    for w in o.workloads.iter_mut() {
        w.pod = false;
    }
    o.workloads[2].claim = false;
    assert_eq!(plan(&o), Step::CreatePod { name: name(0) });
}

#[test]
fn while_nobody_answers_pods_come_back_on_their_claims_and_nothing_else_happens() {
    let mut o = Observed { members: None, ..cluster(3, 3) };
    assert!(waits(&plan(&o)));
    o.workloads[1].pod = false;
    assert_eq!(plan(&o), Step::CreatePod { name: name(1) });
}

#[test]
fn a_healthy_cluster_of_the_asked_size_is_done() {
    assert_eq!(plan(&cluster(3, 3)), Step::Done);
    assert_eq!(plan(&cluster(1, 1)), Step::Done);
}

#[test]
fn scaling_up_adds_one_learner_then_its_pod_then_promotes_it() {
    let mut o = cluster(3, 5);
    assert_eq!(plan(&o), Step::AddLearner { name: name(3) });
    o.change = Some(Change::Adding { name: name(3), since: at(1000) });
    // Recorded, but the MemberAdd did not happen (a crash between the two): again.
    assert_eq!(plan(&o), Step::AddLearner { name: name(3) });
    members(&mut o).push(learner(3, false));
    assert_eq!(plan(&o), Step::CreatePod { name: name(3) });
    o.workloads.push(running(3));
    assert!(waits(&plan(&o)), "catching up");
    o.now = at(1000) + PROMOTE_DEADLINE + at(1);
    assert!(degraded(&plan(&o), "has not caught up"));
    members(&mut o)[3].healthy = true;
    assert_eq!(plan(&o), Step::Promote { id: 103, name: name(3) });
    members(&mut o)[3].learner = false;
    assert_eq!(plan(&o), Step::Finish);
    o.change = None;
    assert_eq!(plan(&o), Step::AddLearner { name: name(4) }, "then the next one");
}

#[test]
fn no_member_is_added_while_one_is_unhealthy() {
    let mut o = cluster(3, 5);
    members(&mut o)[2].healthy = false;
    assert!(waits(&plan(&o)));
}

#[test]
fn a_learner_left_without_its_record_is_promoted_when_ready() {
    let mut o = cluster(3, 3);
    members(&mut o).push(learner(3, false));
    o.workloads.push(running(3));
    assert!(waits(&plan(&o)));
    members(&mut o)[3].healthy = true;
    assert_eq!(plan(&o), Step::Promote { id: 103, name: name(3) });
}

#[test]
fn scaling_down_removes_the_highest_member_then_its_pod_and_claim() {
    let mut o = cluster(5, 3);
    assert_eq!(plan(&o), Step::Remove { id: 104, name: name(4) });
    o.change = Some(Change::Removing { name: name(4) });
    assert_eq!(plan(&o), Step::Remove { id: 104, name: name(4) }, "recorded, not done: again");
    members(&mut o).pop();
    assert_eq!(plan(&o), Step::DeletePod { name: name(4), claim: true });
    o.workloads.pop();
    assert_eq!(plan(&o), Step::Finish);
    o.change = None;
    assert_eq!(plan(&o), Step::Remove { id: 103, name: name(3) });
}

#[test]
fn leadership_moves_before_its_member_is_removed() {
    let mut o = cluster(5, 3);
    members(&mut o)[0].leader = false;
    members(&mut o)[4].leader = true;
    assert_eq!(plan(&o), Step::MoveLeader { from: 104, to: 100 });
}

#[test]
fn no_removal_that_would_lose_quorum() {
    // 5 voters, 2 unhealthy: removing a healthy one leaves 2 healthy of 4 (quorum 3).
    let mut o = cluster(5, 3);
    members(&mut o)[1].healthy = false;
    members(&mut o)[2].healthy = false;
    assert!(degraded(&plan(&o), "would lose quorum"));
    // Removing an unhealthy one is fine: 3 healthy of 4.
    members(&mut o)[1].healthy = true;
    members(&mut o)[4].healthy = false;
    members(&mut o)[2].healthy = true;
    assert_eq!(plan(&o), Step::Remove { id: 104, name: name(4) });
}

#[test]
fn without_quorum_nothing_changes_membership() {
    let mut o = cluster(3, 5);
    members(&mut o)[1].healthy = false;
    members(&mut o)[2].healthy = false;
    assert!(degraded(&plan(&o), "no quorum"));
    o.replicas = 1;
    assert!(degraded(&plan(&o), "no quorum"));
}

#[test]
fn a_deleted_pod_comes_back_on_its_claim() {
    let mut o = cluster(3, 3);
    o.workloads[1].pod = false;
    assert_eq!(plan(&o), Step::CreatePod { name: name(1) });
    o.workloads[1].pod = true;
    o.workloads[1].pod_terminating = true;
    assert!(waits(&plan(&o)), "the old pod must be gone first");
}

#[test]
fn a_member_whose_data_is_gone_is_removed_and_added_again_as_a_learner() {
    let mut o = cluster(3, 3);
    members(&mut o)[1].healthy = false;
    o.workloads.retain(|w| w.name != name(1));
    assert_eq!(plan(&o), Step::Remove { id: 101, name: name(1) });
    members(&mut o).retain(|m| m.name != name(1));
    assert_eq!(plan(&o), Step::AddLearner { name: name(1) }, "the free ordinal, again");
}

#[test]
fn a_lost_leader_hands_over_first() {
    let mut o = cluster(3, 3);
    o.workloads.retain(|w| w.name != name(0));
    assert_eq!(plan(&o), Step::MoveLeader { from: 100, to: 101 });
}

/// Members 1.. of `n` gone from view: unhealthy, unreachable; `data` says whether they kept
/// their claims. Member 0 answers, without a leader.
fn majority_lost(n: usize, data: bool) -> Observed {
    let mut o = cluster(n, n);
    for m in members(&mut o).iter_mut() {
        (m.healthy, m.leader) = (false, false);
    }
    for m in members(&mut o).iter_mut().skip(1) {
        m.reachable = false;
    }
    if !data {
        o.workloads.retain(|w| w.name == name(0));
    }
    o
}

#[test]
fn a_majority_whose_data_is_gone_is_recovered_from_a_survivor() {
    let mut o = majority_lost(3, false);
    assert_eq!(plan(&o), Step::Recover { survivor: name(0), lost: vec![name(1), name(2)] });
    // Without a leader no member answers for the cluster: the survivor's own list decides.
    (o.local, o.members) = (o.members.take(), None);
    assert_eq!(plan(&o), Step::Recover { survivor: name(0), lost: vec![name(1), name(2)] });
    o.local = None;
    assert!(waits(&plan(&o)));
    // Claims being deleted while their pods still run (and may still vote): not yet.
    let mut o = majority_lost(3, false);
    o.workloads.push(Workload { name: name(1), pod: true, pod_terminating: true, ..Default::default() });
    assert!(waits(&plan(&o)), "{:?}", plan(&o));
}

#[test]
fn an_unreachable_majority_counts_as_lost_only_after_unreachable_for() {
    let mut o = majority_lost(3, true);
    for w in o.workloads.iter_mut().skip(1) {
        w.pod_ready = false;
        w.unhealthy_for = Some(at(299));
    }
    assert!(degraded(&plan(&o), "no quorum"));
    o.workloads[2].unhealthy_for = Some(at(300));
    assert!(degraded(&plan(&o), "no quorum"), "one of two is not long enough: 2 of 3 may still form");
    o.workloads[1].unhealthy_for = Some(at(300));
    assert_eq!(plan(&o), Step::Recover { survivor: name(0), lost: vec![name(1), name(2)] });
}

#[test]
fn never_while_a_majority_still_answers() {
    // No leader, member 2's data gone, but 0 and 1 answer: they can still elect.
    let mut o = majority_lost(3, true);
    members(&mut o)[1].reachable = true;
    o.workloads.retain(|w| w.name != name(2));
    assert!(degraded(&plan(&o), "no quorum"));
}

#[test]
fn the_survivor_is_the_member_that_applied_most() {
    let mut o = majority_lost(5, false);
    members(&mut o)[1].reachable = true;
    members(&mut o)[1].applied = 60;
    o.workloads.push(running(1));
    assert_eq!(plan(&o), Step::Recover { survivor: name(1), lost: vec![name(0), name(2), name(3), name(4)] });
}

#[test]
fn manual_recovery_only_says_what_it_would_do_and_no_survivor_means_a_backup() {
    let mut o = majority_lost(3, false);
    o.recovery_mode = RecoveryMode::Manual;
    assert!(degraded(&plan(&o), "recovery is Manual: Automatic would restart demo-0 (applied index 50"));
    let mut o = majority_lost(3, false);
    members(&mut o)[0].reachable = false;
    assert!(degraded(&plan(&o), "demo-0 still have their data but do not answer: waiting"));
    o.workloads.clear();
    assert!(degraded(&plan(&o), "nothing to rebuild from"));
    o.backup = true;
    assert_eq!(plan(&o), Step::Rebuild { lost: vec![name(0), name(1), name(2)] });
}

fn restoring(starting: bool) -> Observed {
    let mut o = cluster(3, 3);
    o.restore = Some(Restoring { members: vec![name(0), name(1), name(2)], starting });
    o
}

#[test]
fn a_restore_stops_every_member_before_any_is_restored() {
    let mut o = restoring(false);
    o.workloads.push(running(4));
    assert_eq!(plan(&o), Step::DeletePod { name: name(0), claim: false }, "even while quorum holds");
    for w in o.workloads.iter_mut().take(3) {
        w.pod_terminating = true;
    }
    assert_eq!(plan(&o), Step::DeletePod { name: name(4), claim: true }, "no founder: its claim goes too");
    o.workloads[3].pod_terminating = true;
    assert!(waits(&plan(&o)), "nothing starts while a pod still terminates");
    o.members = None;
    for w in o.workloads.iter_mut() {
        (w.pod, w.pod_terminating) = (false, false);
    }
    assert_eq!(plan(&o), Step::DeletePod { name: name(4), claim: true });
    o.workloads.pop();
    assert_eq!(plan(&o), Step::StartRestore);
}

#[test]
fn a_restore_starts_every_founder_from_the_backup_then_completes() {
    let mut o = Observed { members: None, ..restoring(true) };
    o.workloads = vec![Workload { name: name(0), claim: true, ..Default::default() }];
    assert_eq!(plan(&o), Step::CreateRestoredPod { name: name(0) });
    o.workloads = (0..3).map(running).collect();
    assert!(waits(&plan(&o)));
    o.members = Some(vec![voter(0), voter(1), Member { healthy: false, ..voter(2) }]);
    assert!(waits(&plan(&o)), "done only when every founder serves");
    members(&mut o)[2].healthy = true;
    assert_eq!(plan(&o), Step::FinishRestore);
}

#[test]
fn a_recovery_forces_the_survivor_once_then_restarts_it_plainly() {
    let mut o = majority_lost(3, true);
    o.recovery = Some(Recovery { survivor: name(0), lost: vec![name(1), name(2)], restarting: false });
    assert_eq!(plan(&o), Step::DeletePod { name: name(1), claim: true }, "the lost go first");
    o.workloads.retain(|w| w.name == name(0));
    assert_eq!(plan(&o), Step::DeletePod { name: name(0), claim: false });
    o.workloads[0].pod = false;
    o.members = None;
    assert_eq!(plan(&o), Step::CreateForcedPod { name: name(0) });
    (o.workloads[0].pod, o.workloads[0].forced) = (true, true);
    assert!(waits(&plan(&o)));
    o.members = Some(vec![voter(0)]);
    assert_eq!(plan(&o), Step::Restart { name: name(0) });
    o.recovery.as_mut().unwrap().restarting = true;
    assert_eq!(plan(&o), Step::DeletePod { name: name(0), claim: false }, "not forced twice");
    (o.workloads[0].pod, o.workloads[0].forced, o.members) = (false, false, None);
    assert_eq!(plan(&o), Step::CreatePod { name: name(0) });
    o.workloads[0].pod = true;
    assert!(waits(&plan(&o)));
    o.members = Some(vec![voter(0)]);
    assert_eq!(plan(&o), Step::FinishRecovery { survivor: name(0) });
}

#[test]
fn a_member_unhealthy_for_long_is_replaced_but_not_before() {
    let mut o = cluster(3, 3);
    members(&mut o)[2].healthy = false;
    o.workloads[2].unhealthy_for = Some(at(119));
    assert!(degraded(&plan(&o), "2 of 3 members healthy"));
    o.workloads[2].unhealthy_for = Some(at(120));
    assert_eq!(plan(&o), Step::Remove { id: 102, name: name(2) });
}

#[test]
fn pods_and_claims_of_no_member_are_deleted() {
    let mut o = cluster(3, 3);
    o.workloads.push(Workload { name: name(7), claim: true, ..Default::default() });
    assert_eq!(plan(&o), Step::DeletePod { name: name(7), claim: true });
}

#[test]
fn names_and_ordinals() {
    assert_eq!(member_name("demo", 4), "demo-4");
    assert_eq!(ordinal("demo", "demo-4"), Some(4));
    assert_eq!(ordinal("demo", "demo-x"), None);
    assert_eq!(ordinal("demo", "other-1"), None);
}

fn outdated(mut o: Observed, members: &[usize]) -> Observed {
    for i in members {
        o.workloads[*i].outdated = true;
    }
    o
}

#[test]
fn a_roll_updates_followers_first_and_the_leader_last_after_moving_leadership() {
    let o = outdated(cluster(3, 3), &[0, 1, 2]);
    assert_eq!(plan(&o), Step::Update { name: name(1) }, "followers first, lowest ordinal first");
    let o = outdated(cluster(3, 3), &[0, 2]);
    assert_eq!(plan(&o), Step::Update { name: name(2) });
    let o = outdated(cluster(3, 3), &[0]);
    assert_eq!(plan(&o), Step::MoveLeader { from: 100, to: 101 }, "to an updated member");
    let mut o = outdated(cluster(3, 3), &[0, 1]);
    o.workloads[1].outdated = false;
    o.workloads[2].outdated = true;
    assert_eq!(plan(&o), Step::Update { name: name(2) });
    let o = outdated(cluster(1, 1), &[0]);
    assert_eq!(plan(&o), Step::Update { name: name(0) }, "one member: nobody to hand leadership to");
}

#[test]
fn a_roll_waits_for_a_whole_quorum_and_never_runs_beside_another_change() {
    let mut o = outdated(cluster(3, 3), &[1, 2]);
    members(&mut o)[2].healthy = false;
    assert!(degraded(&plan(&o), "2 of 3 members healthy"), "nothing while a member is unhealthy");
    let o = outdated(cluster(3, 5), &[1]);
    assert_eq!(plan(&o), Step::AddLearner { name: name(3) }, "scaling first");
    let mut o = outdated(cluster(3, 3), &[1, 2]);
    o.change = Some(Change::Updating { name: name(1), since: at(990) });
    o.workloads[1].pod = false;
    assert_eq!(plan(&o), Step::CreatePod { name: name(1) }, "one member at a time: the one in progress");
}

#[test]
fn an_updated_member_is_waited_for_until_healthy_and_caught_up() {
    let mut o = outdated(cluster(3, 3), &[2]);
    o.change = Some(Change::Updating { name: name(1), since: at(990) });
    o.workloads[1].pod_terminating = true;
    assert!(waits(&plan(&o)));
    o.workloads[1].pod_terminating = false;
    members(&mut o)[1].healthy = false;
    assert!(waits(&plan(&o)), "starting");
    members(&mut o)[1].healthy = true;
    members(&mut o)[0].applied = 50 + CAUGHT_UP + 1;
    assert!(waits(&plan(&o)), "behind the leader");
    members(&mut o)[0].applied = 50 + CAUGHT_UP;
    assert_eq!(plan(&o), Step::Finish);
}

#[test]
fn an_update_that_does_not_come_back_stalls_the_roll_until_the_spec_changes() {
    let mut o = outdated(cluster(3, 3), &[2]);
    o.change = Some(Change::Updating { name: name(1), since: at(800) });
    members(&mut o)[1].healthy = false;
    assert!(waits(&plan(&o)));
    o.now = at(1101);
    assert!(
        matches!(plan(&o), Step::Stalled { name: n, reason } if n == name(1) && reason.contains("roll stops here"))
    );
    o.workloads[1].outdated = true;
    assert_eq!(plan(&o), Step::Update { name: name(1) }, "a new spec: its pod is made again");
}
