//! etcd 3.4's flags that have no meaning for Cairn, or that Cairn does not implement. Each is
//! accepted, so that a command line or an environment written for etcd starts Cairn; one that
//! changes nothing is reported once at start; one whose absence would weaken safety or
//! security (or leave the member doing something else than asked) stops the start instead.

use clap::Args;

/// `--flag`, `--flag=true` or `--flag=false`, as Go's flag package takes a boolean.
macro_rules! go_bool_text {
    () => {
        clap::ArgAction::Set
    };
}

#[derive(Args, Debug, Clone, Default)]
pub struct EtcdOnlyArgs {
    #[arg(long, hide = true)]
    pub backend_batch_interval: Option<String>,
    #[arg(long, hide = true)]
    pub backend_batch_limit: Option<String>,
    #[arg(long, hide = true)]
    pub experimental_backend_bbolt_freelist_type: Option<String>,
    #[arg(long, hide = true)]
    pub experimental_compaction_batch_limit: Option<String>,
    #[arg(long, hide = true)]
    pub max_snapshots: Option<String>,
    #[arg(long, hide = true)]
    pub max_wals: Option<String>,
    #[arg(long, hide = true)]
    pub experimental_warning_apply_duration: Option<String>,
    #[arg(long, hide = true)]
    pub log_package_levels: Option<String>,
    #[arg(long, hide = true, action = go_bool_text!(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub initial_election_tick_advance: Option<String>,
    #[arg(long, hide = true, action = go_bool_text!(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub pre_vote: Option<String>,
    #[arg(long, hide = true, action = go_bool_text!(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub experimental_enable_lease_checkpoint: Option<String>,
    #[arg(long, hide = true)]
    pub experimental_corrupt_check_time: Option<String>,
    #[arg(long, hide = true, action = go_bool_text!(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub experimental_peer_skip_client_san_verification: Option<String>,
    #[arg(long, hide = true)]
    pub grpc_keepalive_min_time: Option<String>,
    #[arg(long, hide = true)]
    pub grpc_keepalive_interval: Option<String>,
    #[arg(long, hide = true)]
    pub grpc_keepalive_timeout: Option<String>,
    #[arg(long, hide = true)]
    pub experimental_enable_v2v3: Option<String>,
    #[arg(long, hide = true, action = go_bool_text!(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub enable_v2: Option<String>,
    #[arg(long, hide = true)]
    pub cors: Option<String>,
    #[arg(long, hide = true)]
    pub host_whitelist: Option<String>,
    #[arg(long, hide = true)]
    pub discovery: Option<String>,
    #[arg(long, hide = true)]
    pub discovery_srv: Option<String>,
    #[arg(long, hide = true)]
    pub discovery_srv_name: Option<String>,
    #[arg(long, hide = true)]
    pub discovery_fallback: Option<String>,
    #[arg(long, hide = true)]
    pub discovery_proxy: Option<String>,
    #[arg(long, hide = true)]
    pub proxy: Option<String>,
    #[arg(long, hide = true)]
    pub proxy_failure_wait: Option<String>,
    #[arg(long, hide = true)]
    pub proxy_refresh_interval: Option<String>,
    #[arg(long, hide = true)]
    pub proxy_dial_timeout: Option<String>,
    #[arg(long, hide = true)]
    pub proxy_write_timeout: Option<String>,
    #[arg(long, hide = true)]
    pub proxy_read_timeout: Option<String>,
    #[arg(long, hide = true)]
    pub wal_dir: Option<String>,
}

/// Go's strconv.ParseBool.
fn go_bool(flag: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid boolean value {v:?} for --{flag}")),
    }
}

