//! Pod Security admission, as the API server's built-in plugin enforces it on a namespace
//! labelled `pod-security.kubernetes.io/enforce: baseline|restricted`: a pod that violates
//! the level is refused with 403 and the plugin's message, each violation named the way the
//! plugin names it. The checks are the Pod Security Standards' (baseline: host namespaces,
//! privileged, added capabilities, hostPath volumes, host ports; restricted adds: volume
//! types, privilege escalation, running as non-root, root user id, seccomp, dropping ALL
//! capabilities). AppArmor, SELinux, /proc mount and sysctl checks are left out: nothing
//! here sets them.

use super::errors::ApiError;
use serde_json::Value;

pub const ENFORCE: &str = "pod-security.kubernetes.io/enforce";

/// Capabilities baseline lets a container add.
const BASELINE_CAPS: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

const RESTRICTED_VOLUMES: &[&str] =
    &["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];

/// Refuses `pod` if the namespace's labels enforce a level it violates.
pub fn admit(namespace: &Value, pod: &Value) -> Result<(), ApiError> {
    let level = namespace["metadata"]["labels"][ENFORCE].as_str().unwrap_or("privileged");
    let restricted = match level {
        "restricted" => true,
        "baseline" => false,
        _ => return Ok(()),
    };
    let found = violations(pod, restricted);
    if found.is_empty() {
        return Ok(());
    }
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    Err(ApiError {
        code: 403,
        reason: "Forbidden",
        message: format!("pods \"{name}\" is forbidden: violates PodSecurity \"{level}:latest\": {}", found.join(", ")),
        details: serde_json::json!({"name": name, "kind": "pods"}),
    })
}

fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten())
        .collect()
}

fn name(c: &Value) -> &str {
    c["name"].as_str().unwrap_or_default()
}

/// `container "a"` or `containers "a", "b"`, as the plugin lists them.
fn listed(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let noun = if names.len() == 1 { "container" } else { "containers" };
    format!("{noun} {}", quoted.join(", "))
}

