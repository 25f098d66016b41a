//! Command-line configuration with etcd's flag names, meanings and defaults, so a Procfile
//! written for etcd runs Cairn by changing only the binary name. Flags are the only source of
//! configuration: nothing overrides them silently.

pub mod env;
mod etcd_only;
pub mod file;
mod tls;

pub use etcd_only::EtcdOnlyArgs;
pub use tls::TlsArgs;

use crate::tls::TlsInfo;
use clap::{Args, ValueEnum};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Path to the data directory [default: <name>.cairn].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// List of URLs to listen on for client traffic.
    #[arg(long, default_value = "http://localhost:2379")]
    pub listen_client_urls: String,
    /// List of this member's client URLs to advertise to the public.
    #[arg(long, default_value = "http://localhost:2379")]
    pub advertise_client_urls: String,
    /// Path to etcd's YAML configuration file; when given, the other flags and ETCD_*
    /// variables are ignored, as in etcd.
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// Additional URLs to serve /metrics and /health on (as etcd's --listen-metrics-urls).
    #[arg(long, default_value = "")]
    pub listen_metrics_urls: String,
    /// List of URLs to listen on for peer traffic.
    #[arg(long, default_value = "http://localhost:2380")]
    pub listen_peer_urls: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping [default: <name>=<initial advertise peer urls>].
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// Initial cluster state.
    #[arg(long, value_enum, default_value = "new")]
    pub initial_cluster_state: ClusterState,
    /// Initial cluster token for the cluster during bootstrap.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,
    /// Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub quota_backend_bytes: i64,
    /// Interpret 'auto-compaction-retention' one of: 'periodic', 'revision'.
    #[arg(long, default_value = "periodic")]
    pub auto_compaction_mode: String,
    /// Auto compaction retention for mvcc key value store. 0 means disable auto compaction.
    #[arg(long, default_value = "0")]
    pub auto_compaction_retention: String,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, default_value_t = 128)]
    pub max_txn_ops: usize,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, default_value_t = 1_572_864)]
    pub max_request_bytes: usize,
    /// Maximum concurrent streams that each client can open at a time.
    #[arg(long, default_value_t = u32::MAX)]
    pub max_concurrent_streams: u32,
    /// Reject reconfiguration requests that would cause quorum loss.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub strict_reconfig_check: bool,
    /// Check the consistency of this member's data with its peers' before serving.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub experimental_initial_corrupt_check: bool,
    /// Start from this member's data as a one-member cluster: the other members are removed
    /// (the data, the cluster id and this member's id stay). For recovering from the loss of
    /// a majority; add the others back as new members afterwards.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub force_new_cluster: bool,
    /// Metrics: 'basic', or 'extensive' to add gRPC handling time histograms.
    #[arg(long, default_value = "basic")]
    pub metrics: String,
    /// Serve runtime profiling data (a CPU profile, a heap summary) at /debug/pprof/.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub enable_pprof: bool,
    /// Logger: 'capnslog' (text lines) or 'zap' (JSON lines, as etcd's zap logger writes them).
    #[arg(long, default_value = "capnslog")]
    pub logger: String,
    /// Duration of periodic watch progress notifications (e.g. 10m, 30s, 500ms).
    #[arg(long, default_value = "10m")]
    pub experimental_watch_progress_notify_interval: String,
    /// Auth token type and its options: 'simple', or
    /// 'jwt,pub-key=<file>,priv-key=<file>,sign-method=<RS256|ES256|HS256|...>,ttl=<duration>'.
    #[arg(long, default_value = "simple")]
    pub auth_token: String,
    /// Seconds a simple token lives unused.
    #[arg(long, default_value_t = 300)]
    pub auth_token_ttl: u64,
    /// bcrypt's cost factor for hashing auth passwords (4 to 31).
    #[arg(long, default_value_t = 10)]
    pub bcrypt_cost: u32,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Log level: debug, info, warn, error.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Where logs go: 'default' or 'stderr', 'stdout', or a file's path.
    #[arg(long, default_value = "default")]
    pub log_outputs: String,
    /// Log at debug level (etcd 3.4's older flag for --log-level debug).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub debug: bool,
    #[command(flatten)]
    pub etcd_only: EtcdOnlyArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClusterState {
    New,
    Existing,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client: Vec<ListenUrl>,
    /// Where /metrics and /health are also served (plain, or with the client side's TLS).
    pub listen_metrics: Vec<ListenUrl>,
    pub listen_peer: Vec<ListenUrl>,
    pub client_tls: TlsInfo,
    pub peer_tls: TlsInfo,
    pub advertise_client_urls: Vec<String>,
    pub initial_advertise_peer_urls: Vec<String>,
    /// (name, peer URLs) in flag order.
    pub initial_cluster: Vec<(String, Vec<String>)>,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    pub snapshot_count: u64,
    pub heartbeat: Duration,
    pub election_ticks: usize,
    pub max_txn_ops: usize,
    pub max_request_bytes: usize,
    pub max_concurrent_streams: u32,
    pub strict_reconfig_check: bool,
    pub initial_corrupt_check: bool,
    pub force_new_cluster: bool,
    pub watch_progress_interval: Duration,
    pub log_level: String,
    pub logger: String,
    /// --metrics extensive: gRPC handling time histograms too.
    pub metrics_extensive: bool,
    pub enable_pprof: bool,
    pub auto_compaction: Option<Policy>,
    pub quota_bytes: Option<u64>,
    /// --auth-token as given (its key files are read when the member opens).
    pub auth_token: String,
    pub auth_token_ttl: Duration,
    pub bcrypt_cost: u32,
    /// Where logs go: None for stderr, or a file.
    pub log_file: Option<PathBuf>,
    pub log_to_stdout: bool,
    /// etcd's flags given that change nothing here, each with why (reported at start).
    pub ignored_flags: Vec<String>,
}

