//! What a pod's containers are given before they start: environment (values, field
//! references, Secret and ConfigMap keys), volumes (claims as directories that outlive the
//! pod, emptyDir, ConfigMap and Secret files) and the /etc/hosts kubelet would manage, with
//! the names DNS would give pods behind a headless Service.

use super::process::{expand, Mount};
use crate::kubesim::store::Store;
use base64::Engine;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Why a container cannot start yet (a missing Secret, an unbound claim): its waiting reason.
#[derive(Debug)]
pub struct NotYet {
    pub reason: &'static str,
    pub message: String,
}

fn object(store: &Store, resource: &str, ns: &str, name: &str) -> Option<Value> {
    store.get(&(resource.to_string(), ns.to_string(), name.to_string()))
}

fn key_of(store: &Store, resource: &str, ns: &str, r: &Value) -> Result<Option<String>, NotYet> {
    let name = r["name"].as_str().unwrap_or_default();
    let key = r["key"].as_str().unwrap_or_default();
    let optional = r["optional"] == Value::Bool(true);
    let kind = if resource == "secrets" { "secret" } else { "configmap" };
    let Some(obj) = object(store, resource, ns, name) else {
        return if optional {
            Ok(None)
        } else {
            Err(NotYet { reason: "CreateContainerConfigError", message: format!("{kind} \"{name}\" not found") })
        };
    };
    let value = if resource == "secrets" {
        obj["data"][key]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    } else {
        obj["data"][key].as_str().map(str::to_string)
    };
    match value {
        Some(v) => Ok(Some(v)),
        None if optional => Ok(None),
        None => Err(NotYet {
            reason: "CreateContainerConfigError",
            message: format!("couldn't find key {key} in {kind} {ns}/{name}"),
        }),
    }
}

fn field_ref(pod: &Value, path: &str) -> String {
    if let Some(label) = path.strip_prefix("metadata.labels['").and_then(|l| l.strip_suffix("']")) {
        return pod["metadata"]["labels"][label].as_str().unwrap_or_default().to_string();
    }
    let v = path.split('.').try_fold(pod, |v, p| v.get(p));
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The container's environment, in order, as its process gets it.
pub fn env(store: &Store, pod: &Value, container: &Value) -> Result<Vec<(String, String)>, NotYet> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()),
        (
            "HOSTNAME".into(),
            pod["spec"]["hostname"].as_str().or(pod["metadata"]["name"].as_str()).unwrap_or_default().into(),
        ),
        ("HOME".into(), "/root".into()),
    ];
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or_default();
        for (resource, field) in [("configmaps", "configMapRef"), ("secrets", "secretRef")] {
            let Some(name) = from[field]["name"].as_str() else { continue };
            let Some(obj) = object(store, resource, ns, name) else {
                if from[field]["optional"] == Value::Bool(true) {
                    continue;
                }
                return Err(NotYet {
                    reason: "CreateContainerConfigError",
                    message: format!("{resource} \"{name}\" not found"),
                });
            };
            for (k, v) in obj["data"].as_object().into_iter().flatten() {
                let v = v.as_str().unwrap_or_default();
                let v = if resource == "secrets" {
                    String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(v).unwrap_or_default())
                        .into_owned()
                } else {
                    v.to_string()
                };
                env.push((format!("{prefix}{k}"), v));
            }
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default().to_string();
        let value = if let Some(v) = e["value"].as_str() {
            Some(expand(v, &env))
        } else if let Some(path) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some(field_ref(pod, path))
        } else if e["valueFrom"]["secretKeyRef"].is_object() {
            key_of(store, "secrets", ns, &e["valueFrom"]["secretKeyRef"])?
        } else if e["valueFrom"]["configMapKeyRef"].is_object() {
            key_of(store, "configmaps", ns, &e["valueFrom"]["configMapKeyRef"])?
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            env.retain(|(k, _)| *k != name);
            env.push((name, v));
        }
    }
    Ok(env)
}

/// A claim's directory: it lives as long as the claim (by uid), across pods.
pub fn claim_dir(state: &Path, ns: &str, name: &str, uid: &str) -> PathBuf {
    state.join("volumes").join(ns).join(format!("{name}-{uid}"))
}

