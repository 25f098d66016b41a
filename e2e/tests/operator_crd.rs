//! The generated CairnCluster CRD on kube-sim, as `kubectl apply` users meet it: its rules
//! (odd replicas, by a CEL rule), its defaults, its printer columns, and the sample CRs in
//! config/ all valid under it.

use cairn_e2e::sim::KubeSim;
use std::time::Duration;

const CRD: &str = include_str!("../../crds/cairnclusters.cairn.dev.yaml");
const BACKUP_CRD: &str = include_str!("../../crds/cairnbackups.cairn.dev.yaml");
const RESTORE_CRD: &str = include_str!("../../crds/cairnrestores.cairn.dev.yaml");

fn with_crd() -> KubeSim {
    let sim = KubeSim::start(&[]);
    sim.apply(CRD);
    sim.apply(BACKUP_CRD);
    sim.apply(RESTORE_CRD);
    sim.eventually(Duration::from_secs(10), "the kinds are served", || {
        sim.kubectl(&["get", "cairnclusters,cairnbackups,cairnrestores"]).success
    });
    sim
}

fn cluster(name: &str, spec: &str) -> String {
    format!("apiVersion: cairn.dev/v1alpha1\nkind: CairnCluster\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

#[test]
fn the_api_server_refuses_an_even_or_out_of_range_member_count() {
    let sim = with_crd();
    let out = sim.kubectl_with_input(&["apply", "-f", "-"], Some(&cluster("four", "{replicas: 4}")));
    assert!(!out.success, "{}", out.all());
    assert!(
        out.stderr.contains("spec.replicas: Invalid value: \"integer\": replicas must be odd: 1, 3, 5, 7 or 9"),
        "{}",
        out.all()
    );
    let out = sim.kubectl_with_input(&["apply", "-f", "-"], Some(&cluster("eleven", "{replicas: 11}")));
    assert!(
        !out.success
            && out.stderr.contains(
                "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 9\n"
            ),
        "{}",
        out.all()
    );
    let out = sim.kubectl_with_input(&["apply", "-f", "-"], Some(&cluster("odd", "{placement: sideways}")));
    assert!(!out.success && out.stderr.contains("spec.placement: Unsupported value: \"sideways\""), "{}", out.all());
    assert!(sim.kubectl(&["get", "cairnclusters", "-o", "name"]).stdout.is_empty(), "nothing was created");
}

#[test]
fn the_api_server_refuses_bad_durations_quantities_schedules_and_member_settings() {
    let sim = with_crd();
    for (spec, says) in [
        ("{storage: {size: 10GB}}", "spec.storage.size in body should match"),
        ("{backup: {s3: {bucket: b}, fullSchedule: 'every day'}}", "spec.backup.fullSchedule in body should match"),
        ("{backup: {s3: {bucket: b}, fullSchedule: '@daily', deltaInterval: 10}}", "spec.backup.deltaInterval"),
        ("{defrag: {minDbSize: lots}}", "spec.defrag.minDbSize in body should match"),
        ("{progressDeadline: 5 minutes}", "spec.progressDeadline in body should match"),
        ("{replaceUnhealthyAfter: soon}", "spec.replaceUnhealthyAfter in body should match"),
        ("{storage: {retentionPolicy: Keep}}", "spec.storage.retentionPolicy: Unsupported value: \"Keep\""),
        (
            "{etcd: {heartbeatInterval: 300, electionTimeout: 1000}}",
            "electionTimeout must be at least 5 times heartbeatInterval",
        ),
        ("{etcd: {autoCompactionMode: revision, autoCompactionRetention: 1h}}", "a count of revisions for revision"),
        ("{etcd: {extraFlags: ['--data-dir=/elsewhere']}}", "the operator sets names, URLs, the data dir"),
        ("{etcd: {extraFlags: ['snapshot-count=5']}}", "each extra flag is --name or --name=value"),
        ("{etcd: {quotaBackendBytes: 8GiB}}", "spec.etcd.quotaBackendBytes in body should match"),
    ] {
        let out = sim.kubectl_with_input(&["apply", "-f", "-"], Some(&cluster("bad", spec)));
        assert!(!out.success && out.stderr.contains(says), "{spec}: {}", out.all());
    }
    let good = "{etcd: {autoCompactionMode: revision, autoCompactionRetention: '5000', heartbeatInterval: 200, \
                electionTimeout: 1000, extraFlags: ['--experimental-x']}, progressDeadline: 90s}";
    let out = sim.kubectl_with_input(&["apply", "-f", "-"], Some(&cluster("good", good)));
    assert!(out.success, "{}", out.all());
    let c = sim.get_json(&["cc", "good"]);
    assert_eq!(c["spec"]["etcd"]["autoCompactionRetention"], "5000");
    let c = {
        sim.apply(&cluster("plain", "{}"));
        sim.get_json(&["cc", "plain"])
    };
    assert_eq!(
        (c["spec"]["etcd"]["autoCompactionMode"].as_str(), c["spec"]["etcd"]["autoCompactionRetention"].as_str()),
        (Some("periodic"), Some("1h"))
    );
}

#[test]
fn the_api_server_refuses_a_restore_with_two_targets_or_two_sources() {
    let sim = with_crd();
    let restore = |spec: &str| {
        let yaml = format!("apiVersion: cairn.dev/v1alpha1\nkind: CairnRestore\nmetadata: {{name: r}}\nspec: {spec}\n");
        sim.kubectl_with_input(&["apply", "-f", "-"], Some(&yaml))
    };
    let out = restore("{clusterName: demo, revision: 5, time: '2026-12-07T10:00:00Z'}");
    assert!(!out.success && out.stderr.contains("give revision or time, not both"), "{}", out.all());
    let out = restore("{clusterName: demo, backupName: b, s3: {bucket: x}}");
    assert!(!out.success && out.stderr.contains("give backupName or s3, not both"), "{}", out.all());
    let out = restore("{clusterName: demo, revision: 0}");
    assert!(!out.success && out.stderr.contains("spec.revision"), "{}", out.all());
    assert!(sim.kubectl(&["get", "cairnrestores", "-o", "name"]).stdout.is_empty(), "nothing was created");
}

#[test]
fn defaults_fill_a_minimal_cluster_and_kubectl_shows_its_columns() {
    let sim = with_crd();
    sim.apply(&cluster("minimal", "{}"));
    let c = sim.get_json(&["cc", "minimal"]);
    assert_eq!(c["spec"]["replicas"], 3);
    assert_eq!(c["spec"]["placement"], "external");
    assert_eq!(c["spec"]["storage"]["size"], "10Gi");
    assert!(c["spec"]["image"].as_str().is_some_and(|i| i.starts_with("cairn:")));
    let table = sim.kubectl(&["get", "cc"]).stdout;
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "REPLICAS", "READY", "UPDATED", "LEADER", "REVISION", "AGE"], "{table}");
    assert!(table.lines().nth(1).is_some_and(|l| l.starts_with("minimal ") && l.contains(" 3 ")), "{table}");
}

#[test]
fn the_sample_clusters_in_config_are_valid() {
    let sim = with_crd();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("config/") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let out = sim.kubectl_with_input(&["apply", "--dry-run=server", "-f", "-"], Some(&text));
            assert!(out.success, "{}: {}", path.display(), out.all());
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} samples");
}