/// --auto-compaction-mode and -retention, read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Periodic(Duration),
    Revision(i64),
}

/// etcd's reading of the flags: a bare number is hours (periodic) or revisions (revision);
/// otherwise a duration. Retention 0 turns automatic compaction off.
pub fn policy(mode: &str, retention: &str) -> Result<Option<Policy>, String> {
    if let Ok(n) = retention.parse::<i64>() {
        return match (n, mode) {
            (0, _) => Ok(None),
            (n, _) if n < 0 => Err(format!("--auto-compaction-retention: {retention:?} must not be negative")),
            (n, "periodic") => Ok(Some(Policy::Periodic(Duration::from_secs(n as u64 * 3600)))),
            (n, _) => Ok(Some(Policy::Revision(n))),
        };
    }
    match (parse_duration(retention), mode) {
        (Some(d), "periodic") => Ok(Some(Policy::Periodic(d))),
        (Some(_), _) => {
            Err(format!("--auto-compaction-retention: revision mode takes a number of revisions, not {retention:?}"))
        }
        (None, _) if matches!(retention, "0s" | "0m" | "0h") => Ok(None),
        (None, _) => Err(format!("--auto-compaction-retention: error parsing CompactionRetention: {retention:?}")),
    }
}

/// etcd's default backend quota.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;

/// A Go-style duration: a number and a unit (ms, s, m, h).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

pub fn split_urls(flag: &str, s: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = s.split(',').map(|u| u.trim().to_string()).filter(|u| !u.is_empty()).collect();
    if urls.is_empty() {
        return Err(format!("--{flag} must list at least one URL"));
    }
    for u in &urls {
        let parsed = url::Url::parse(u).map_err(|e| format!("--{flag}: {u:?}: {e}"))?;
        match parsed.scheme() {
            "http" | "https" => {}
            // A unix socket's path is the URL's host and path (etcd's rule): nothing to check.
            "unix" | "unixs" => continue,
            other => return Err(format!("--{flag}: {u}: URL scheme must be http, https, unix, or unixs: {other}")),
        }
        if !matches!(parsed.path(), "" | "/") {
            return Err(format!("--{flag}: {u}: URL must not contain a path"));
        }
        if parsed.port().is_none() {
            return Err(format!("--{flag}: {u}: URL address does not have the form \"host:port\""));
        }
    }
    Ok(urls)
}

/// A URL to listen on: where, and whether with TLS (https, unixs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenUrl {
    pub addr: ListenAddr,
    pub tls: bool,
}

fn is_tls_url(u: &str) -> bool {
    u.starts_with("https://") || u.starts_with("unixs://")
}

/// The host names and addresses of URLs (a self-signed certificate is made valid for them).
fn hosts_of(urls: &[String]) -> Vec<String> {
    urls.iter()
        .filter_map(|u| url::Url::parse(u).ok())
        .filter_map(|u| u.host_str().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string()))
        .collect()
}

