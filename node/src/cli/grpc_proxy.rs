//! `cairn grpc-proxy start`: etcd's gRPC proxy, a stateless front for a cluster's client
//! endpoints. Every gRPC call (KV, Watch, Lease, Cluster, Maintenance, Auth, Election, Lock,
//! health) is passed on to a member as it came: stream for stream, with its metadata (a
//! user's token included) and its trailers, so clients see the members' own answers. Members
//! are used in turn; one that cannot be reached is skipped. etcd's proxy also caches ranges
//! and merges watches on one key; this one forwards each call as it is.

use anyhow::{bail, Context};
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use cairn_api::dial::DialOptions;
use cairn_node::tls::{Side, Tls, TlsInfo};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::Channel;
use tower::{Service, ServiceExt};

#[derive(clap::Args, Debug)]
pub struct GrpcProxyArgs {
    /// Where clients connect.
    #[arg(long, default_value = "127.0.0.1:23790")]
    listen_addr: String,
    /// The cluster's client endpoints.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// The proxy's certificate towards the members (it must have no Common Name).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The key of --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// The CA that signed the members' certificates.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Serve clients over TLS with this certificate.
    #[arg(long, requires = "key_file")]
    cert_file: Option<PathBuf>,
    /// The key of --cert-file.
    #[arg(long, requires = "cert_file")]
    key_file: Option<PathBuf>,
    /// Verify clients' certificates, when they show one, with this CA.
    #[arg(long)]
    trusted_ca_file: Option<PathBuf>,
    /// Serve clients over TLS with a self-signed certificate (kept under --data-dir).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    auto_tls: bool,
    /// TLS 1.2 cipher suites offered to clients, by Go's names (empty: the defaults).
    #[arg(long, value_delimiter = ',', num_args = 0..=1)]
    listen_cipher_suites: Vec<String>,
    /// Where auto TLS keeps its certificate.
    #[arg(long, default_value = "default.proxy")]
    data_dir: PathBuf,
    /// Skip verifying the members' certificates: not supported (give --cacert).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    insecure_skip_tls_verify: bool,
    /// Prefix every key: not supported (a proxy that ignored it would serve other keys).
    #[arg(long, default_value = "")]
    namespace: String,
    /// Registering the proxy under a prefix: not supported.
    #[arg(long, default_value = "")]
    resolver_prefix: String,
    #[arg(long, default_value_t = 0)]
    resolver_ttl: i64,
    /// Flags of etcd's proxy that change nothing here; each is reported when given.
    #[arg(long, hide = true)]
    metrics_addr: Option<String>,
    #[arg(long, hide = true)]
    advertise_client_url: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    enable_pprof: Option<String>,
    #[arg(long, hide = true)]
    max_send_bytes: Option<String>,
    #[arg(long, hide = true)]
    max_recv_bytes: Option<String>,
    #[arg(long, hide = true)]
    client_crl_file: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    experimental_serializable_ordering: Option<String>,
    #[arg(long, hide = true)]
    experimental_leasing_prefix: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    debug: Option<String>,
    #[arg(long, hide = true)]
    max_concurrent_streams: Option<String>,
    #[arg(long, hide = true)]
    discovery_srv: Option<String>,
    #[arg(long, hide = true)]
    discovery_srv_name: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    insecure_discovery: Option<String>,
}

/// `start`, the one subcommand (main.rs takes the flags before it too, as etcd does).
#[derive(clap::Subcommand, Debug)]
pub enum GrpcProxyCommand {
    /// Start the gRPC proxy.
    Start(Box<GrpcProxyArgs>),
}

impl GrpcProxyArgs {
    /// What would change the answers or the proxy's safety if ignored stops the start.
    fn check(&self) -> anyhow::Result<()> {
        if !self.namespace.is_empty() {
            bail!("--namespace is not supported by cairn's grpc-proxy");
        }
        if !self.resolver_prefix.is_empty() || self.resolver_ttl != 0 {
            bail!("--resolver-prefix and --resolver-ttl are not supported by cairn's grpc-proxy");
        }
        if self.insecure_skip_tls_verify {
            bail!("--insecure-skip-tls-verify is not supported: give the members' CA with --cacert");
        }
        if self.experimental_leasing_prefix.as_deref().is_some_and(|p| !p.is_empty()) {
            bail!("--experimental-leasing-prefix is not supported by cairn's grpc-proxy");
        }
        if self.discovery_srv.as_deref().is_some_and(|d| !d.is_empty()) {
            bail!("--discovery-srv is not supported: give --endpoints");
        }
        let ignored = [
            ("metrics-addr", &self.metrics_addr),
            ("advertise-client-url", &self.advertise_client_url),
            ("enable-pprof", &self.enable_pprof),
            ("max-send-bytes", &self.max_send_bytes),
            ("max-recv-bytes", &self.max_recv_bytes),
            ("client-crl-file", &self.client_crl_file),
            ("experimental-serializable-ordering", &self.experimental_serializable_ordering),
            ("debug", &self.debug),
            ("max-concurrent-streams", &self.max_concurrent_streams),
        ];
        for (flag, v) in ignored {
            if v.is_some() {
                tracing::warn!("--{flag} has no effect in cairn's grpc-proxy");
            }
        }
        Ok(())
    }

