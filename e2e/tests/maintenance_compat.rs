//! Maintenance commands of etcdctl 3.4 against Debian's etcd 3.4 and against cairn: outputs
//! must match step for step (ids and endpoints aside).

use cairn_e2e::script::assert_same_as_etcd;

#[test]
fn hashkv_answers_as_etcd_does() {
    assert_same_as_etcd(include_str!("../scripts/hashkv.txt"));
}
