//! The generated CairnCluster CRD on kube-sim, as `kubectl apply` users meet it: its rules
//! (odd replicas, by a CEL rule), its defaults, its printer columns, and the sample CRs in
//! config/ all valid under it.

use cairn_e2e::sim::KubeSim;
use std::time::Duration;

const CRD: &str = include_str!("../../crds/cairnclusters.cairn.dev.yaml");
const BACKUP_CRD: &str = include_str!("../../crds/cairnbackups.cairn.dev.yaml");

fn with_crd() -> KubeSim {
    let sim = KubeSim::start(&[]);
    sim.apply(CRD);
    sim.apply(BACKUP_CRD);
    sim.eventually(Duration::from_secs(10), "the kinds are served", || {
        sim.kubectl(&["get", "cairnclusters,cairnbackups"]).success
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
    assert_eq!(header, ["NAME", "REPLICAS", "READY", "LEADER", "REVISION", "AGE"], "{table}");
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
