//! Membership changes driven by etcdctl, with etcd 3.4 as the reference: a learner added,
//! refused while it has not caught up, started with --initial-cluster-state existing,
//! serving serializable reads only, promoted, then removed (and exiting); and the errors of
//! each command on the way.

use cairn_e2e::harness::{etcdctl, free_port, Kind, Member};
use cairn_e2e::transcript::{ctl, ctl_until, normalize};
use regex::Regex;
use std::time::{Duration, Instant};

fn member_list(m: &Member) -> String {
    let list = normalize(&ctl(m, &["member", "list"]));
    let mut lines: Vec<&str> = list.lines().filter(|l| !l.is_empty()).collect();
    lines.sort();
    lines.join("\n") + "\n"
}

fn new_id(add_output: &str) -> String {
    let re = Regex::new(r"Member +([0-9a-f]+) added").unwrap();
    re.captures(add_output).unwrap_or_else(|| panic!("no member id in {add_output:?}"))[1].to_string()
}

fn learner_lifecycle(kind: Kind) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut ms = Member::start_cluster(kind, dir.path(), 3, &[]);
    let mut out = String::new();
    out += &ctl(&ms[0], &["put", "before-join", "1"]);
    let ports = (free_port(), free_port());
    let peer = format!("--peer-urls=http://127.0.0.1:{}", ports.1);
    // etcd refuses changes until every member has been connected for 5 s ("unhealthy cluster").
    let added = ctl_until(&ms[0], &["member", "add", "m3", &peer, "--learner"], "added", Duration::from_secs(30));
    out += &normalize(&added);
    let id = new_id(&added);
    // Refusals while the learner has not started.
    let other_peer = format!("--peer-urls=http://127.0.0.1:{}", free_port());
    out += &ctl(&ms[1], &["member", "add", "m4", &other_peer, "--learner"]);
    out += &ctl(&ms[1], &["member", "add", "m4", &format!("--peer-urls={}", ms[2].peer_url)]);
    out += &ctl(&ms[1], &["member", "add", "m4", "--peer-urls=127.0.0.1:1"]);
    out += &ctl(&ms[2], &["member", "promote", &id]);
    out += &member_list(&ms[2]);

    let learner = Member::join(kind, dir.path(), "m3", ports, &ms);
    out += &ctl_until(&learner, &["get", "before-join", "--consistency=s"], "before-join\n1", Duration::from_secs(30));
    out += &ctl(&learner, &["put", "on-learner", "1"]);
    out += &ctl(&learner, &["get", "before-join"]);
    // Promotion goes through once the learner caught up; through a follower it reaches the leader.
    out += &normalize(&ctl_until(&ms[1], &["member", "promote", &id], "promoted", Duration::from_secs(30)));
    out += &ctl(&ms[0], &["member", "promote", &id]);
    out += &ctl(&learner, &["put", "on-promoted", "1"]);
    out += &ctl(&ms[0], &["get", "on-promoted"]);
    out += &member_list(&ms[0]);
    // Restarts take raft's configuration from the data dir: four voters now.
    let mut learner = learner;
    learner.restart();
    ms[1].restart();
    out += &ctl(&learner, &["put", "after-restart", "1"]);
    out += &ctl(&ms[1], &["get", "after-restart"]);

    let list = ctl(&ms[1], &["member", "list"]);
    let m1_id = list.lines().find(|l| l.contains(", started, m1,")).and_then(|l| l.split(',').next()).unwrap();
    out += &normalize(&ctl(&ms[0], &["member", "update", m1_id, &format!("--peer-urls={}", ms[1].peer_url)]));
    out += &ctl(&ms[0], &["member", "update", m1_id, &format!("--peer-urls={}", ms[2].peer_url)]);

    // Just restarted members count as connected after 5 s.
    out += &normalize(&ctl_until(&ms[0], &["member", "remove", &id], "removed", Duration::from_secs(30)));
    let exited = learner.wait_exit(Duration::from_secs(30));
    if !exited {
        eprintln!("{kind:?}: the removed member is still running:\n{}", learner.log_tail());
    }
    out += &format!("removed member exited: {exited}\n");
    // The removed member may have led: wait for the next leader (a linearizable read goes
    // through), so that removing it again meets the cluster, not its election.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctl(&ms[0], &["get", "no-such-key"]).contains("Error") {
        assert!(Instant::now() < deadline, "{kind:?}: no leader after the removal");
        std::thread::sleep(Duration::from_millis(100));
    }
    out += &ctl(&ms[0], &["member", "remove", &id]);
    out += &member_list(&ms[1]);
    out += &ctl(&ms[2], &["put", "after-remove", "1"]);
    out += &ctl(&ms[1], &["get", "", "--prefix", "--keys-only"]);
    ms.truncate(3);
    out
}

#[test]
fn a_learner_joins_is_promoted_and_removed_as_on_etcd() {
    let etcd = learner_lifecycle(Kind::Etcd);
    assert!(etcd.contains("promoted in cluster"), "the reference run did not do what it should:\n{etcd}");
    assert!(etcd.contains("removed member exited: true"), "the reference run did not do what it should:\n{etcd}");
    let cairn = learner_lifecycle(Kind::Cairn);
    assert_eq!(cairn, etcd);
}

/// `etcdctl move-leader` (it finds the leader through Status on every endpoint), to a voter,
/// to an unknown member, and with no leader among the endpoints given.
fn move_leader_transcript(kind: Kind) -> String {
    let dir = tempfile::tempdir().unwrap();
    let ms = Member::start_cluster(kind, dir.path(), 3, &[]);
    let all = ms.iter().map(|m| m.client_addr.as_str()).collect::<Vec<_>>().join(",");
    let run = |endpoints: &str, args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let o = etcdctl(endpoints, &args, None);
        format!("{}{}\n", o.stdout, o.errors)
    };
    let leader = ms.iter().position(|m| m.is_leader()).expect("a leader");
    let target = (leader + 1) % 3;
    let list = ctl(&ms[0], &["member", "list"]);
    let name = format!(", started, m{target},");
    let target_id = list.lines().find(|l| l.contains(&name)).and_then(|l| l.split(',').next()).unwrap();
    let mut out = normalize(&run(&all, &["move-leader", target_id]));
    let start = Instant::now();
    while !ms[target].is_leader() {
        assert!(start.elapsed() < Duration::from_secs(10), "{kind:?}: m{target} never became the leader");
        std::thread::sleep(Duration::from_millis(50));
    }
    out += &format!("the target leads: {}\n", ms[target].is_leader());
    out += &run(&all, &["move-leader", "1234"]);
    let follower = &ms[(target + 1) % 3];
    out +=
        &normalize(&run(&follower.client_addr, &["move-leader", target_id])).replace(&follower.client_addr, "ENDPOINT");
    out += &ctl(&ms[target], &["put", "after-move", "1"]);
    out
}

#[test]
fn leadership_moves_as_on_etcd() {
    let etcd = move_leader_transcript(Kind::Etcd);
    assert!(etcd.contains("Leadership transferred"), "the reference run did not do what it should:\n{etcd}");
    let cairn = move_leader_transcript(Kind::Cairn);
    assert_eq!(cairn, etcd);
}