/// Where a listener listens: a TCP address, or a unix socket's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A listen URL, resolved (see `listen_addr`).
fn listen_url(u: &str) -> Result<ListenUrl, String> {
    Ok(ListenUrl { addr: listen_addr(u)?, tls: is_tls_url(u) })
}

fn listen_urls(urls: &[String]) -> Result<Vec<ListenUrl>, String> {
    urls.iter().map(|u| listen_url(u)).collect()
}

/// Resolves a listen URL to one address; `localhost` binds loopback IPv4 as etcd does.
fn listen_addr(u: &str) -> Result<ListenAddr, String> {
    // `unix://etcd.unix:1` is the socket file `etcd.unix:1`, as etcd reads it.
    if let Some(path) = cairn_api::dial::unix_socket(u) {
        return Ok(ListenAddr::Unix(path));
    }
    let parsed = url::Url::parse(u).map_err(|e| e.to_string())?;
    let host = parsed.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port().unwrap_or(0);
    let mut addrs: Vec<SocketAddr> =
        (host, port).to_socket_addrs().map_err(|e| format!("cannot resolve {u}: {e}"))?.collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs.into_iter().next().map(ListenAddr::Tcp).ok_or_else(|| format!("{u} resolves to no address"))
}

pub fn parse_initial_cluster(s: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) =
            part.split_once('=').ok_or_else(|| format!("--initial-cluster: {part:?} is not of the form name=url"))?;
        split_urls("initial-cluster", url)?;
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, urls)) => urls.push(url.to_string()),
            None => out.push((name.to_string(), vec![url.to_string()])),
        }
    }
    if out.is_empty() {
        return Err("--initial-cluster is empty".into());
    }
    Ok(out)
}

