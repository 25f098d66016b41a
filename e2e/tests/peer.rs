//! The peer port refuses what does not belong: raft traffic of another cluster; and a
//! member joining with a member list that is not the cluster's is refused.

use cairn_api::proto::cairnpb::peer_client::PeerClient;
use cairn_api::proto::cairnpb::{MembersRequest, RaftFrame};
use cairn_e2e::harness::{cairn_bin, free_port, Kind, Member};
use std::process::Command;
use tonic::transport::Channel;

async fn peer_client(m: &Member) -> PeerClient<Channel> {
    PeerClient::new(Channel::from_shared(m.peer_url.clone()).unwrap().connect().await.unwrap())
}

#[tokio::test]
async fn raft_traffic_of_another_cluster_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &[]);
    let mut peer = peer_client(&m).await;
    let cluster = peer.members(MembersRequest {}).await.unwrap().into_inner();
    assert_eq!(cluster.members.len(), 1, "one member: {cluster:?}");
    let other = cluster.cluster_id ^ 1;
    let frame = RaftFrame { cluster_id: other, message: vec![], from: 7 };
    let err = peer.raft(tokio_stream::iter(vec![frame])).await.expect_err("a frame of another cluster");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(err.message(), format!("request cluster ID mismatch: local {:x}, remote {other:x}", cluster.cluster_id));
    // The member is unharmed: the right cluster's frames are taken.
    let frame = RaftFrame { cluster_id: cluster.cluster_id, message: vec![], from: 7 };
    peer.raft(tokio_stream::iter(vec![frame])).await.expect("a keep-alive of this cluster");
}

/// A member started with --initial-cluster-state existing refuses to join with a list that
/// is not the cluster's (no `member add` first), or with nobody to ask.
#[test]
fn joining_with_a_wrong_member_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, &dir.path().join("running"), &[]);
    let mine = format!("http://127.0.0.1:{}", free_port());
    let join = |initial: &str| {
        let out = Command::new(cairn_bin())
            .args(["--name", "new", "--data-dir", &dir.path().join("new").display().to_string()])
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{}", free_port())])
            .args(["--listen-peer-urls", &mine, "--initial-advertise-peer-urls", &mine])
            .args(["--initial-cluster-state", "existing", "--initial-cluster", initial])
            .output()
            .expect("run cairn");
        assert!(!out.status.success(), "joined with --initial-cluster {initial}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let extra = join(&format!("default={},new={mine}", m.peer_url));
    assert!(extra.contains("member count is unequal"), "{extra}");
    let nobody = join(&format!("new={mine}"));
    assert!(nobody.contains("cannot fetch cluster info from peer urls"), "{nobody}");
}
