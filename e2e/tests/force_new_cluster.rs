//! `--force-new-cluster`, with etcd 3.4 as the reference: a three-member cluster loses every
//! member (SIGKILL); one restarts with the flag and serves alone, with the same keys,
//! revisions, lease and cluster id; a member is then added back as a learner, catches up and
//! is promoted. The two transcripts must match once ids and ports are masked.

use cairn_e2e::harness::{free_port, Kind, Member};
use cairn_e2e::transcript::{ctl, ctl_until, normalize};
use regex::Regex;
use std::time::Duration;

fn cluster_id(m: &Member) -> String {
    let status = ctl(m, &["endpoint", "status", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(status.trim()).unwrap_or_else(|_| panic!("{status}"));
    v[0]["Status"]["header"]["cluster_id"].to_string()
}

fn recovery(kind: Kind) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut ms = Member::start_cluster(kind, dir.path(), 3, &[]);
    let mut out = String::new();
    for (k, v) in [("d/a", "1"), ("d/b", "2"), ("d/a", "3")] {
        out += &ctl(&ms[0], &["put", k, v]);
    }
    let granted = ctl(&ms[0], &["lease", "grant", "600"]);
    let lease = granted.split_whitespace().nth(1).expect("lease <id> granted").to_string();
    out += &ctl(&ms[0], &["put", "d/leased", "x", "--lease", &lease]);
    // What a member knows to be committed reaches its disk with the entries after it: the
    // last write may be lost with the majority, on etcd as on Cairn (its survivor had not yet
    // learnt that it was committed). So one more write, outside what is compared.
    out += &ctl(&ms[0], &["put", "last", "1"]);
    let cluster = cluster_id(&ms[0]);

    // Every member lost at once; one comes back alone with the flag.
    for m in ms.iter_mut() {
        m.kill9();
    }
    let mut survivor = ms.remove(0);
    survivor.restart_with(&["--force-new-cluster"]);
    out += &normalize(&ctl(&survivor, &["member", "list"]));
    out += &ctl(&survivor, &["get", "d/", "--prefix"]);
    out += &ctl(&survivor, &["get", "d/a", "--rev", "2"]);
    out += &normalize(&ctl(&survivor, &["lease", "timetolive", &lease, "--keys"]));
    out += &ctl(&survivor, &["put", "d/after", "4"]);
    assert_eq!(cluster_id(&survivor), cluster, "{kind:?}: the cluster id stays");

    // Grown back: a new member joins as a learner, catches up and is promoted.
    let ports = (free_port(), free_port());
    let peer = format!("--peer-urls=http://127.0.0.1:{}", ports.1);
    let added = ctl(&survivor, &["member", "add", "m3", &peer, "--learner"]);
    out += &normalize(&added);
    let id = Regex::new(r"Member +([0-9a-f]+) added").unwrap().captures(&added).expect("an id")[1].to_string();
    let learner = Member::join(kind, dir.path(), "m3", ports, std::slice::from_ref(&survivor));
    out += &ctl_until(&learner, &["get", "d/after", "--consistency=s"], "d/after\n4", Duration::from_secs(30));
    out += &normalize(&ctl_until(&survivor, &["member", "promote", &id], "promoted", Duration::from_secs(30)));
    out += &ctl(&learner, &["put", "on-new-member", "5"]);
    out += &ctl(&survivor, &["get", "on-new-member"]);
    out
}

#[test]
fn a_lost_majority_is_recovered_from_one_member_as_on_etcd() {
    let etcd = recovery(Kind::Etcd);
    assert!(etcd.contains("d/a\n3\nd/b\n2\nd/leased\nx"), "the reference run did not do what it should:\n{etcd}");
    assert!(etcd.contains("promoted in cluster"), "the reference run did not do what it should:\n{etcd}");
    let cairn = recovery(Kind::Cairn);
    assert_eq!(cairn, etcd);
}

#[test]
fn a_learner_refuses_to_force_a_new_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let ms = Member::start_cluster(Kind::Cairn, dir.path(), 1, &[]);
    let ports = (free_port(), free_port());
    let peer = format!("--peer-urls=http://127.0.0.1:{}", ports.1);
    assert!(ctl(&ms[0], &["member", "add", "m1", &peer, "--learner"]).contains("added"));
    assert!(ctl(&ms[0], &["put", "k", "v"]).contains("OK"));
    let mut learner = Member::join(Kind::Cairn, dir.path(), "m1", ports, &ms);
    ctl_until(&learner, &["get", "k", "--consistency=s"], "k\nv", Duration::from_secs(30));
    learner.relaunch_with(&["--force-new-cluster"]);
    let status = learner.exit_status(Duration::from_secs(30)).expect("the learner exits");
    assert!(!status.success());
    let log = learner.log_text();
    assert!(log.contains("--force-new-cluster: this member is a learner"), "{log}");
    // Refused before anything was written: it still starts as the learner it was.
    learner.relaunch();
    learner.wait_ready(Duration::from_secs(30));
    assert!(ctl(&ms[0], &["member", "list"]).contains("m1, http"), "still a member");
}
