//! TLS, as etcd's flags configure it, for both sides of a member: its client URLs (gRPC,
//! /health, /version and /metrics) and its peer URLs (raft, snapshots). Certificates are
//! loaded from PEM files, verified with webpki (rustls), reloaded when their files change (as
//! cert-manager and kubelet rotate them in place: the next handshake uses the new pair), and
//! made up when asked (`--auto-tls`, `--peer-auto-tls`: self-signed, as etcd makes them). The
//! member's own clients (to its peers, and to the leader it forwards to) take their
//! configuration from here too.

pub mod alerts;
mod ciphers;
mod files;
mod reload;
mod self_signed;
pub mod tool;
mod verify;

pub use files::TlsError;
pub use verify::common_name;

use rustls::crypto::CryptoProvider;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which side a configuration is for; its flags are named after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Peer,
}

impl Side {
    /// The flag for `name` on this side: `--cert-file` or `--peer-cert-file`.
    pub fn flag(self, name: &str) -> String {
        match self {
            Side::Client => format!("--{name}"),
            Side::Peer => format!("--peer-{name}"),
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Peer => "peer",
        }
    }
}

/// One side's TLS flags.
#[derive(Clone, Debug)]
pub struct TlsInfo {
    pub side: Side,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
    /// Require a certificate of the trusted CA from whoever connects.
    pub client_cert_auth: bool,
    pub crl_file: Option<PathBuf>,
    /// Make a self-signed certificate when none is given.
    pub auto_tls: bool,
    /// Peers only: the CN a connecting peer's certificate must have.
    pub allowed_cn: Option<String>,
    /// Peers only: a name a connecting peer's certificate must be valid for.
    pub allowed_hostname: Option<String>,
    /// Go's names of the TLS 1.2 cipher suites allowed (empty: rustls's defaults).
    pub cipher_suites: Vec<String>,
    /// The hosts this side serves (a self-signed certificate is made for them).
    pub hosts: Vec<String>,
}

impl TlsInfo {
    pub fn new(side: Side) -> TlsInfo {
        TlsInfo {
            side,
            cert_file: None,
            key_file: None,
            trusted_ca_file: None,
            client_cert_auth: false,
            crl_file: None,
            auto_tls: false,
            allowed_cn: None,
            allowed_hostname: None,
            cipher_suites: Vec::new(),
            hosts: Vec::new(),
        }
    }

    /// Whether there is anything to serve TLS with.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() || self.auto_tls
    }

    /// Checks the flags against each other and the URLs they serve, with etcd's rules.
    pub fn check(&self, https_urls: &[String]) -> Result<(), TlsError> {
        let side = self.side;
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(TlsError::Flags(format!(
                "{} and {} must be given together",
                side.flag("cert-file"),
                side.flag("key-file")
            )));
        }
        if let Some(url) = https_urls.first().filter(|_| !self.enabled()) {
            let kind = if side == Side::Client { "client" } else { "peer" };
            return Err(TlsError::Flags(format!(
                "TLS key/cert ({}, {}) must be provided for {kind} url {url} with HTTPS scheme",
                side.flag("cert-file"),
                side.flag("key-file")
            )));
        }
        if self.client_cert_auth && self.trusted_ca_file.is_none() {
            return Err(TlsError::Flags(format!(
                "{} needs {} (the CA whose certificates are accepted)",
                side.flag("client-cert-auth"),
                side.flag("trusted-ca-file")
            )));
        }
        ciphers::provider(&self.cipher_suites)?;
        Ok(())
    }
}

/// TLS for one side of a member, loaded: the server's configuration for its listeners, and
/// the client's for dialing that side of other members.
pub struct Tls {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

impl Tls {
    /// Loads (or makes, with auto TLS: under `data_dir/fixtures/<side>`, valid for the side's
    /// hosts) what `info` names. None when the side has no TLS.
    pub fn load(info: &TlsInfo, data_dir: &Path) -> Result<Option<Tls>, TlsError> {
        if !info.enabled() {
            return Ok(None);
        }
        let provider = Arc::new(ciphers::provider(&info.cipher_suites)?);
        let (cert_file, key_file) = match (&info.cert_file, &info.key_file) {
            (Some(c), Some(k)) => {
                if info.auto_tls {
                    tracing::warn!(
                        "ignoring {}: certificates are given with {}",
                        info.side.flag("auto-tls"),
                        info.side.flag("cert-file")
                    );
                }
                (c.clone(), k.clone())
            }
            _ => self_signed::make(&data_dir.join("fixtures").join(info.side.dir()), &info.hosts)?,
        };
        let pair = reload::Reloading::new(info.side, cert_file, key_file, provider.clone())?;
        let pair = Arc::new(pair);
        let roots = match &info.trusted_ca_file {
            Some(ca) => Some(files::roots(&info.side.flag("trusted-ca-file"), ca)?),
            None => None,
        };
        let crls = match &info.crl_file {
            Some(f) => files::crls(&info.side.flag("crl-file"), f)?,
            None => Vec::new(),
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Flags(e.to_string()))?;
        let mut server = match (&roots, info.client_cert_auth) {
            (Some(roots), true) => {
                let verifier = verify::client_verifier(
                    roots.clone(),
                    crls,
                    provider.clone(),
                    info.allowed_cn.clone(),
                    info.allowed_hostname.clone(),
                )?;
                builder.with_client_cert_verifier(verifier).with_cert_resolver(pair.clone())
            }
            _ => builder.with_no_client_auth().with_cert_resolver(pair.clone()),
        };
        // gRPC speaks HTTP/2; curl and browsers may ask for HTTP/1.1 (/health, /metrics).
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let client_builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Flags(e.to_string()))?;
        // Whom to trust when dialing: the CA given, or (auto TLS: self-signed everywhere)
        // anyone, as etcd's members trust each other's auto-TLS certificates.
        let client_builder = match roots {
            Some(roots) if !(info.auto_tls && info.cert_file.is_none()) => {
                client_builder.dangerous().with_custom_certificate_verifier(verify::server_verifier(roots, provider)?)
            }
            _ => client_builder.dangerous().with_custom_certificate_verifier(Arc::new(verify::AcceptAny(provider))),
        };
        let mut client = client_builder.with_client_cert_resolver(pair);
        client.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(Tls { server: Arc::new(server), client: Arc::new(client) }))
    }
}

/// The crypto provider rustls uses wherever nothing else is asked for.
pub fn default_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
