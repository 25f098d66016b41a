//! etcdctl 3.4's watch against Debian's etcd 3.4 and cairn, step for step.

use cairn_e2e::script::assert_same_as_etcd;

#[test]
fn watch_commands_answer_as_etcd_does() {
    assert_same_as_etcd(include_str!("../scripts/watch.txt"));
}
