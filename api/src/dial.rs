//! A gRPC connection to one endpoint, given as etcdctl takes it: `host:port`, an http or
//! https URL, or a unix socket (`unix://<path>`, `unixs://<path>` with TLS; the path is the
//! URL's host and path, as etcd reads it). With TLS, the handshake is the caller's
//! configuration's (trusted CAs, client certificate), and ALPN asks for HTTP/2.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, thiserror::Error)]
#[error("dial {endpoint}: {why}")]
pub struct DialError {
    pub endpoint: String,
    pub why: String,
}

/// How to dial.
#[derive(Clone)]
pub struct DialOptions {
    /// For https and unixs endpoints.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Connections leave from this address (a TCP endpoint).
    pub local: Option<IpAddr>,
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alives (a long-lived connection to a peer).
    pub keep_alive: Option<Duration>,
}

impl Default for DialOptions {
    fn default() -> Self {
        DialOptions { tls: None, local: None, connect_timeout: Duration::from_secs(5), keep_alive: None }
    }
}

/// Dials a plain endpoint (what Cairn's own client tools and the tests use).
pub async fn dial(endpoint: &str) -> Result<Channel, DialError> {
    connect(endpoint, &DialOptions::default()).await
}

/// The socket path of a `unix://` or `unixs://` URL (its host, with any port, then its path),
/// or None.
pub fn unix_socket(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("unix://").or_else(|| url.strip_prefix("unixs://"))?;
    Some(std::path::PathBuf::from(rest))
}

pub async fn connect(endpoint: &str, opts: &DialOptions) -> Result<Channel, DialError> {
    let failed = |why: String| DialError { endpoint: endpoint.to_string(), why };
    let url = if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") };
    let tls = url.starts_with("https://") || url.starts_with("unixs://");
    if tls && opts.tls.is_none() {
        return Err(failed("a TLS endpoint, and no TLS configuration to dial it with".into()));
    }
    let mut e = if let Some(path) = unix_socket(&url) {
        // The URI only names the connection; the connector goes to the socket.
        let _ = path;
        Endpoint::from_static("http://unix.socket")
    } else {
        // tonic itself dials http; https goes through the connector below, as http.
        let plain = url.replacen("https://", "http://", 1);
        Endpoint::from_shared(plain).map_err(|e| failed(e.to_string()))?
    };
    e = e.connect_timeout(opts.connect_timeout).tcp_nodelay(true);
    if let Some(every) = opts.keep_alive {
        e = e.http2_keep_alive_interval(every).keep_alive_timeout(every).keep_alive_while_idle(true);
    }
    if !tls && unix_socket(&url).is_none() {
        return e.local_address(opts.local).connect().await.map_err(|e| failed(e.to_string()));
    }
    let target = Target::of(&url).map_err(failed)?;
    let (config, local, timeout) = (opts.tls.clone(), opts.local, opts.connect_timeout);
    e.connect_with_connector(tower::service_fn(move |_: tonic::codegen::http::Uri| {
        let (target, config) = (target.clone(), config.clone());
        async move { target.open(config, local, timeout).await.map(hyper_util::rt::TokioIo::new) }
    }))
    .await
    .map_err(|e| failed(format!("{e}: {}", source_chain(&e))))
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

/// Where a connector goes: a TCP host and port, or a unix socket; and the name TLS checks
/// the server's certificate against.
#[derive(Clone)]
enum Target {
    Tcp { host: String, port: u16 },
    Unix { path: std::path::PathBuf },
}

impl Target {
    fn of(url: &str) -> Result<Target, String> {
        if let Some(path) = unix_socket(url) {
            return Ok(Target::Unix { path });
        }
        let u = url::Url::parse(url).map_err(|e| e.to_string())?;
        let host = u.host_str().ok_or("no host")?.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = u.port_or_known_default().ok_or("no port")?;
        Ok(Target::Tcp { host, port })
    }

    fn server_name(&self) -> rustls::pki_types::ServerName<'static> {
        let host = match self {
            Target::Tcp { host, .. } => host.clone(),
            // A socket has no host name: etcd checks it as localhost.
            Target::Unix { .. } => "localhost".into(),
        };
        rustls::pki_types::ServerName::try_from(host)
            .unwrap_or_else(|_| rustls::pki_types::ServerName::try_from("localhost").expect("a valid name").to_owned())
    }

    async fn open(
        &self,
        tls: Option<Arc<rustls::ClientConfig>>,
        local: Option<IpAddr>,
        timeout: Duration,
    ) -> std::io::Result<Box<dyn Io>> {
        let plain: Box<dyn Io> = match self {
            Target::Unix { path } => Box::new(tokio::net::UnixStream::connect(path).await?),
            Target::Tcp { host, port } => {
                let connect = async {
                    let mut last = std::io::Error::other(format!("{host} resolves to no address"));
                    for addr in tokio::net::lookup_host((host.as_str(), *port)).await? {
                        let socket = if addr.is_ipv4() {
                            tokio::net::TcpSocket::new_v4()?
                        } else {
                            tokio::net::TcpSocket::new_v6()?
                        };
                        if let Some(ip) = local.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
                            socket.bind(std::net::SocketAddr::new(ip, 0))?;
                        }
                        match socket.connect(addr).await {
                            Ok(s) => {
                                s.set_nodelay(true)?;
                                return Ok(s);
                            }
                            Err(e) => last = e,
                        }
                    }
                    Err(last)
                };
                let stream = tokio::time::timeout(timeout, connect)
                    .await
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
                Box::new(stream)
            }
        };
        let Some(config) = tls else { return Ok(plain) };
        let connector = tokio_rustls::TlsConnector::from(config);
        Ok(Box::new(connector.connect(self.server_name(), plain).await?))
    }
}

/// A connection, whatever it runs over.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}