fn violations(pod: &Value, restricted: bool) -> Vec<String> {
    let spec = &pod["spec"];
    let psc = &spec["securityContext"];
    let cs = containers(spec);
    let mut out = Vec::new();
    let host: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|k| spec[**k] == true)
        .map(|k| format!("{k}=true"))
        .collect();
    if !host.is_empty() {
        out.push(format!("host namespaces ({})", host.join(", ")));
    }
    let privileged: Vec<&str> =
        cs.iter().filter(|c| c["securityContext"]["privileged"] == true).map(|c| name(c)).collect();
    if !privileged.is_empty() {
        out.push(format!("privileged ({} must not set securityContext.privileged=true)", listed(&privileged)));
    }
    let added = |c: &Value, allowed: &[&str]| {
        c["securityContext"]["capabilities"]["add"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|cap| !allowed.contains(&cap))
    };
    let non_default: Vec<&str> = cs.iter().filter(|c| added(c, BASELINE_CAPS)).map(|c| name(c)).collect();
    if !non_default.is_empty() {
        out.push(format!(
            "non-default capabilities ({} must not include them in securityContext.capabilities.add)",
            listed(&non_default)
        ));
    }
    let volumes: Vec<&Value> = spec["volumes"].as_array().into_iter().flatten().collect();
    let host_path: Vec<&str> =
        volumes.iter().filter(|v| v.get("hostPath").is_some()).filter_map(|v| v["name"].as_str()).collect();
    if !host_path.is_empty() {
        out.push(format!(
            "hostPath volumes (volume {})",
            host_path.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
        ));
    }
    let ports: Vec<String> = cs
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten().map(move |p| (name(c), p["hostPort"].as_i64())))
        .filter_map(|(c, p)| p.filter(|p| *p != 0).map(|p| format!("container {c:?} uses hostPort {p}")))
        .collect();
    if !ports.is_empty() {
        out.push(format!("hostPort ({})", ports.join(", ")));
    }
    if !restricted {
        return out;
    }
    let kinds = |v: &Value| v.as_object().map(|o| o.keys().filter(|k| *k != "name").cloned().collect::<Vec<_>>());
    let bad_volumes: Vec<String> = volumes
        .iter()
        .filter_map(|v| {
            let kind = kinds(v)?.into_iter().find(|k| !RESTRICTED_VOLUMES.contains(&k.as_str()))?;
            Some(format!("volume {:?} uses restricted volume type {kind:?}", v["name"].as_str().unwrap_or_default()))
        })
        .collect();
    if !bad_volumes.is_empty() {
        out.push(format!("restricted volume types ({})", bad_volumes.join(", ")));
    }
    let escalating: Vec<&str> =
        cs.iter().filter(|c| c["securityContext"]["allowPrivilegeEscalation"] != false).map(|c| name(c)).collect();
    if !escalating.is_empty() {
        out.push(format!(
            "allowPrivilegeEscalation != false ({} must set securityContext.allowPrivilegeEscalation=false)",
            listed(&escalating)
        ));
    }
    let drops_all =
        |c: &Value| c["securityContext"]["capabilities"]["drop"].as_array().into_iter().flatten().any(|d| d == "ALL");
    let unrestricted: Vec<&str> =
        cs.iter().filter(|c| !drops_all(c) || added(c, &["NET_BIND_SERVICE"])).map(|c| name(c)).collect();
    if !unrestricted.is_empty() {
        out.push(format!(
            "unrestricted capabilities ({} must set securityContext.capabilities.drop=[\"ALL\"])",
            listed(&unrestricted)
        ));
    }
    // Set on a container, it overrides the pod's.
    let effective = |c: &Value, key: &str| {
        let own = &c["securityContext"][key];
        if own.is_null() {
            psc[key].clone()
        } else {
            own.clone()
        }
    };
    let as_root: Vec<&str> = cs.iter().filter(|c| effective(c, "runAsNonRoot") != true).map(|c| name(c)).collect();
    if !as_root.is_empty() {
        out.push(format!(
            "runAsNonRoot != true (pod or {} must set securityContext.runAsNonRoot=true)",
            listed(&as_root)
        ));
    }
    let mut root_ids: Vec<String> = Vec::new();
    if psc["runAsUser"] == 0 {
        root_ids.push("pod must not set runAsUser=0".into());
    }
    let root_containers: Vec<&str> =
        cs.iter().filter(|c| c["securityContext"]["runAsUser"] == 0).map(|c| name(c)).collect();
    if !root_containers.is_empty() {
        root_ids.push(format!("{} must not set runAsUser=0", listed(&root_containers)));
    }
    if !root_ids.is_empty() {
        out.push(format!("runAsUser=0 ({})", root_ids.join("; ")));
    }
    let seccomp_ok = |v: &Value| matches!(v["type"].as_str(), Some("RuntimeDefault" | "Localhost"));
    let no_seccomp: Vec<&str> =
        cs.iter().filter(|c| !seccomp_ok(&effective(c, "seccompProfile"))).map(|c| name(c)).collect();
    if !no_seccomp.is_empty() {
        out.push(format!(
            "seccompProfile (pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
            listed(&no_seccomp)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ns(level: &str) -> Value {
        json!({"metadata": {"name": "x", "labels": {ENFORCE: level}}})
    }

    #[test]
    fn a_plain_pod_passes_baseline_and_fails_restricted_with_every_reason() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        assert!(admit(&ns("baseline"), &pod).is_ok());
        let e = admit(&ns("restricted"), &pod).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false \
             (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities \
             (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or \
             container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must \
             set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
    }

    #[test]
    fn a_hardened_pod_passes_restricted_and_host_access_fails_baseline() {
        let good = json!({"metadata": {"name": "p"}, "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}],
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}});
        assert!(admit(&ns("restricted"), &good).is_ok());
        let bad = json!({"metadata": {"name": "p"}, "spec": {"hostNetwork": true,
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
            "containers": [{"name": "c", "securityContext": {"privileged": true}}]}});
        let e = admit(&ns("baseline"), &bad).unwrap_err();
        for part in
            ["host namespaces (hostNetwork=true)", "privileged (container \"c\"", "hostPath volumes (volume \"h\")"]
        {
            assert!(e.message.contains(part), "{}", e.message);
        }
        assert!(admit(&ns("privileged"), &bad).is_ok());
    }
}
