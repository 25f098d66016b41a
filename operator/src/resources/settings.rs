//! `spec.etcd` as the member's flags, etcd's names and meanings.

use crate::crd::{CompactionMode, EtcdSpec, LogLevel};

pub fn flags(e: &EtcdSpec) -> Vec<String> {
    let mode = match e.auto_compaction_mode {
        CompactionMode::Periodic => "periodic",
        CompactionMode::Revision => "revision",
    };
    let mut out = vec![
        format!("--auto-compaction-mode={mode}"),
        format!("--auto-compaction-retention={}", e.auto_compaction_retention),
    ];
    // The schema's pattern lets only quantities through.
    if let Some(bytes) = e.quota_backend_bytes.as_deref().and_then(crate::units::quantity) {
        out.push(format!("--quota-backend-bytes={bytes}"));
    }
    let numbers = [
        ("snapshot-count", e.snapshot_count),
        ("heartbeat-interval", e.heartbeat_interval),
        ("election-timeout", e.election_timeout),
        ("max-request-bytes", e.max_request_bytes),
        ("max-txn-ops", e.max_txn_ops),
    ];
    out.extend(numbers.iter().filter_map(|(flag, v)| v.map(|v| format!("--{flag}={v}"))));
    if let Some(level) = e.log_level {
        let level = match level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        out.push(format!("--log-level={level}"));
    }
    out.extend(e.extra_flags.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_compact_hourly_and_every_setting_is_its_flag() {
        assert_eq!(flags(&EtcdSpec::default()), ["--auto-compaction-mode=periodic", "--auto-compaction-retention=1h"]);
        let e: EtcdSpec = serde_yaml::from_str(
            "{autoCompactionMode: revision, autoCompactionRetention: '10000', quotaBackendBytes: 8Gi, snapshotCount: 5000, \
             heartbeatInterval: 200, electionTimeout: 2000, maxRequestBytes: 3000000, maxTxnOps: 256, logLevel: warn, \
             extraFlags: [--experimental-x=1]}",
        )
        .unwrap();
        assert_eq!(
            flags(&e),
            [
                "--auto-compaction-mode=revision",
                "--auto-compaction-retention=10000",
                "--quota-backend-bytes=8589934592",
                "--snapshot-count=5000",
                "--heartbeat-interval=200",
                "--election-timeout=2000",
                "--max-request-bytes=3000000",
                "--max-txn-ops=256",
                "--log-level=warn",
                "--experimental-x=1",
            ]
        );
    }
}
