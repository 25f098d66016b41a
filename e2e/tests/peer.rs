//! The peer port refuses what does not belong: raft traffic of another cluster, and a member
//! removed from this one (which is told so, and stops).

use cairn_e2e::harness::{Kind, Member};
use cairn_node::proto::cairnpb::peer_client::PeerClient;
use cairn_node::proto::cairnpb::{MembersRequest, RaftFrame};
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
