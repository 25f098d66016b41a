//! --experimental-initial-corrupt-check, as etcd does it: before a restarting member serves,
//! its HashKV at its current revision is compared with each peer's at the same revision; a
//! peer that answers a different hash with the same compact revision means the data differ,
//! and the member refuses to start. Peers that cannot answer (down, compacted past the
//! revision, behind it) are reported and do not stop the start.

use super::MemberError;
use crate::membership::Membership;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::proto::etcdserverpb::HashKvRequest;
use crate::storage::mvcc::MvccStore;
use std::time::Duration;

/// How long a peer has to answer.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn check(
    mvcc: &MvccStore,
    membership: &Membership,
    dial: &cairn_api::dial::DialOptions,
) -> Result<(), MemberError> {
    let me = membership.me();
    let mine = mvcc.hash_kv(0)?;
    let mut mismatches = 0;
    for peer in membership.list().into_iter().filter(|m| m.id != me && !m.removed) {
        let peer_id = format!("{:x}", peer.id);
        let ask = async {
            for url in &peer.client_urls {
                let Ok(ch) = cairn_api::dial::connect(url, dial).await else { continue };
                let req = HashKvRequest { revision: mine.revision };
                return Some(MaintenanceClient::new(ch).hash_kv(req).await.map(|r| r.into_inner()));
            }
            None
        };
        match tokio::time::timeout(PEER_TIMEOUT, ask).await {
            Ok(Some(Ok(theirs))) if theirs.hash != mine.hash => {
                if theirs.compact_revision == mine.compact_revision {
                    tracing::error!(
                        "{me:x}'s hash {} != {peer_id}'s hash {} (revision {}, peer revision {}, compact revision {})",
                        mine.hash,
                        theirs.hash,
                        mine.revision,
                        theirs.header.map_or(0, |h| h.revision),
                        mine.compact_revision
                    );
                    mismatches += 1;
                } else {
                    tracing::warn!(
                        "{me:x} cannot check hash of peer({peer_id}): peer has a different compact revision {} (revision:{})",
                        theirs.compact_revision,
                        mine.revision
                    );
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => {
                tracing::warn!("{me:x} cannot check the hash of peer({peer_id}): {}", e.message())
            }
            Ok(None) | Err(_) => tracing::warn!("{me:x} failed to get the hash from peer({peer_id}): unreachable"),
        }
    }
    if mismatches > 0 {
        return Err(MemberError::Refused(format!("{me:x} found data inconsistency with peers")));
    }
    tracing::info!("{me:x} succeeded on initial corruption checking: no corruption");
    Ok(())
}