    /// The TLS the proxy serves clients with, if any.
    fn listener_tls(&self) -> anyhow::Result<Option<Tls>> {
        let mut info = TlsInfo::new(Side::Client);
        info.cert_file = self.cert_file.clone();
        info.key_file = self.key_file.clone();
        info.trusted_ca_file = self.trusted_ca_file.clone();
        info.auto_tls = self.auto_tls;
        info.cipher_suites = self.listen_cipher_suites.iter().filter(|s| !s.is_empty()).cloned().collect();
        info.hosts = vec![self.listen_addr.rsplit_once(':').map_or(self.listen_addr.clone(), |(h, _)| h.to_string())];
        info.check(&[])?;
        Ok(Tls::load(&info, &self.data_dir)?)
    }

    /// How members are dialed: with TLS when any of --cert, --key or --cacert is given.
    fn dial(&self) -> anyhow::Result<DialOptions> {
        let mut opts = DialOptions { connect_timeout: Duration::from_secs(5), ..Default::default() };
        if self.cert.is_some() || self.cacert.is_some() {
            if let Some(cert) = &self.cert {
                cairn_node::tls::tool::require_empty_cn(cert)?;
            }
            let pair = self.cert.as_deref().zip(self.key.as_deref());
            opts.tls = Some(cairn_node::tls::tool::client_config(self.cacert.as_deref(), pair)?);
        }
        Ok(opts)
    }
}

/// The members, dialed once each when first used (a Channel reconnects by itself after).
struct Members {
    endpoints: Vec<String>,
    dial: DialOptions,
    channels: Mutex<(Vec<Option<Channel>>, usize)>,
}

impl Members {
    /// A channel to the next member in turn that can be reached.
    async fn next(&self) -> Option<Channel> {
        for _ in 0..self.endpoints.len() {
            let (i, cached) = {
                let mut g = self.channels.lock().unwrap_or_else(|e| e.into_inner());
                let i = g.1 % self.endpoints.len();
                g.1 += 1;
                (i, g.0[i].clone())
            };
            if let Some(c) = cached {
                return Some(c);
            }
            match cairn_api::dial::connect(&self.endpoints[i], &self.dial).await {
                Ok(c) => {
                    self.channels.lock().unwrap_or_else(|e| e.into_inner()).0[i] = Some(c.clone());
                    return Some(c);
                }
                Err(e) => tracing::warn!(endpoint = %self.endpoints[i], error = %e, "member unreachable"),
            }
        }
        None
    }
}

/// One call passed on: the request as it came, the member's response as it comes.
async fn forward(members: Arc<Members>, req: Request) -> Response {
    let Some(mut channel) = members.next().await else {
        return tonic::Status::unavailable("no member of the cluster can be reached").into_http::<Body>();
    };
    let req = req.map(tonic::body::Body::new);
    let answered = match channel.ready().await {
        Ok(ch) => ch.call(req).await,
        Err(e) => Err(e),
    };
    match answered {
        Ok(resp) => resp.map(Body::new),
        Err(e) => tonic::Status::unavailable(format!("the member: {e}")).into_http::<Body>(),
    }
}

pub async fn run(cmd: GrpcProxyCommand) -> anyhow::Result<()> {
    let GrpcProxyCommand::Start(args) = cmd;
    args.check()?;
    let dial = args.dial()?;
    let tls = args.listener_tls()?;
    let endpoints: Vec<String> =
        args.endpoints.iter().map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect();
    if endpoints.is_empty() {
        bail!("no endpoints found");
    }
    let members = Arc::new(Members { channels: Mutex::new((vec![None; endpoints.len()], 0)), endpoints, dial });
    let listener = tokio::net::TcpListener::bind(&args.listen_addr)
        .await
        .with_context(|| format!("listen {}", args.listen_addr))?;
    let routes = axum::Router::new().fallback(move |req: Request| forward(members.clone(), req));
    tracing::info!(address = %args.listen_addr, "started gRPC proxy");
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server));
    loop {
        let (io, _) = listener.accept().await.context("accept")?;
        let _ = io.set_nodelay(true);
        let (routes, acceptor) = (routes.clone(), acceptor.clone());
        tokio::spawn(async move {
            let service = hyper_util::service::TowerToHyperService::new(routes);
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let served = match acceptor {
                Some(a) => match a.accept(io).await {
                    Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
                    Err(e) => return tracing::debug!(error = %e, "TLS handshake failed"),
                },
                None => builder.serve_connection(TokioIo::new(io), service).await,
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}
