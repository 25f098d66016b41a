//! Requests only the leader can answer (lease keep-alives and remaining TTLs: the leader's
//! lessor alone keeps expiry) are forwarded by a follower to the leader's client URL, as
//! etcd's followers forward them.

use super::Common;
use crate::error::EtcdError;
use tonic::transport::Channel;

/// A connection to the current leader, through the client URLs it published.
pub async fn leader_channel(ctx: &Common) -> Result<Channel, EtcdError> {
    let leader = ctx.raft.status().leader();
    let member = ctx.membership.get(leader).ok_or(EtcdError::NoLeader)?;
    for url in &member.client_urls {
        let opts =
            cairn_api::dial::DialOptions { connect_timeout: std::time::Duration::from_secs(1), ..ctx.dial.clone() };
        if let Ok(ch) = cairn_api::dial::connect(url, &opts).await {
            return Ok(ch);
        }
    }
    Err(EtcdError::NotLeader)
}

/// Marks a forwarded request: a member that is no longer the leader answers it with an error
/// instead of forwarding it again (no ping-pong during an election).
pub const FORWARDED: &str = "cairn-forwarded";

pub fn was_forwarded<T>(r: &tonic::Request<T>) -> bool {
    r.metadata().contains_key(FORWARDED)
}

/// The leader's refusal of a forwarded request, passed on to the client as it came.
pub fn leader_said(s: tonic::Status) -> EtcdError {
    EtcdError::Forwarded { code: s.code() as i32, message: s.message().to_string() }
}

pub fn mark<T>(mut r: tonic::Request<T>) -> tonic::Request<T> {
    r.metadata_mut().insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    r
}
