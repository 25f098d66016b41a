//! A member, assembled once: `Member::open` opens the data dir and starts raft and the
//! applier; `Member::serve` serves clients and peers on listeners the caller bound, runs the
//! background tasks, and stops in order when `shutdown` resolves (the applier flushes the last
//! applied entry on its way out). `main` and the tests both use it.

mod authority;
mod background;
mod bootstrap;
pub mod compactor;
mod corrupt;
mod http;
mod join;
mod oversize;
mod pprof;
mod serve;

use crate::alarm::Alarms;
use crate::apply::{Applier, ApplierHandle};
use crate::auth::{AuthStore, Tokens};
use crate::config::{ClusterState, Config, ListenAddr, ListenUrl};
use crate::gateway;
use crate::grpc::health::HealthService;
use crate::grpc::quota::Quota;
use crate::grpc::{
    auth::AuthService, cluster::ClusterService, election::ElectionService, kv::KvService, lease::LeaseService,
    lock::LockService, maintenance::MaintenanceService, watch::WatchService, Common,
};
use crate::lease::{LeaseIdGenerator, Lessor};
use crate::proto::cairnpb::peer_server::PeerServer;
use crate::proto::etcdserverpb::auth_server::AuthServer;
use crate::proto::etcdserverpb::cluster_server::ClusterServer;
use crate::proto::etcdserverpb::kv_server::KvServer;
use crate::proto::etcdserverpb::lease_server::LeaseServer;
use crate::proto::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::proto::etcdserverpb::watch_server::WatchServer;
use crate::proto::v3electionpb::election_server::ElectionServer;
use crate::proto::v3lockpb::lock_server::LockServer;
use crate::raft::{self, Network, NodeConfig, RaftHandle};
use crate::storage::backend::Backend;
use crate::storage::datadir::{self, Found};
use crate::storage::mvcc::watch::{run_catch_up, WatchHub};
use crate::storage::mvcc::MvccStore;
use crate::tls::Tls;
use crate::transport::{PeerService, Transport};
use crate::wait::Waiters;
use cairn_api::dial::DialOptions;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error(transparent)]
    DataDir(#[from] datadir::DataDirError),
    #[error(transparent)]
    Log(#[from] crate::storage::wal::WalError),
    #[error(transparent)]
    Backend(#[from] crate::storage::backend::BackendError),
    #[error(transparent)]
    Mvcc(#[from] crate::storage::mvcc::MvccError),
    #[error(transparent)]
    Raft(#[from] raft::RaftError),
    #[error(transparent)]
    State(#[from] crate::apply::OpenError),
    /// The data dir is one this member must not start from; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// Joining a running cluster failed (--initial-cluster-state existing).
    #[error("{0}")]
    Join(String),
    #[error("listen {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("--auth-token: {0}")]
    AuthToken(String),
}

/// etcd's allowance for gRPC framing on top of --max-request-bytes.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// The listeners a member serves: client URLs and peer URLs, bound by the caller (a test
/// binds port 0 and reads the port back).
pub struct Listeners {
    pub client: Vec<Listener>,
    pub peer: Vec<Listener>,
    /// --listen-metrics-urls: /metrics and /health only.
    pub metrics: Vec<Listener>,
}

/// A bound listener, and whether it serves TLS (an https or unixs URL).
pub enum Listener {
    Tcp(TcpListener, bool),
    Unix(tokio::net::UnixListener, bool),
}

impl Listeners {
    /// Binds --listen-client-urls and --listen-peer-urls.
    pub async fn bind(cfg: &Config) -> Result<Listeners, MemberError> {
        let bind_all = async |addrs: &[ListenUrl]| {
            let mut out = Vec::new();
            for addr in addrs {
                let failed = |source| MemberError::Listen { addr: addr.addr.to_string(), source };
                out.push(match &addr.addr {
                    ListenAddr::Tcp(a) => Listener::Tcp(TcpListener::bind(a).await.map_err(failed)?, addr.tls),
                    ListenAddr::Unix(path) => {
                        // A socket file left by an earlier run would refuse the bind (etcd
                        // removes it too).
                        let _ = std::fs::remove_file(path);
                        Listener::Unix(tokio::net::UnixListener::bind(path).map_err(failed)?, addr.tls)
                    }
                });
            }
            Ok::<_, MemberError>(out)
        };
        Ok(Listeners {
            client: bind_all(&cfg.listen_client).await?,
            peer: bind_all(&cfg.listen_peer).await?,
            metrics: bind_all(&cfg.listen_metrics).await?,
        })
    }
}

impl Listener {
    fn describe(&self) -> String {
        let (addr, tls) = match self {
            Listener::Tcp(l, tls) => (local_addr(l), *tls),
            Listener::Unix(l, tls) => {
                let path = l.local_addr().ok().and_then(|a| a.as_pathname().map(|p| p.display().to_string()));
                (format!("unix:{}", path.unwrap_or_default()), *tls)
            }
        };
        if tls {
            format!("{addr} (TLS)")
        } else {
            addr
        }
    }

    /// Serves `routes` on this listener until `stopping` turns true.
    fn serve(
        self,
        routes: serve::Dispatch,
        http2: serve::Http2Settings,
        layers: serve::Layers,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<std::io::Result<()>> {
        match self {
            Listener::Tcp(l, _) => {
                // Small messages (raft's, a put's answer) must not wait for the ACK of earlier
                // data (Nagle's algorithm against delayed ACKs: ~40 ms each); etcd's Go
                // runtime sets TCP_NODELAY too.
                let l = axum::serve::ListenerExt::tap_io(l, |tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "setting TCP_NODELAY");
                    }
                });
                tokio::spawn(serve::serve(l, routes, http2, layers, stopping))
            }
            Listener::Unix(l, _) => tokio::spawn(serve::serve(l, routes, http2, layers, stopping)),
        }
    }

    fn tls(&self) -> bool {
        matches!(self, Listener::Tcp(_, true) | Listener::Unix(_, true))
    }
}

/// Wraps the network raft sends on (tests put faults there).
pub type Interpose = Box<dyn FnOnce(Arc<dyn Network>) -> Arc<dyn Network> + Send>;

pub struct Member {
    cfg: Config,
    common: Arc<Common>,
    applier: ApplierHandle,
    lessor: Arc<Lessor>,
    hub: Arc<WatchHub>,
    alarms: Arc<Alarms>,
    backend: Arc<Backend>,
    transport: Arc<Transport>,
    snap_dir: PathBuf,
    /// What the client and peer listeners serve TLS with (None: that side has none).
    client_tls: Option<Tls>,
    peer_tls: Option<Tls>,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

impl Member {
    /// Opens the data dir (refusing one Cairn did not make), joins a running cluster when
    /// asked to, and starts raft and the applier: from here on the member replicates and
    /// applies, and serves nobody until `serve`.
    pub async fn open(cfg: Config) -> Result<Member, MemberError> {
        Member::open_with(cfg, None).await
    }

    /// `open`, with raft's outgoing messages going through `interpose`'s network first.
    pub async fn open_with(cfg: Config, interpose: Option<Interpose>) -> Result<Member, MemberError> {
        // Before anything counts: the first use of the metrics fixes their set.
        crate::metrics::init(cfg.metrics_extensive);
        // Before anything is written anywhere: a data dir Cairn did not make is refused as it is.
        let found = datadir::inspect(&cfg.data_dir)?;
        // TLS first: a joining member dials its peers with it (auto TLS keeps its certificates
        // under the data dir, which only a foreign data dir could refuse: it already has).
        let client_tls = Tls::load(&cfg.client_tls, &cfg.data_dir)?;
        let peer_tls = Tls::load(&cfg.peer_tls, &cfg.data_dir)?;
        let tokens = Tokens::from_flag(&cfg.auth_token, cfg.auth_token_ttl).map_err(MemberError::AuthToken)?;
        let local_ip = match cfg.listen_peer.first().map(|l| &l.addr) {
            Some(ListenAddr::Tcp(a)) if !a.ip().is_unspecified() => Some(a.ip()),
            _ => None,
        };
        let peer_dial =
            DialOptions { tls: peer_tls.as_ref().map(|t| t.client.clone()), local: local_ip, ..Default::default() };
        let client_dial = DialOptions { tls: client_tls.as_ref().map(|t| t.client.clone()), ..Default::default() };
        let joining = if found == Found::Empty && cfg.initial_cluster_state == ClusterState::Existing {
            Some(join::fetch(&cfg, &peer_dial).await?)
        } else {
            None
        };
        let opened = bootstrap::open(&cfg, found, joining)?;
        // Only a member with data of its own has something to compare (as in etcd).
        if cfg.initial_corrupt_check && found != Found::Empty {
            corrupt::check(&opened.state.mvcc, &opened.membership, &client_dial).await?;
        }
        crate::metrics::get().identify(opened.identity.member_id, cfg.quota_bytes);
        let waiters = Arc::new(Waiters::default());
        // etcd's minimum TTL: one and a half election timeouts, in whole seconds, rounded up.
        let min_ttl = (election_timeout(&cfg).as_secs_f64() * 1.5).ceil() as i64;
        let (backend, mvcc, applied) = (opened.state.backend.clone(), opened.state.mvcc.clone(), opened.state.applied);
        let lessor = Arc::new(Lessor::new(min_ttl));
        lessor.load(&backend, mvcc.leased_keys())?;
        let (applied_tx, applied_rx) = watch::channel(applied);
        let hub = Arc::new(WatchHub::new(mvcc.current_revision()));
        let alarms = Arc::new(Alarms::load(&backend)?);
        let auth = Arc::new(AuthStore::load(&backend, tokens, cfg.bcrypt_cost)?);
        let services = crate::apply::Services {
            membership: opened.membership.clone(),
            alarms: alarms.clone(),
            hub: hub.clone(),
            lessor: lessor.clone(),
            auth: auth.clone(),
        };
        let applier = Applier::new(opened.state, services, waiters.clone(), applied_tx);
        let applier = crate::apply::spawn(applier, backend.clone(), cfg.snapshot_count, opened.snap_dir.clone())
            .map_err(|source| MemberError::Io { what: "starting the applier".into(), source })?;
        let node_cfg = NodeConfig {
            id: opened.identity.member_id,
            tick: cfg.heartbeat,
            election_ticks: cfg.election_ticks,
            heartbeat_ticks: 1,
            snapshot_count: cfg.snapshot_count,
            // etcd: 5s plus twice the election timeout.
            request_timeout: Duration::from_secs(5) + 2 * election_timeout(&cfg),
            max_request_bytes: cfg.max_request_bytes,
            snap_dir: opened.snap_dir.clone(),
        };
        let transport = Transport::new(
            opened.identity.cluster_id,
            opened.membership.clone(),
            peer_dial,
            tokio::runtime::Handle::current(),
        );
        transport.sync_peers();
        let network: Arc<dyn Network> = transport.clone();
        let parts = raft::Parts {
            log_dir: opened.log_dir.clone(),
            applied,
            voters: opened.membership.voters(),
            learners: opened.membership.learners(),
            applier: applier.handle.clone(),
            applier_events: applier.events,
            applied_rx,
            waiters,
            network: match interpose {
                Some(wrap) => wrap(network),
                None => network,
            },
        };
        let started = raft::spawn(node_cfg, parts)?;
        transport.attach(started.handle.clone());
        let (stop, stopping) = watch::channel(false);
        let common = Arc::new(Common {
            cluster_id: opened.identity.cluster_id,
            member_id: opened.identity.member_id,
            raft: started.handle,
            mvcc,
            membership: opened.membership,
            stopping,
            dial: client_dial,
            auth,
        });
        Ok(Member {
            cfg,
            common,
            applier: applier.handle,
            lessor,
            hub,
            alarms,
            backend,
            transport,
            snap_dir: opened.snap_dir,
            client_tls,
            peer_tls,
            stop,
            threads: vec![started.thread, applier.thread],
        })
    }

    pub fn id(&self) -> u64 {
        self.common.member_id
    }

    pub fn raft(&self) -> &RaftHandle {
        &self.common.raft
    }

    pub fn mvcc(&self) -> &Arc<MvccStore> {
        &self.common.mvcc
    }

    /// Serves clients and peers on `listeners` and runs the member's background tasks until
    /// `shutdown` resolves (or the member is removed from the cluster), then stops in order.
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), MemberError> {
        let Member {
            cfg,
            common,
            applier,
            lessor,
            hub,
            alarms,
            backend,
            transport,
            snap_dir,
            client_tls,
            peer_tls,
            stop,
            threads,
        } = self;
        let layers = |tls: &Option<Tls>, listener: &Listener, authority_fix: bool| serve::Layers {
            tls: tls.as_ref().filter(|_| listener.tls()).map(|t| tokio_rustls::TlsAcceptor::from(t.server.clone())),
            authority_fix,
        };
        let stop = Arc::new(stop);
        let stopping = common.stopping.clone();
        tokio::spawn(background::expire_leases(common.clone(), lessor.clone(), election_timeout(&cfg)));
        if let Some(policy) = cfg.auto_compaction {
            tokio::spawn(compactor::run(common.clone(), policy));
        }
        tokio::spawn(background::publish(common.clone(), cfg.name.clone(), cfg.advertise_client_urls.clone()));
        tokio::spawn(run_catch_up(hub.clone(), common.mvcc.clone(), stopping.clone()));
        tokio::spawn(background::follow_members(common.clone(), transport.clone(), stop.clone(), cfg.heartbeat * 10));
        let on_shutdown = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = on_shutdown.send(true);
        });
        let mut servers = Vec::new();
        let http2 = serve::Http2Settings { max_concurrent_streams: cfg.max_concurrent_streams };
        for listener in listeners.peer {
            let peer = PeerServer::new(PeerService::new(transport.clone(), snap_dir.clone(), stopping.clone()))
                .max_decoding_message_size(64 << 20);
            let routes =
                serve::Dispatch::new(tonic::service::Routes::new(peer).into_axum_router(), axum::Router::new());
            tracing::info!(addr = %listener.describe(), "serving peer traffic");
            let layers = layers(&peer_tls, &listener, false);
            servers.push(listener.serve(routes, http2, layers, stopping.clone()));
        }
        let quota = Arc::new(Quota {
            member_id: common.member_id,
            quota_bytes: cfg.quota_bytes,
            disk: crate::storage::disk::DiskSpace::new(
                &cfg.data_dir,
                crate::storage::disk::reserve_for(cfg.max_request_bytes),
            ),
            backend: backend.clone(),
            alarms: alarms.clone(),
            raft: common.raft.clone(),
        });
        let lease_ids = Arc::new(LeaseIdGenerator::new(common.member_id));
        let http_state = Arc::new(http::HttpState {
            common: common.clone(),
            alarms: alarms.clone(),
            backend: backend.clone(),
            hub: hub.clone(),
        });
        for listener in listeners.client {
            // Every service takes requests as large as KV does, as etcd's one gRPC server does.
            let limit = cfg.max_request_bytes + GRPC_OVERHEAD_BYTES;
            let gate = common.learner_gate();
            let services = Arc::new(gateway::Services {
                common: common.clone(),
                kv: Arc::new(KvService::new(common.clone(), lessor.clone(), quota.clone(), cfg.max_txn_ops)),
                lease: Arc::new(LeaseService::new(common.clone(), lessor.clone(), lease_ids.clone(), quota.clone())),
                watch: Arc::new(WatchService::new(
                    common.clone(),
                    hub.clone(),
                    cfg.max_request_bytes,
                    cfg.watch_progress_interval,
                )),
                cluster: Arc::new(ClusterService::new(common.clone(), transport.clone(), cfg.strict_reconfig_check)),
                maintenance: Arc::new(MaintenanceService::new(
                    common.clone(),
                    alarms.clone(),
                    backend.clone(),
                    applier.clone(),
                    snap_dir.clone(),
                )),
                auth: Arc::new(AuthService::new(common.clone())),
                election: Arc::new(ElectionService::new(common.clone(), hub.clone())),
                lock: Arc::new(LockService::new(common.clone(), hub.clone())),
            });
            let s = &services;
            // A service as gRPC serves it: its size limit, and refused on a learner.
            macro_rules! gated {
                ($server:ident, $svc:ident) => {
                    InterceptedService::new(
                        $server::from_arc(s.$svc.clone()).max_decoding_message_size(limit),
                        gate.clone(),
                    )
                };
            }
            let grpc = tonic::service::Routes::new(KvServer::from_arc(s.kv.clone()).max_decoding_message_size(limit))
                .add_service(gated!(LeaseServer, lease))
                .add_service(gated!(WatchServer, watch))
                .add_service(gated!(LockServer, lock))
                .add_service(gated!(ElectionServer, election))
                .add_service(gated!(ClusterServer, cluster))
                .add_service(gated!(AuthServer, auth))
                .add_service(MaintenanceServer::from_arc(s.maintenance.clone()).max_decoding_message_size(limit))
                // Learners are alive too: probes ask every member.
                .add_service(tonic_health::pb::health_server::HealthServer::new(HealthService))
                .into_axum_router()
                .layer(axum::middleware::map_response(oversize::answer_as_grpc_go))
                .layer(axum::middleware::from_fn(crate::metrics::observe_grpc));
            // JSON carries bytes in base64: a third larger than the request it stands for.
            let gateway = gateway::routes(services.clone(), 2 * limit);
            let mut http = http::routes(http_state.clone()).merge(gateway);
            if cfg.enable_pprof {
                http = http.merge(pprof::routes());
            }
            let http = http.layer(axum::middleware::from_fn(gateway::cors));
            let routes = serve::Dispatch::new(grpc, http);
            tracing::info!(addr = %listener.describe(), "serving client requests");
            // The :authority repair on every client connection (see `authority`).
            let layers = layers(&client_tls, &listener, true);
            servers.push(listener.serve(routes, http2, layers, stopping.clone()));
        }
        for listener in listeners.metrics {
            // No gRPC here: a gRPC request meets the 404 every unknown path gets.
            let routes = serve::Dispatch::new(axum::Router::new(), http::routes(http_state.clone()));
            tracing::info!(addr = %listener.describe(), "serving /metrics and /health");
            let layers = layers(&client_tls, &listener, false);
            servers.push(listener.serve(routes, http2, layers, stopping.clone()));
        }
        tracing::info!(name = %cfg.name, member_id = %format!("{:x}", common.member_id), "ready to serve");
        let mut result = Ok(());
        for s in servers {
            let served = s.await.map_err(|e| std::io::Error::other(e.to_string())).and_then(|r| r);
            if let Err(source) = served {
                result = Err(MemberError::Io { what: "serving".into(), source });
            }
        }
        transport.detach();
        // Dropping the last raft handle ends the raft loop, and the last applier handle the
        // applier, which flushes the backend on its way out.
        drop((common, applier, lessor, hub, alarms, backend, transport, quota, http_state));
        tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await
        .map_err(|e| MemberError::Io { what: "stopping".into(), source: std::io::Error::other(e.to_string()) })?;
        tracing::info!("stopped");
        result
    }
}

fn election_timeout(cfg: &Config) -> Duration {
    cfg.heartbeat * cfg.election_ticks as u32
}

fn local_addr(l: &TcpListener) -> String {
    l.local_addr().map(|a| a.to_string()).unwrap_or_default()
}
