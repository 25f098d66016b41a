//! Joining a running cluster (--initial-cluster-state=existing), as etcd does: ask the other
//! members listed in --initial-cluster for the cluster, check that the flag lists exactly
//! its members, and take this member's id from the entry with our peer URLs (the id
//! MemberAdd chose).

use super::bootstrap::Joining;
use super::MemberError;
use crate::config::Config;
use crate::membership::same_urls;
use crate::proto::cairnpb::peer_client::PeerClient;
use crate::proto::cairnpb::{MemberRecord, MembersReply, MembersRequest};
use crate::storage::wal::Identity;
use std::time::Duration;

pub async fn fetch(cfg: &Config, dial: &cairn_api::dial::DialOptions) -> Result<Joining, MemberError> {
    let reply = ask_peers(cfg, dial).await?;
    let me = validate(cfg, &reply.members)?;
    Ok(Joining { identity: Identity { member_id: me, cluster_id: reply.cluster_id }, members: reply.members })
}

async fn ask_peers(cfg: &Config, dial: &cairn_api::dial::DialOptions) -> Result<MembersReply, MemberError> {
    let mut last_error = String::from("no other member in --initial-cluster");
    for (_, urls) in cfg.initial_cluster.iter().filter(|(_, urls)| *urls != cfg.initial_advertise_peer_urls) {
        for url in urls {
            let ask = async {
                let ch = crate::transport::connect_peer(url, dial).await.map_err(|e| e.to_string())?;
                let reply = PeerClient::new(ch).members(MembersRequest {}).await.map_err(|e| e.to_string())?;
                Ok::<_, String>(reply.into_inner())
            };
            match tokio::time::timeout(Duration::from_secs(2), ask).await {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(e)) => last_error = format!("{url}: {e}"),
                Err(_) => last_error = format!("{url}: timed out"),
            }
        }
    }
    Err(MemberError::Join(format!(
        "cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs (last error: {last_error})"
    )))
}

/// etcd's rule: --initial-cluster must list the cluster's members, no more, no fewer, each
/// with the peer URLs the cluster knows. Returns this member's id.
fn validate(cfg: &Config, members: &[MemberRecord]) -> Result<u64, MemberError> {
    if members.len() != cfg.initial_cluster.len() {
        return Err(MemberError::Join(format!(
            "error validating peerURLs: member count is unequal (--initial-cluster lists {}, the cluster has {})",
            cfg.initial_cluster.len(),
            members.len()
        )));
    }
    for m in members {
        if !cfg.initial_cluster.iter().any(|(_, urls)| same_urls(urls, &m.peer_urls)) {
            return Err(MemberError::Join(format!(
                "error validating peerURLs: PeerURLs: no match found for existing member ({:x}, {:?})",
                m.id, m.peer_urls
            )));
        }
    }
    // The lists match one to one and ours names this member (the flags were checked), so
    // the cluster has an entry with our URLs.
    match members.iter().find(|m| same_urls(&m.peer_urls, &cfg.initial_advertise_peer_urls)) {
        Some(m) => Ok(m.id),
        None => Err(MemberError::Join(format!(
            "this member's peer URLs {:?} are not in the cluster",
            cfg.initial_advertise_peer_urls
        ))),
    }
}
