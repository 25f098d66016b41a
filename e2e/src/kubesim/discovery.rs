//! Discovery as kubectl and kube-rs read it: /version, /api, /apis and the resource list of
//! each group version (the legacy, unaggregated documents: clients fall back to them).

use super::registry::Registry;
use serde_json::{json, Value};

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0-kube-sim", "gitCommit": "kube-sim",
        "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23",
        "compiler": "gc", "platform": "linux/amd64",
    })
}

pub fn core_versions(address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    })
}

fn group(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": vs, "preferredVersion": vs[0]})
}

pub fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> =
        reg.groups().into_iter().filter(|(g, _)| !g.is_empty()).map(|(g, vs)| group(&g, &vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn one_group(reg: &Registry, name: &str) -> Option<Value> {
    reg.groups().into_iter().find(|(g, _)| g == name).map(|(g, vs)| group(&g, &vs))
}

/// The APIResourceList of a group version, None when nothing is served there.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = reg
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(|r| r.discovery())
        .collect();
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}
