#!/usr/bin/env python3
"""Checks charts/cairn-operator with Helm's own Go SDK (helm-python-sdk): lint, then render
with several value sets; every rendered manifest, and the chart's CRD, must be valid for
Kubernetes 1.32 (kubernetes-validate). The chart's CRD must be crds/'s, and its RBAC
least-privilege: no wildcards, and secrets only read one at a time (get: the S3 credentials a
CairnCluster names), never listed or watched. values.schema.json must refuse wrong values,
naming them, and NOTES.txt must say what to apply next. Exits non-zero with every problem
listed."""

import pathlib
import sys

import helm_python
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "cairn-operator"
KUBE = "1.32"
problems = []

lint = helm_python.lint(str(CHART), strict=True, kube_version="1.32.0")
problems += [f"lint: {e}" for e in lint.get("errors", [])]
problems += [f"lint: {m}" for m in lint.get("messages", []) if m.get("severity", 0) > 1]

for crd in sorted((ROOT / "crds").glob("*.yaml")):
    chart_crd = CHART / "crds" / crd.name
    if not chart_crd.exists() or chart_crd.read_text() != crd.read_text():
        problems.append(f"charts/cairn-operator/crds is not crds/: copy crds/{crd.name} there")

value_sets = {
    "defaults": None,
    "single, no leader election, no metrics": {"replicas": 1, "leaderElection": {"enabled": False}, "metrics": {"enabled": False}},
    "placed": {"nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
               "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
               "image": {"tag": "0.1.0-test"}, "logLevel": "debug"},
}

chart = helm_python.Chart.load(str(CHART))
checked = 0
for name, values in value_sets.items():
    rendered = chart.render(values, name="cairn", namespace="cairn-system", is_install=True)
    kinds = []
    notes = [text for path, text in rendered.items() if path.endswith("NOTES.txt")]
    if not notes or "kind: CairnCluster" not in notes[0]:
        problems.append(f"{name}: NOTES.txt does not say what to apply next")
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            kinds.append(doc["kind"])
            try:
                kubernetes_validate.validate(doc, KUBE, strict=True)
                checked += 1
            except kubernetes_validate.ValidationError as e:
                problems.append(f"{name}: {path}: {doc['kind']} {doc['metadata'].get('name')}: {e.message}")
            if doc["kind"] in ("ClusterRole", "Role"):
                for rule in doc.get("rules", []):
                    if "*" in rule.get("verbs", []) or "*" in rule.get("resources", []):
                        problems.append(f"{name}: {doc['kind']} has a wildcard rule: {rule}")
                    if "secrets" in rule.get("resources", []) and rule.get("verbs") != ["get"]:
                        problems.append(f"{name}: {doc['kind']} may do more with secrets than get one: {rule}")
    for needed in ("Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
        if needed not in kinds:
            problems.append(f"{name}: no {needed} rendered")
    lease_role = "Role" in kinds
    wants = values is None or values.get("leaderElection", {}).get("enabled", True)
    if lease_role != wants:
        problems.append(f"{name}: the Lease Role is {'there' if lease_role else 'missing'} with leader election {'on' if wants else 'off'}")

# values.schema.json: a wrong value fails the install, naming the value.
refused = 0
wrong_values = {
    "replicas: two": ({"replicas": "two"}, "/replicas"),
    "a port out of range": ({"metrics": {"port": 70000}}, "/metrics/port"),
    "a misspelt key": ({"imagee": {"tag": "x"}}, "'imagee' not allowed"),
    "an unknown pull policy": ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
}
for name, (values, says) in wrong_values.items():
    try:
        chart.render(values, name="cairn", namespace="cairn-system", is_install=True)
        problems.append(f"values.schema.json lets {name} through")
    except Exception as e:  # the SDK raises Helm's error as is
        if says not in str(e):
            problems.append(f"{name}: refused without naming {says!r}: {e}")
        else:
            refused += 1

for crd in sorted((CHART / "crds").glob("*.yaml")):
    for doc in yaml.safe_load_all(crd.read_text()):
        try:
            kubernetes_validate.validate(doc, KUBE, strict=True)
            checked += 1
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{crd.name}: {e.message}")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"chart: lint clean, {checked} manifests valid for Kubernetes {KUBE}, {refused} wrong values refused")
