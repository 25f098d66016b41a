//! One etcdctl 3.4 session, every KV command and flag, against Debian's etcd 3.4 and against
//! cairn: outputs must match step for step (ids aside).

use cairn_e2e::script::assert_same_as_etcd;

#[test]
fn kv_commands_answer_as_etcd_does() {
    assert_same_as_etcd(include_str!("../scripts/kv.txt"));
}