impl EtcdOnlyArgs {
    /// The flags given that change nothing, each with why; or why the start must stop.
    pub fn check(&self) -> Result<Vec<String>, String> {
        let mut ignored = Vec::new();
        let mut note = |flag: &str, v: &Option<String>, why: &str| {
            if v.is_some() {
                ignored.push(format!("--{flag} has no effect in Cairn: {why}"));
            }
        };
        let bbolt = "it tunes etcd's bbolt backend";
        note("backend-batch-interval", &self.backend_batch_interval, bbolt);
        note("backend-batch-limit", &self.backend_batch_limit, bbolt);
        note("experimental-backend-bbolt-freelist-type", &self.experimental_backend_bbolt_freelist_type, bbolt);
        note("experimental-compaction-batch-limit", &self.experimental_compaction_batch_limit, bbolt);
        let files = "Cairn releases WAL segments and snapshot files once a snapshot covers them";
        note("max-snapshots", &self.max_snapshots, files);
        note("max-wals", &self.max_wals, files);
        note("experimental-warning-apply-duration", &self.experimental_warning_apply_duration, "no slow-apply warning");
        note("log-package-levels", &self.log_package_levels, "Go package log levels; use --log-level");
        note(
            "initial-election-tick-advance",
            &self.initial_election_tick_advance,
            "elections start after a full timeout",
        );
        note("pre-vote", &self.pre_vote, "raft's pre-vote is not used");
        let checkpoint = "a lease's remaining TTL restarts on a new leader, as etcd 3.4 does by default";
        note("experimental-enable-lease-checkpoint", &self.experimental_enable_lease_checkpoint, checkpoint);
        let corrupt = "no periodic corruption check yet (--experimental-initial-corrupt-check is)";
        note("experimental-corrupt-check-time", &self.experimental_corrupt_check_time, corrupt);
        let san = "peer certificates' SANs are always checked";
        note(
            "experimental-peer-skip-client-san-verification",
            &self.experimental_peer_skip_client_san_verification,
            san,
        );
        let keepalive = "gRPC keep-alive settings are hyper's defaults";
        note("grpc-keepalive-min-time", &self.grpc_keepalive_min_time, keepalive);
        note("grpc-keepalive-interval", &self.grpc_keepalive_interval, keepalive);
        note("grpc-keepalive-timeout", &self.grpc_keepalive_timeout, keepalive);
        note("experimental-enable-v2v3", &self.experimental_enable_v2v3, "the v2 API is not served");
        let discovery = "discovery is not used (give --initial-cluster)";
        note("discovery-srv-name", &self.discovery_srv_name, discovery);
        note("discovery-fallback", &self.discovery_fallback, discovery);
        note("discovery-proxy", &self.discovery_proxy, discovery);
        let proxy = "Cairn has no v2 proxy mode";
        note("proxy-failure-wait", &self.proxy_failure_wait, proxy);
        note("proxy-refresh-interval", &self.proxy_refresh_interval, proxy);
        note("proxy-dial-timeout", &self.proxy_dial_timeout, proxy);
        note("proxy-write-timeout", &self.proxy_write_timeout, proxy);
        note("proxy-read-timeout", &self.proxy_read_timeout, proxy);
        for (flag, v) in [
            ("initial-election-tick-advance", &self.initial_election_tick_advance),
            ("pre-vote", &self.pre_vote),
            ("experimental-enable-lease-checkpoint", &self.experimental_enable_lease_checkpoint),
            ("experimental-peer-skip-client-san-verification", &self.experimental_peer_skip_client_san_verification),
        ] {
            if let Some(v) = v {
                go_bool(flag, v)?;
            }
        }
        // What would leave the member less safe, less protected or doing something else than
        // asked, had it been ignored.
        if let Some(v) = &self.enable_v2 {
            if go_bool("enable-v2", v)? {
                return Err("--enable-v2: Cairn does not serve the v2 API (off by default in etcd 3.4)".into());
            }
        }
        for (flag, v) in [("cors", &self.cors), ("host-whitelist", &self.host_whitelist)] {
            if v.as_deref().is_some_and(|v| v.split(',').any(|h| h.trim() != "*")) {
                return Err(format!("--{flag}: only \"*\" (etcd's default) is supported"));
            }
        }
        if self.discovery.is_some() || self.discovery_srv.is_some() {
            return Err("--discovery and --discovery-srv are not supported: give --initial-cluster".into());
        }
        if self.proxy.as_deref().is_some_and(|p| p != "off") {
            return Err("--proxy: Cairn has no v2 proxy mode (only \"off\")".into());
        }
        if self.wal_dir.as_deref().is_some_and(|d| !d.is_empty()) {
            return Err("--wal-dir is not supported: Cairn keeps its WAL under --data-dir".into());
        }
        Ok(ignored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harmless_flags_are_reported_and_unsafe_ones_refused() {
        let a = EtcdOnlyArgs { max_wals: Some("5".into()), pre_vote: Some("true".into()), ..Default::default() };
        let ignored = a.check().unwrap();
        assert_eq!(ignored.len(), 2, "{ignored:?}");
        assert!(ignored[0].starts_with("--max-wals has no effect"));
        let a = EtcdOnlyArgs { enable_v2: Some("false".into()), cors: Some("*".into()), ..Default::default() };
        assert_eq!(a.check().unwrap(), Vec::<String>::new());
        for unsafe_one in [
            EtcdOnlyArgs { enable_v2: Some("true".into()), ..Default::default() },
            EtcdOnlyArgs { cors: Some("https://example.com".into()), ..Default::default() },
            EtcdOnlyArgs { host_whitelist: Some("example.com".into()), ..Default::default() },
            EtcdOnlyArgs { discovery: Some("https://discovery.etcd.io/x".into()), ..Default::default() },
            EtcdOnlyArgs { proxy: Some("on".into()), ..Default::default() },
            EtcdOnlyArgs { wal_dir: Some("/wal".into()), ..Default::default() },
            EtcdOnlyArgs { pre_vote: Some("maybe".into()), ..Default::default() },
        ] {
            assert!(unsafe_one.check().is_err(), "{unsafe_one:?}");
        }
    }
}
