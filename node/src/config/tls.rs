//! etcd's TLS flags, for the client and the peer side.

use crate::tls::{Side, TlsInfo};
use clap::Args;
use std::path::PathBuf;

/// A Go-style boolean flag: `--flag`, `--flag=true`, `--flag=false`.
macro_rules! go_bool {
    () => {
        clap::ArgAction::Set
    };
}

#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Path to the client server TLS cert file.
    #[arg(long)]
    pub cert_file: Option<PathBuf>,
    /// Path to the client server TLS key file.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Enable client cert authentication.
    #[arg(long, default_value_t = false, action = go_bool!(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub client_cert_auth: bool,
    /// Path to the client certificate revocation list file.
    #[arg(long)]
    pub client_crl_file: Option<PathBuf>,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long)]
    pub trusted_ca_file: Option<PathBuf>,
    /// Client TLS using generated certificates.
    #[arg(long, default_value_t = false, action = go_bool!(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub auto_tls: bool,
    /// Path to the peer server TLS cert file.
    #[arg(long)]
    pub peer_cert_file: Option<PathBuf>,
    /// Path to the peer server TLS key file.
    #[arg(long)]
    pub peer_key_file: Option<PathBuf>,
    /// Enable peer client cert authentication.
    #[arg(long, default_value_t = false, action = go_bool!(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub peer_client_cert_auth: bool,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long)]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// Allowed CN for inter peer authentication.
    #[arg(long)]
    pub peer_cert_allowed_cn: Option<String>,
    /// Allowed TLS hostname for inter peer authentication.
    #[arg(long)]
    pub peer_cert_allowed_hostname: Option<String>,
    /// Allowed TLS hostname for client cert authentication.
    #[arg(long)]
    pub client_cert_allowed_hostname: Option<String>,
    /// Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.
    #[arg(long, default_value_t = false, action = go_bool!(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub peer_auto_tls: bool,
    /// Path to the peer certificate revocation list file.
    #[arg(long)]
    pub peer_crl_file: Option<PathBuf>,
    /// Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).
    #[arg(long, default_value = "")]
    pub cipher_suites: String,
}

impl TlsArgs {
    fn suites(&self) -> Vec<String> {
        self.cipher_suites.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
    }

    pub fn client(&self) -> TlsInfo {
        TlsInfo {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            trusted_ca_file: self.trusted_ca_file.clone(),
            client_cert_auth: self.client_cert_auth,
            crl_file: self.client_crl_file.clone(),
            auto_tls: self.auto_tls,
            allowed_hostname: self.client_cert_allowed_hostname.clone(),
            cipher_suites: self.suites(),
            ..TlsInfo::new(Side::Client)
        }
    }

    pub fn peer(&self) -> TlsInfo {
        TlsInfo {
            cert_file: self.peer_cert_file.clone(),
            key_file: self.peer_key_file.clone(),
            trusted_ca_file: self.peer_trusted_ca_file.clone(),
            client_cert_auth: self.peer_client_cert_auth,
            crl_file: self.peer_crl_file.clone(),
            auto_tls: self.peer_auto_tls,
            allowed_cn: self.peer_cert_allowed_cn.clone(),
            allowed_hostname: self.peer_cert_allowed_hostname.clone(),
            cipher_suites: self.suites(),
            ..TlsInfo::new(Side::Peer)
        }
    }
}
