//! The member's background tasks, each ending when the member stops: publishing its name and
//! client URLs to the cluster, following membership changes, and (on the leader) expiring
//! leases.

use crate::apply::Origin;
use crate::grpc::Common;
use crate::lease::Lessor;
use crate::proto::cairnpb::internal_request::Request;
use crate::proto::etcdserverpb::LeaseRevokeRequest;
use crate::transport::Transport;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// etcd's "publish": once raft runs, this member's name and client URLs are replicated to
/// every member's list. Done at every start, as etcd does (the record may be there already),
/// so that "published" is logged once the member is part of the cluster: tools wait for that
/// line. Retried until it is through (or the server stops).
pub async fn publish(ctx: Arc<Common>, name: String, client_urls: Vec<String>) {
    use crate::proto::cairnpb::MemberAttrs;
    let me = ctx.member_id;
    loop {
        let attrs = MemberAttrs { id: me, name: name.clone(), client_urls: client_urls.clone() };
        let done = tokio::select! {
            r = ctx.raft.propose(&Origin::Member, Request::MemberAttrs(attrs)) => r.is_ok(),
            _ = ctx.stopped() => return,
        };
        if done {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = ctx.stopped() => return,
        }
    }
    // etcd's wording (capnslog), which tools match on.
    tracing::info!("published {{Name:{name} ClientURLs:[{}]}} to cluster {:x}", client_urls.join(" "), ctx.cluster_id);
    // Cairn has no cluster version to negotiate: the API level it serves is enabled from the
    // start, and is reported once the member is part of the cluster, where etcd reports it.
    tracing::info!("enabled capabilities for version {}", crate::version::CLUSTER_VERSION_MINOR);
}

/// Keeps the transport's peers equal to the member list, and stops the server once this
/// member is removed from the cluster (after `linger`, so the entry that removed it can
/// reach the others if it was the leader; etcd waits ten ticks too).
pub async fn follow_members(
    ctx: Arc<Common>,
    transport: Arc<Transport>,
    stop: Arc<watch::Sender<bool>>,
    linger: Duration,
) {
    let mut changes = ctx.membership.subscribe();
    // Synced once more after subscribing: a change applied since startup's sync is not lost.
    transport.sync_peers();
    while !ctx.membership.is_removed(ctx.member_id) {
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = transport.removed() => break,
            _ = ctx.stopped() => return,
        }
        transport.sync_peers();
    }
    tracing::warn!("{}; stopping", crate::transport::REMOVED);
    tokio::time::sleep(linger).await;
    let _ = stop.send(true);
}

/// The leader's side of lease expiry: on becoming leader every deadline restarts; each lease
/// past its deadline is revoked through raft. Ends when the server stops.
pub async fn expire_leases(ctx: Arc<Common>, lessor: Arc<Lessor>, election_timeout: Duration) {
    let mut primary = false;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.stopped() => return,
        }
        let leader = ctx.raft.status().is_leader();
        if leader != primary {
            primary = leader;
            if leader {
                lessor.promote(election_timeout);
            } else {
                lessor.demote();
            }
        }
        if !primary {
            continue;
        }
        for id in lessor.expired() {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let revoke = Request::LeaseRevoke(LeaseRevokeRequest { id });
                match ctx.propose::<crate::proto::etcdserverpb::LeaseRevokeResponse>(&Origin::Member, revoke).await {
                    Ok(_) => {
                        crate::metrics::get().lease.expired.inc();
                    }
                    Err(e) => tracing::debug!(lease = id, error = %e, "revoking an expired lease failed; will retry"),
                }
            });
        }
    }
}
