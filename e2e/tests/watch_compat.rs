//! etcdctl 3.4's watch against Debian's etcd 3.4 and cairn, step for step.

use cairn_e2e::harness::{Kind, Member};
use cairn_e2e::script::compare;

#[test]
fn watch_commands_answer_as_etcd_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etcd")).unwrap();
    std::fs::create_dir_all(dir.path().join("cairn")).unwrap();
    let etcd = Member::start(Kind::Etcd, &dir.path().join("etcd"), &[]);
    let cairn = Member::start(Kind::Cairn, &dir.path().join("cairn"), &[]);
    let result = compare(include_str!("../scripts/watch.txt"), &etcd.client_addr, &cairn.client_addr);
    assert!(result.diffs.is_empty(), "{} step(s) differ:\n{}", result.diffs.len(), result.diffs.join("\n"));
    assert!(
        result.ok_steps * 10 >= result.steps * 6,
        "only {} of {} steps succeeded on etcd",
        result.ok_steps,
        result.steps
    );
}
