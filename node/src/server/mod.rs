//! Wiring: open the data dir, start raft and the applier, serve gRPC and HTTP on every client
//! URL until `shutdown` resolves, then stop in order so the last applied entry is flushed.

mod authority;
mod bootstrap;
pub mod compactor;
mod http;
pub mod ids;
mod join;
mod oversize;
mod serve;

pub use http::{CLUSTER_VERSION, ETCD_API_VERSION};

use crate::apply::Applier;
use crate::config::{ClusterState, Config};
use crate::grpc::{
    cluster::ClusterService, election::ElectionService, kv::KvService, lease::LeaseService, lock::LockService,
    maintenance::MaintenanceService, watch::WatchService, ServerCtx,
};
use crate::lease::{LeaseIdGenerator, Lessor};
use crate::metrics::Metrics;
use crate::proto::cairnpb::internal_request::Request;
use crate::proto::cairnpb::peer_server::PeerServer;
use crate::proto::etcdserverpb::cluster_server::ClusterServer;
use crate::proto::etcdserverpb::kv_server::KvServer;
use crate::proto::etcdserverpb::lease_server::LeaseServer;
use crate::proto::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::proto::etcdserverpb::watch_server::WatchServer;
use crate::proto::etcdserverpb::LeaseRevokeRequest;
use crate::proto::v3electionpb::election_server::ElectionServer;
use crate::proto::v3lockpb::lock_server::LockServer;
use crate::raft::{self, NodeConfig};
use crate::storage::mvcc::watch::{run_catch_up, WatchHub};
use crate::transport::{PeerService, Transport};
use crate::wait::Waiters;
use anyhow::Context;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;

/// etcd's "publish": once raft runs, this member's name and client URLs are replicated to
/// every member's list. Retried until it is through (or the server stops).
async fn publish(ctx: Arc<ServerCtx>, name: String, client_urls: Vec<String>) {
    use crate::proto::cairnpb::MemberAttrs;
    let me = ctx.member_id;
    loop {
        let current = ctx.membership.get(me);
        if current.is_some_and(|m| m.name == name && m.client_urls == client_urls) {
            return;
        }
        let attrs = MemberAttrs { id: me, name: name.clone(), client_urls: client_urls.clone() };
        let done = tokio::select! {
            r = ctx.raft.propose(Request::MemberAttrs(attrs)) => r.is_ok(),
            _ = ctx.stopped() => return,
        };
        if !done {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = ctx.stopped() => return,
            }
        }
    }
}

