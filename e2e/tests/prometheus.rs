//! A real Prometheus (Debian's, 2.42) scraping a three-member Cairn cluster under a short
//! load: the expressions of etcd's standard alerts (the etcd mixin's, and etcd 3.5's database
//! quota alert) evaluate to series for every member, and SIGKILLing a member makes the
//! members-down expression fire. promtool reads Cairn's /metrics and finds nothing to lint
//! that it does not find in etcd 3.4's own.

use cairn_e2e::harness::{etcdctl, free_port, http_get, require_tool, Kind, Member};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Prometheus {
    child: Child,
    addr: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `targets` every second as job "etcd", the job name etcd's alerts select.
    fn start(dir: &Path, targets: &[String]) -> Prometheus {
        let bin = require_tool("prometheus");
        let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: etcd\n    static_configs:\n      - targets: [{}]\n",
            quoted.join(", ")
        );
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(&p.addr, "/-/ready").map(|(s, _)| s) != Some(200) {
            assert!(Instant::now() < deadline, "prometheus not ready:\n{}", read(dir, "prometheus.log"));
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// The series an instant query returns.
    fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let q: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let (status, body) = http_get(&self.addr, &format!("/api/v1/query?query={q}")).expect("prometheus answers");
        assert_eq!(status, 200, "{expr}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls until `expr` returns series for each of `instances` (or, when empty, any).
    fn wait_for(&self, expr: &str, instances: &BTreeSet<String>, within: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let series = self.query(expr);
            let seen: BTreeSet<String> =
                series.iter().filter_map(|s| s["metric"]["instance"].as_str().map(String::from)).collect();
            if !series.is_empty() && (instances.is_empty() || seen == *instances) {
                return series;
            }
            assert!(Instant::now() < deadline, "{expr}: no series for {instances:?} within {within:?}; got {series:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_default()
}

/// etcd's alert expressions, each with its threshold compared `bool` so that it evaluates to
/// a series whether or not it fires; and whether the series are per member (`instance`).
const ALERTS: &[(&str, &str, bool)] = &[
    (
        "etcdMembersDown",
        r#"max by (job) (sum by (job) (up{job="etcd"} == bool 0) or count by (job,endpoint) (sum by (job,endpoint,To) (rate(etcd_network_peer_sent_failures_total{job="etcd"}[3m])) > 0.01)) > bool 0"#,
        false,
    ),
    (
        "etcdInsufficientMembers",
        r#"sum(up{job="etcd"} == bool 1) by (job) < bool ((count(up{job="etcd"}) by (job) + 1) / 2)"#,
        false,
    ),
    ("etcdNoLeader", r#"etcd_server_has_leader{job="etcd"} == bool 0"#, true),
    ("etcdHighNumberOfLeaderChanges", r#"rate(etcd_server_leader_changes_seen_total{job="etcd"}[15m]) > bool 3"#, true),
    (
        "etcdHighNumberOfFailedGRPCRequests",
        r#"100 * sum(rate(grpc_server_handled_total{job="etcd", grpc_code!="OK"}[5m])) BY (job, instance, grpc_service, grpc_method) / sum(rate(grpc_server_handled_total{job="etcd"}[5m])) BY (job, instance, grpc_service, grpc_method) > bool 1"#,
        true,
    ),
    (
        "etcdGRPCRequestsSlow",
        r#"histogram_quantile(0.99, sum(rate(grpc_server_handling_seconds_bucket{job="etcd", grpc_type="unary"}[5m])) by (job, instance, grpc_service, grpc_method, le)) > bool 0.15"#,
        true,
    ),
    (
        "etcdMemberCommunicationSlow",
        r#"histogram_quantile(0.99, rate(etcd_network_peer_round_trip_time_seconds_bucket{job="etcd"}[5m])) > bool 0.15"#,
        true,
    ),
    ("etcdHighNumberOfFailedProposals", r#"rate(etcd_server_proposals_failed_total{job="etcd"}[15m]) > bool 5"#, true),
    (
        "etcdHighFsyncDurations",
        r#"histogram_quantile(0.99, rate(etcd_disk_wal_fsync_duration_seconds_bucket{job="etcd"}[5m])) > bool 0.5"#,
        true,
    ),
    (
        "etcdHighCommitDurations",
        r#"histogram_quantile(0.99, rate(etcd_disk_backend_commit_duration_seconds_bucket{job="etcd"}[5m])) > bool 0.25"#,
        true,
    ),
    (
        "etcdDatabaseQuotaLowSpace",
        r#"(last_over_time(etcd_mvcc_db_total_size_in_bytes{job="etcd"}[5m]) / last_over_time(etcd_server_quota_backend_bytes{job="etcd"}[5m]))*100 > bool 95"#,
        true,
    ),
];

/// The queries of the etcd mixin's Grafana dashboard (`$cluster` is the job).
const DASHBOARD: &[&str] = &[
    r#"sum(etcd_server_has_leader{job="etcd"})"#,
    r#"sum(rate(grpc_server_started_total{job="etcd",grpc_type="unary"}[5m]))"#,
    r#"sum(rate(grpc_server_handled_total{job="etcd",grpc_type="unary",grpc_code!="OK"}[5m]))"#,
    r#"sum(grpc_server_started_total{job="etcd",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}) - sum(grpc_server_handled_total{job="etcd",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"})"#,
    r#"sum(grpc_server_started_total{job="etcd",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"}) - sum(grpc_server_handled_total{job="etcd",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"})"#,
    r#"etcd_debugging_mvcc_db_total_size_in_bytes{job="etcd"}"#,
    r#"histogram_quantile(0.99, sum(rate(etcd_disk_wal_fsync_duration_seconds_bucket{job="etcd"}[5m])) by (instance, le))"#,
    r#"histogram_quantile(0.99, sum(rate(etcd_disk_backend_commit_duration_seconds_bucket{job="etcd"}[5m])) by (instance, le))"#,
    r#"process_resident_memory_bytes{job="etcd"}"#,
    r#"rate(etcd_network_client_grpc_received_bytes_total{job="etcd"}[5m])"#,
    r#"rate(etcd_network_client_grpc_sent_bytes_total{job="etcd"}[5m])"#,
    r#"sum(rate(etcd_network_peer_received_bytes_total{job="etcd"}[5m])) by (instance)"#,
    r#"sum(rate(etcd_network_peer_sent_bytes_total{job="etcd"}[5m])) by (instance)"#,
    r#"sum(rate(etcd_server_proposals_failed_total{job="etcd"}[5m]))"#,
    r#"sum(etcd_server_proposals_pending{job="etcd"})"#,
    r#"sum(rate(etcd_server_proposals_committed_total{job="etcd"}[5m]))"#,
    r#"sum(rate(etcd_server_proposals_applied_total{job="etcd"}[5m]))"#,
    r#"changes(etcd_server_leader_changes_seen_total{job="etcd"}[1d])"#,
];

#[test]
fn etcd_alerts_evaluate_against_cairn_and_members_down_fires() {
    let dir = tempfile::tempdir().unwrap();
    // Extensive: the gRPC latency histograms the slow-requests alert reads.
    let mut members = Member::start_cluster(Kind::Cairn, dir.path(), 3, &["--metrics=extensive"]);
    let targets: Vec<String> = members.iter().map(|m| m.client_addr.clone()).collect();
    let prometheus = Prometheus::start(dir.path(), &targets);

    // A short load, through every member.
    for i in 0..60 {
        let m = &members[i % 3];
        let o = etcdctl(&m.client_addr, &["put".into(), format!("k{i}"), "v".into()], None);
        assert!(o.stdout.contains("OK"), "put k{i}: {}{}", o.stdout, o.errors);
    }
    let all: BTreeSet<String> = targets.iter().cloned().collect();
    for (alert, expr, per_member) in ALERTS {
        let instances = if *per_member { all.clone() } else { BTreeSet::new() };
        let series = prometheus.wait_for(expr, &instances, Duration::from_secs(60));
        if !per_member {
            // Cluster-wide expressions: one series for job "etcd", not firing yet.
            assert_eq!(series.len(), 1, "{alert}: {series:?}");
            assert_eq!(series[0]["value"][1], "0", "{alert} with every member up: {series:?}");
        }
    }

    for query in DASHBOARD {
        prometheus.wait_for(query, &BTreeSet::new(), Duration::from_secs(60));
    }
    // Each of the 60 puts was counted where it was served, and Prometheus has them all.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let q = prometheus.query(r#"sum(grpc_server_handled_total{job="etcd",grpc_method="Put",grpc_code="OK"})"#);
        let puts: f64 = q.first().and_then(|s| s["value"][1].as_str()).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        if puts == 60.0 {
            break;
        }
        assert!(puts < 60.0 && Instant::now() < deadline, "puts counted: {q:?}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // A member killed: up == 0 for it, and the alert's own expression (no `bool`) fires.
    members[2].kill9();
    let fired = prometheus.wait_for(
        r#"max by (job) (sum by (job) (up{job="etcd"} == bool 0) or count by (job,endpoint) (sum by (job,endpoint,To) (rate(etcd_network_peer_sent_failures_total{job="etcd"}[3m])) > 0.01)) > 0"#,
        &BTreeSet::new(),
        Duration::from_secs(60),
    );
    assert_eq!(fired[0]["metric"]["job"], "etcd", "{fired:?}");
    assert_eq!(fired[0]["value"][1], "1", "one member down: {fired:?}");
}

/// promtool's findings on a /metrics text: (exit code, the lint lines).
fn promtool_check(text: &str) -> (i32, BTreeSet<String>) {
    use std::io::Write;
    let mut child = Command::new(require_tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), lines.lines().map(String::from).collect())
}

#[test]
fn promtool_finds_nothing_in_cairn_it_does_not_find_in_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Member::start(Kind::Etcd, &dir.path().join("etcd"), &[]);
    let cairn = Member::start(Kind::Cairn, &dir.path().join("cairn"), &[]);
    for m in [&etcd, &cairn] {
        assert!(m.ctl(&["put", "k", "v"]).contains("OK"));
    }
    let scrape = |m: &Member| http_get(&m.client_addr, "/metrics").expect("metrics").1;
    let (etcd_code, etcd_lint) = promtool_check(&scrape(&etcd));
    let (code, lint) = promtool_check(&scrape(&cairn));
    // 0: clean; 3: lint findings only (etcd's own names have some). 1 would be a parse error.
    assert!(etcd_code == 3 && !etcd_lint.is_empty(), "etcd's findings are the reference: {etcd_lint:?}");
    assert!(code == 0 || code == 3, "promtool could not read Cairn's metrics ({code}): {lint:?}");
    let extra: Vec<&String> = lint.difference(&etcd_lint).collect();
    assert!(extra.is_empty(), "findings in Cairn's metrics that etcd's do not have: {extra:?}");
}
