//! charts/cairn-operator, checked with Helm's own SDK and Kubernetes 1.32's schemas by
//! scripts/check-chart.py, in the venv ./test.sh makes (helm-python-sdk 0.2.2,
//! kubernetes-validate 1.37.0).

use std::path::Path;
use std::process::Command;

#[test]
fn the_chart_lints_renders_and_validates_for_kubernetes_1_32() {
    let venv = std::env::var("CAIRN_VENV").unwrap_or_else(|_| "/var/tmp/cairn-venv".into());
    let python = Path::new(&venv).join("bin/python");
    assert!(python.exists(), "{} is missing: run ./test.sh, which makes the venv", python.display());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/check-chart.py");
    let out = Command::new(&python).arg(&script).output().expect("run the chart check");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("manifests valid for Kubernetes 1.32"), "{text}");
}