impl ServerArgs {
    pub fn validate(&self) -> Result<Config, String> {
        if self.heartbeat_interval == 0 {
            return Err("--heartbeat-interval must be greater than 0".into());
        }
        if self.election_timeout < 5 * self.heartbeat_interval {
            return Err(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout, self.heartbeat_interval
            ));
        }
        let metrics_extensive = match self.metrics.as_str() {
            "basic" => false,
            "extensive" => true,
            other => return Err(format!("unknown metrics option {other:?} (use 'basic' or 'extensive')")),
        };
        if !matches!(self.logger.as_str(), "capnslog" | "zap") {
            return Err(format!("unknown logger type {:?} (use 'capnslog' or 'zap')", self.logger));
        }
        if !matches!(self.log_level.as_str(), "debug" | "info" | "warn" | "error") {
            return Err(format!("--log-level: {:?} is not one of debug, info, warn, error", self.log_level));
        }
        let ignored_flags = self.etcd_only.check()?;
        let (log_file, log_to_stdout) = match self.log_outputs.as_str() {
            "default" | "stderr" => (None, false),
            "stdout" => (None, true),
            o if o.contains(',') => return Err(format!("--log-outputs {o:?}: Cairn writes its log to one output")),
            path => (Some(PathBuf::from(path)), false),
        };
        if self.snapshot_count == 0 {
            return Err("--snapshot-count must be greater than 0".into());
        }
        match self.auto_compaction_mode.as_str() {
            "periodic" | "revision" => {}
            m => return Err(format!("unknown auto-compaction-mode {m:?}")),
        }
        let auto_compaction = policy(&self.auto_compaction_mode, &self.auto_compaction_retention)?;
        // etcd: 0 is the default quota (2 GiB), a negative quota none at all.
        let quota_bytes = match self.quota_backend_bytes {
            0 => Some(DEFAULT_QUOTA_BYTES),
            q if q < 0 => None,
            q => Some(q as u64),
        };
        let listen_client_urls = split_urls("listen-client-urls", &self.listen_client_urls)?;
        let listen_client = listen_urls(&listen_client_urls)?;
        let listen_metrics_urls = match self.listen_metrics_urls.trim() {
            "" => Vec::new(),
            urls => split_urls("listen-metrics-urls", urls)?,
        };
        let listen_metrics = listen_urls(&listen_metrics_urls)?;
        let advertise_client_urls = split_urls("advertise-client-urls", &self.advertise_client_urls)?;
        let listen_peer_urls = split_urls("listen-peer-urls", &self.listen_peer_urls)?;
        let listen_peer = listen_urls(&listen_peer_urls)?;
        let apurls = split_urls("initial-advertise-peer-urls", &self.initial_advertise_peer_urls)?;
        let initial_cluster = match &self.initial_cluster {
            Some(s) => parse_initial_cluster(s)?,
            None => vec![(self.name.clone(), apurls.clone())],
        };
        let mine = initial_cluster.iter().find(|(n, _)| *n == self.name);
        let mut want: Vec<&String> = apurls.iter().collect();
        want.sort();
        match mine {
            None => {
                return Err(format!("couldn't find local name {:?} in the initial cluster configuration", self.name))
            }
            Some((_, urls)) => {
                let mut have: Vec<&String> = urls.iter().collect();
                have.sort();
                if have != want {
                    return Err(format!(
                        "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={}",
                        self.name,
                        urls.join(","),
                        apurls.join(",")
                    ));
                }
            }
        }
        // TLS on each side, checked against the URLs it must serve.
        let mut client_tls = self.tls.client();
        client_tls.hosts = hosts_of(&listen_client_urls);
        let client_https: Vec<String> =
            listen_client_urls.iter().chain(&advertise_client_urls).filter(|u| is_tls_url(u)).cloned().collect();
        client_tls.check(&client_https).map_err(|e| e.to_string())?;
        if let Some(u) = listen_metrics_urls.iter().find(|u| is_tls_url(u)).filter(|_| !client_tls.enabled()) {
            return Err(format!(
                "--listen-metrics-urls {u}: https needs the client TLS flags (--cert-file, --key-file)"
            ));
        }
        let mut peer_tls = self.tls.peer();
        peer_tls.hosts = hosts_of(&listen_peer_urls);
        let peer_https: Vec<String> =
            listen_peer_urls.iter().chain(&apurls).filter(|u| is_tls_url(u)).cloned().collect();
        peer_tls.check(&peer_https).map_err(|e| e.to_string())?;
        let heartbeat = Duration::from_millis(self.heartbeat_interval);
        let watch_progress_interval =
            parse_duration(&self.experimental_watch_progress_notify_interval).ok_or_else(|| {
                format!(
                    "--experimental-watch-progress-notify-interval: {:?} is not a duration like 10m or 500ms",
                    self.experimental_watch_progress_notify_interval
                )
            })?;
        Ok(Config {
            name: self.name.clone(),
            data_dir: self.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.cairn", self.name))),
            listen_client,
            listen_metrics,
            listen_peer,
            client_tls,
            peer_tls,
            advertise_client_urls,
            initial_advertise_peer_urls: apurls,
            initial_cluster,
            initial_cluster_state: self.initial_cluster_state,
            initial_cluster_token: self.initial_cluster_token.clone(),
            snapshot_count: self.snapshot_count,
            heartbeat,
            election_ticks: (self.election_timeout / self.heartbeat_interval) as usize,
            max_txn_ops: self.max_txn_ops,
            max_request_bytes: self.max_request_bytes,
            max_concurrent_streams: self.max_concurrent_streams,
            strict_reconfig_check: self.strict_reconfig_check,
            initial_corrupt_check: self.experimental_initial_corrupt_check,
            force_new_cluster: self.force_new_cluster,
            watch_progress_interval,
            log_level: if self.debug { "debug".into() } else { self.log_level.clone() },
            logger: self.logger.clone(),
            metrics_extensive,
            enable_pprof: self.enable_pprof,
            auto_compaction,
            quota_bytes,
            auth_token: self.auth_token.clone(),
            auth_token_ttl: Duration::from_secs(self.auth_token_ttl),
            bcrypt_cost: self.bcrypt_cost,
            log_file,
            log_to_stdout,
            ignored_flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_reads_as_etcd_reads_it() {
        assert_eq!(policy("periodic", "0"), Ok(None));
        assert_eq!(policy("periodic", "1"), Ok(Some(Policy::Periodic(Duration::from_secs(3600)))));
        assert_eq!(policy("periodic", "30m"), Ok(Some(Policy::Periodic(Duration::from_secs(1800)))));
        assert_eq!(policy("revision", "1000"), Ok(Some(Policy::Revision(1000))));
        assert!(policy("revision", "1h").is_err());
        assert!(policy("periodic", "soon").is_err());
        assert!(policy("periodic", "-1").is_err());
    }
}