/// The host directory of each of the pod's volumes, by name.
pub fn volumes(store: &Store, state: &Path, pod_dir: &Path, pod: &Value) -> Result<Vec<(String, PathBuf)>, NotYet> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut out = Vec::new();
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        let dir = if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
            let pvc = object(store, "persistentvolumeclaims", ns, claim)
                .filter(|c| c["metadata"]["deletionTimestamp"].is_null())
                .ok_or_else(|| NotYet {
                    reason: "ContainerCreating",
                    message: format!("persistentvolumeclaim \"{claim}\" not found"),
                })?;
            claim_dir(state, ns, claim, pvc["metadata"]["uid"].as_str().unwrap_or_default())
        } else if let Some(path) = v["hostPath"]["path"].as_str() {
            PathBuf::from(path)
        } else {
            let dir = pod_dir.join("volumes").join(&name);
            for (resource, field, list) in [("configmaps", "configMap", "name"), ("secrets", "secret", "secretName")] {
                if !v[field].is_object() {
                    continue;
                }
                let source = v[field][list].as_str().unwrap_or_default();
                let obj = object(store, resource, ns, source).ok_or_else(|| NotYet {
                    reason: "ContainerCreating",
                    message: format!("{resource} \"{source}\" not found"),
                })?;
                let _ = std::fs::create_dir_all(&dir);
                for (k, val) in obj["data"].as_object().into_iter().flatten() {
                    let text = val.as_str().unwrap_or_default();
                    let bytes = if resource == "secrets" {
                        base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_default()
                    } else {
                        text.as_bytes().to_vec()
                    };
                    let _ = std::fs::write(dir.join(k), bytes);
                }
            }
            dir
        };
        let _ = std::fs::create_dir_all(&dir);
        out.push((name, dir));
    }
    Ok(out)
}

pub fn mounts(container: &Value, volumes: &[(String, PathBuf)], hosts: &Path) -> Vec<Mount> {
    let mut out: Vec<Mount> = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let (_, dir) = volumes.iter().find(|(n, _)| m["name"].as_str() == Some(n))?;
            let source = match m["subPath"].as_str() {
                Some(sub) if !sub.is_empty() => dir.join(sub),
                _ => dir.clone(),
            };
            Some(Mount {
                source,
                target: PathBuf::from(m["mountPath"].as_str()?),
                read_only: m["readOnly"] == Value::Bool(true),
            })
        })
        .collect();
    out.push(Mount { source: hosts.to_path_buf(), target: PathBuf::from("/etc/hosts"), read_only: false });
    out
}

/// /etc/hosts for a pod: itself, and every pod of its namespace that a headless Service
/// names through its subdomain (`<hostname>.<subdomain>.<ns>.svc.cluster.local` and the
/// shorter forms), as cluster DNS would answer.
pub fn hosts(store: &Store, pod: &Value) -> String {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut out = String::from("# Kubernetes-managed hosts file (kube-sim).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    let (pods, _) = store.list("pods", Some(ns));
    let (services, _) = store.list("services", Some(ns));
    let headless: Vec<&str> = services
        .iter()
        .filter(|s| s["spec"]["clusterIP"] == Value::String("None".into()))
        .filter_map(|s| s["metadata"]["name"].as_str())
        .collect();
    let me = pod["metadata"]["uid"].clone();
    for p in &pods {
        let Some(ip) = p["status"]["podIP"].as_str() else { continue };
        let host = p["spec"]["hostname"].as_str().or(p["metadata"]["name"].as_str()).unwrap_or_default();
        let names = match p["spec"]["subdomain"].as_str() {
            Some(sub) if headless.contains(&sub) => {
                format!("{host}.{sub}.{ns}.svc.cluster.local\t{host}.{sub}.{ns}.svc\t{host}.{sub}.{ns}\t{host}.{sub}")
            }
            _ if p["metadata"]["uid"] == me => host.to_string(),
            _ => continue,
        };
        let names =
            if p["metadata"]["uid"] == me && !names.ends_with(host) { format!("{names}\t{host}") } else { names };
        out.push_str(&format!("{ip}\t{names}\n"));
    }
    out
}