/// etcd's allowance for gRPC framing on top of --max-request-bytes.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    // Before anything is written anywhere: a data dir Cairn did not make is refused as it is.
    let found = crate::storage::datadir::inspect(&cfg.data_dir)?;
    let joining =
        if found == crate::storage::datadir::Found::Empty && cfg.initial_cluster_state == ClusterState::Existing {
            Some(join::fetch(&cfg).await?)
        } else {
            None
        };
    let opened = bootstrap::open(&cfg, found, joining)?;
    let mut listeners = Vec::new();
    for addr in &cfg.listen_client {
        let l = TcpListener::bind(addr).await.with_context(|| format!("listen tcp {addr}"))?;
        listeners.push(l);
    }
    let mut peer_listeners = Vec::new();
    for addr in &cfg.listen_peer {
        let l = TcpListener::bind(addr).await.with_context(|| format!("listen tcp {addr}"))?;
        peer_listeners.push(l);
    }
    let metrics = Arc::new(Metrics::default());
    let waiters = Arc::new(Waiters::default());
    // etcd's minimum TTL: one and a half election timeouts, in whole seconds, rounded up.
    let election_timeout = cfg.heartbeat * cfg.election_ticks as u32;
    let min_ttl = (election_timeout.as_secs_f64() * 1.5).ceil() as i64;
    let lessor = Arc::new(Lessor::new(min_ttl));
    lessor.load(&opened.backend, opened.mvcc.leased_keys())?;
    let (applied_tx, applied_rx) = watch::channel(opened.applied);
    let hub = Arc::new(WatchHub::new(opened.mvcc.current_revision()));
    let alarms = Arc::new(crate::alarm::Alarms::load(&opened.backend)?);
    let applier = Applier::new(
        opened.mvcc.clone(),
        opened.membership.clone(),
        alarms.clone(),
        hub.clone(),
        lessor.clone(),
        waiters.clone(),
        applied_tx,
        opened.applied,
    );
    let node_cfg = NodeConfig {
        id: opened.identity.member_id,
        tick: cfg.heartbeat,
        election_ticks: cfg.election_ticks,
        heartbeat_ticks: 1,
        snapshot_count: cfg.snapshot_count,
        // etcd: 5s plus twice the election timeout.
        request_timeout: Duration::from_secs(5) + cfg.heartbeat * (2 * cfg.election_ticks as u32),
        max_request_bytes: cfg.max_request_bytes,
        wal_fsync: metrics.wal_fsync.clone(),
        snap_dir: opened.snap_dir.clone(),
    };
    let local_ip = cfg.listen_peer.first().map(|a| a.ip()).filter(|ip| !ip.is_unspecified());
    let transport = Transport::new(
        opened.identity.cluster_id,
        opened.membership.clone(),
        local_ip,
        tokio::runtime::Handle::current(),
    );
    transport.sync_peers();
    let parts = raft::Parts {
        storage: opened.storage,
        wal: opened.wal,
        backend: opened.backend.clone(),
        applier,
        applied: applied_rx,
        waiters,
        network: transport.clone(),
    };
    let started = raft::spawn(node_cfg, parts)?;
    transport.attach(started.handle.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = Arc::new(ServerCtx {
        cluster_id: opened.identity.cluster_id,
        member_id: opened.identity.member_id,
        raft: started.handle,
        mvcc: opened.mvcc,
        backend: opened.backend,
        metrics,
        lessor: lessor.clone(),
        membership: opened.membership.clone(),
        transport: transport.clone(),
        snap_dir: opened.snap_dir.clone(),
        alarms,
        quota_bytes: cfg.quota_bytes,
        disk: crate::storage::disk::DiskSpace::new(
            &cfg.data_dir,
            crate::storage::disk::reserve_for(cfg.max_request_bytes),
        ),
        hub: hub.clone(),
        lease_ids: LeaseIdGenerator::new(opened.identity.member_id),
        max_txn_ops: cfg.max_txn_ops,
        max_request_bytes: cfg.max_request_bytes,
        watch_progress_interval: cfg.watch_progress_interval,
        stopping: stop_rx.clone(),
    });
    tokio::spawn(expire_leases(ctx.clone(), election_timeout));
    if let Some(policy) = cfg.auto_compaction {
        tokio::spawn(compactor::run(ctx.clone(), policy));
    }
    tokio::spawn(publish(ctx.clone(), cfg.name.clone(), cfg.advertise_client_urls.clone()));
    tokio::spawn(run_catch_up(hub.clone(), ctx.mvcc.clone(), stop_rx.clone()));
    let stop_tx = Arc::new(stop_tx);
    tokio::spawn(follow_members(ctx.clone(), transport.clone(), stop_tx.clone(), cfg.heartbeat * 10));
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut servers = Vec::new();
    let http2 = serve::Http2Settings { max_concurrent_streams: cfg.max_concurrent_streams };
    for listener in peer_listeners {
        let peer = PeerServer::new(PeerService::new(transport.clone(), opened.snap_dir.clone(), stop_rx.clone()))
            .max_decoding_message_size(64 << 20);
        let routes = serve::Dispatch::new(tonic::service::Routes::new(peer).into_axum_router(), axum::Router::new());
        tracing::info!(addr = %listener.local_addr()?, "serving peer traffic");
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            // As for clients (see ClientListener): raft's small messages must not wait.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "setting TCP_NODELAY");
            }
        });
        servers.push(tokio::spawn(serve::serve(listener, routes, http2, stop_rx.clone())));
    }
    for listener in listeners {
        let limit = cfg.max_request_bytes + GRPC_OVERHEAD_BYTES;
        let kv = KvServer::new(KvService::new(ctx.clone())).max_decoding_message_size(limit);
        let gate = ctx.learner_gate();
        let lease = InterceptedService::new(
            LeaseServer::new(LeaseService::new(ctx.clone())).max_decoding_message_size(limit),
            gate.clone(),
        );
        let watch = InterceptedService::new(
            WatchServer::new(WatchService::new(ctx.clone())).max_decoding_message_size(limit),
            gate.clone(),
        );
        let lock = InterceptedService::new(
            LockServer::new(LockService::new(ctx.clone())).max_decoding_message_size(limit),
            gate.clone(),
        );
        let election = InterceptedService::new(
            ElectionServer::new(ElectionService::new(ctx.clone())).max_decoding_message_size(limit),
            gate.clone(),
        );
        // Every service takes requests as large as KV does, as etcd's one gRPC server does.
        let maintenance = MaintenanceServer::new(MaintenanceService::new(ctx.clone())).max_decoding_message_size(limit);
        let cluster = InterceptedService::new(
            ClusterServer::new(ClusterService::new(ctx.clone())).max_decoding_message_size(limit),
            gate.clone(),
        );
        let grpc = tonic::service::Routes::new(kv)
            .add_service(lease)
            .add_service(watch)
            .add_service(lock)
            .add_service(election)
            .add_service(cluster)
            .add_service(maintenance)
            .into_axum_router()
            .layer(axum::middleware::map_response(oversize::answer_as_grpc_go));
        let routes = serve::Dispatch::new(grpc, http::routes(ctx.clone()));
        tracing::info!(addr = %listener.local_addr()?, "serving client requests");
        servers.push(tokio::spawn(serve::serve(authority::ClientListener(listener), routes, http2, stop_rx.clone())));
    }
    tracing::info!(name = %cfg.name, member_id = %format!("{:x}", ctx.member_id), "ready to serve");
    for s in servers {
        s.await??;
    }
    transport.detach();
    // Dropping the last handle ends the raft loop, which closes the applier's queue; the
    // applier flushes the backend on its way out.
    drop(ctx);
    let threads = started.threads;
    tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Keeps the transport's peers equal to the member list, and stops the server once this
/// member is removed from the cluster (after `linger`, so the entry that removed it can
/// reach the others if it was the leader; etcd waits ten ticks too).
async fn follow_members(
    ctx: Arc<ServerCtx>,
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
async fn expire_leases(ctx: Arc<ServerCtx>, election_timeout: Duration) {
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
                ctx.lessor.promote(election_timeout);
            } else {
                ctx.lessor.demote();
            }
        }
        if !primary {
            continue;
        }
        for id in ctx.lessor.expired() {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let revoke = Request::LeaseRevoke(LeaseRevokeRequest { id });
                if let Err(e) = ctx.propose::<crate::proto::etcdserverpb::LeaseRevokeResponse>(revoke).await {
                    tracing::debug!(lease = id, error = %e, "revoking an expired lease failed; will retry");
                }
            });
        }
    }
}
