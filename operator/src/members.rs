//! The etcd API of a cluster's members, as the operator uses it (through node's generated
//! client): the member list, each member's status, and the membership changes. Members are
//! reached at their pod IPs; every call has a deadline.

use cairn_api::proto::etcdserverpb::alarm_request::AlarmAction;
use cairn_api::proto::etcdserverpb::cluster_client::ClusterClient;
use cairn_api::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cairn_api::proto::etcdserverpb::{
    AlarmRequest, AlarmType, DefragmentRequest, MemberAddRequest, MemberListRequest, MemberPromoteRequest,
    MemberRemoveRequest, MoveLeaderRequest, StatusRequest,
};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

const DEADLINE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("{endpoint}: {message}")]
    Call { endpoint: String, code: tonic::Code, message: String },
    #[error("{endpoint}: {why}")]
    Connect { endpoint: String, why: String },
}

impl MemberError {
    /// MemberPromote's refusal of a learner still catching up.
    pub fn not_in_sync(&self) -> bool {
        matches!(self, MemberError::Call { message, .. } if message.contains("in sync with leader"))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ListedMember {
    pub id: u64,
    /// The member's name: from its peer URL's host (`<name>.<svc>...`), known before it starts.
    pub name: String,
    pub learner: bool,
    pub started: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MemberStatus {
    pub id: u64,
    pub leader: u64,
    pub learner: bool,
    pub revision: i64,
    pub db_size: i64,
    pub db_size_in_use: i64,
    pub applied: u64,
}

/// Defragmenting a large database takes far longer than any other call.
const DEFRAG_DEADLINE: Duration = Duration::from_secs(600);

async fn channel(endpoint: &str) -> Result<Channel, MemberError> {
    channel_with(endpoint, DEADLINE).await
}

async fn channel_with(endpoint: &str, deadline: Duration) -> Result<Channel, MemberError> {
    let connect = |why: String| MemberError::Connect { endpoint: endpoint.into(), why };
    Endpoint::from_shared(format!("http://{endpoint}"))
        .map_err(|e| connect(e.to_string()))?
        .connect_timeout(DEADLINE)
        .timeout(deadline)
        .connect()
        .await
        .map_err(|e| connect(e.to_string()))
}

fn call_error(endpoint: &str) -> impl Fn(tonic::Status) -> MemberError + '_ {
    move |s| MemberError::Call { endpoint: endpoint.into(), code: s.code(), message: s.message().into() }
}

/// The name a member's peer URL gives (its host's first label).
pub fn name_of(peer_urls: &[String]) -> String {
    let url = peer_urls.first().map(String::as_str).unwrap_or_default();
    let host = url.split("://").nth(1).unwrap_or(url);
    host.split(['.', ':']).next().unwrap_or_default().to_string()
}

pub async fn list(endpoint: &str) -> Result<Vec<ListedMember>, MemberError> {
    list_with(endpoint, true).await
}

/// The member list as `endpoint` has it, without asking the leader: all a member without one
/// can say, for deciding that quorum is lost, never for changing members.
pub async fn local_list(endpoint: &str) -> Result<Vec<ListedMember>, MemberError> {
    list_with(endpoint, false).await
}

async fn list_with(endpoint: &str, linearizable: bool) -> Result<Vec<ListedMember>, MemberError> {
    let mut c = ClusterClient::new(channel(endpoint).await?);
    let r = c.member_list(MemberListRequest { linearizable }).await.map_err(call_error(endpoint))?;
    Ok(r.into_inner()
        .members
        .into_iter()
        .map(|m| ListedMember {
            id: m.id,
            name: name_of(&m.peer_ur_ls),
            learner: m.is_learner,
            started: !m.name.is_empty(),
        })
        .collect())
}

pub async fn status(endpoint: &str) -> Result<MemberStatus, MemberError> {
    let mut c = MaintenanceClient::new(channel(endpoint).await?);
    let r = c.status(StatusRequest {}).await.map_err(call_error(endpoint))?.into_inner();
    let h = r.header.unwrap_or_default();
    Ok(MemberStatus {
        id: h.member_id,
        leader: r.leader,
        learner: r.is_learner,
        revision: h.revision,
        db_size: r.db_size,
        db_size_in_use: r.db_size_in_use,
        applied: r.raft_applied_index,
    })
}

/// Adds a learner with `peer_url`; returns its id.
pub async fn add_learner(endpoint: &str, peer_url: &str) -> Result<u64, MemberError> {
    let mut c = ClusterClient::new(channel(endpoint).await?);
    let req = MemberAddRequest { peer_ur_ls: vec![peer_url.into()], is_learner: true };
    let r = c.member_add(req).await.map_err(call_error(endpoint))?.into_inner();
    Ok(r.member.map(|m| m.id).unwrap_or_default())
}

pub async fn promote(endpoint: &str, id: u64) -> Result<(), MemberError> {
    let mut c = ClusterClient::new(channel(endpoint).await?);
    c.member_promote(MemberPromoteRequest { id }).await.map_err(call_error(endpoint))?;
    Ok(())
}

pub async fn remove(endpoint: &str, id: u64) -> Result<(), MemberError> {
    let mut c = ClusterClient::new(channel(endpoint).await?);
    c.member_remove(MemberRemoveRequest { id }).await.map_err(call_error(endpoint))?;
    Ok(())
}

/// Asks the leader (at `leader_endpoint`) to hand leadership to `to`.
pub async fn move_leader(leader_endpoint: &str, to: u64) -> Result<(), MemberError> {
    let mut c = MaintenanceClient::new(channel(leader_endpoint).await?);
    c.move_leader(MoveLeaderRequest { target_id: to }).await.map_err(call_error(leader_endpoint))?;
    Ok(())
}

/// Defragments one member's database (it serves nothing else meanwhile).
pub async fn defragment(endpoint: &str) -> Result<(), MemberError> {
    let mut c = MaintenanceClient::new(channel_with(endpoint, DEFRAG_DEADLINE).await?);
    c.defragment(DefragmentRequest {}).await.map_err(call_error(endpoint))?;
    Ok(())
}

/// Disarms every NOSPACE alarm of the cluster; returns how many there were.
pub async fn disarm_nospace(endpoint: &str) -> Result<usize, MemberError> {
    let mut c = MaintenanceClient::new(channel(endpoint).await?);
    let get = AlarmRequest { action: AlarmAction::Get as i32, member_id: 0, alarm: AlarmType::None as i32 };
    let alarms = c.alarm(get).await.map_err(call_error(endpoint))?.into_inner().alarms;
    let nospace: Vec<_> = alarms.into_iter().filter(|a| a.alarm == AlarmType::Nospace as i32).collect();
    for a in &nospace {
        let req = AlarmRequest { action: AlarmAction::Deactivate as i32, member_id: a.member_id, alarm: a.alarm };
        c.alarm(req).await.map_err(call_error(endpoint))?;
    }
    Ok(nospace.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_peer_urls() {
        assert_eq!(name_of(&["http://demo-3.demo-peer.ns.svc.cluster.local:2380".into()]), "demo-3");
        assert_eq!(name_of(&["http://10.0.0.1:2380".into()]), "10");
        assert_eq!(name_of(&[]), "");
    }
}
