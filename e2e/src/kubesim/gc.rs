//! The controllers that finish deletions, as kube-controller-manager's do: garbage
//! collection by ownerReferences (background: dependents of a vanished owner go; foreground:
//! the owner waits for its dependents), the namespace controller (a terminating namespace
//! is emptied, then goes), PVC protection (a claim goes once no pod uses it), and custom
//! resources whose definition is gone.

use super::objects::{self, Part, Propagation};
use super::store::Key;
use super::Sim;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;

fn has_finalizer(obj: &Value, f: &str) -> bool {
    obj["metadata"]["finalizers"].as_array().is_some_and(|l| l.iter().any(|x| x == f))
}

fn deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

/// Removes finalizer `f` from the object at `key` (deleting it if it was the last one and
/// the object is being deleted).
fn drop_finalizer(sim: &Sim, key: &Key, f: &str) {
    let Some(r) = sim.registry.by_id(&key.0) else { return };
    let _ = sim.store.write(|t| {
        let Some(mut obj) = t.get(key) else { return Ok(Value::Null) };
        let left: Vec<Value> =
            obj["metadata"]["finalizers"].as_array().into_iter().flatten().filter(|x| *x != f).cloned().collect();
        obj["metadata"]["finalizers"] = Value::Array(left);
        objects::update(t, &r, key, obj, Part::Main)
    });
}

fn delete(sim: &Sim, key: &Key, propagation: Propagation) {
    let Some(r) = sim.registry.by_id(&key.0) else {
        // Its kind is no longer served (the CRD went): nothing holds it.
        let _ = sim.store.write(|t| {
            t.delete(key.clone());
            Ok::<_, ()>(())
        });
        return;
    };
    let _ = sim.store.write(|t| objects::delete(t, &r, key, propagation, None, None, None));
}

/// One pass over everything; true when it changed something (another pass may find more).
pub fn pass(sim: &Sim) -> bool {
    let all = sim.store.all();
    let uids: HashSet<&str> = all.iter().filter_map(|(_, o)| o["metadata"]["uid"].as_str()).collect();
    let mut changed = false;
    for (key, obj) in &all {
        // Custom resources of a definition that is gone.
        if sim.registry.by_id(&key.0).is_none() {
            delete(sim, key, Propagation::Background);
            changed = true;
            continue;
        }
        let refs = obj["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
        if !refs.is_empty() && !deleting(obj) {
            let owners: Vec<&Value> = refs
                .iter()
                .filter_map(|r| all.iter().find(|(_, o)| o["metadata"]["uid"] == r["uid"]).map(|(_, o)| o))
                .collect();
            let owner_gone =
                owners.is_empty() && refs.iter().all(|r| !uids.contains(r["uid"].as_str().unwrap_or_default()));
            let owner_in_foreground = owners.iter().any(|o| deleting(o) && has_finalizer(o, "foregroundDeletion"));
            if owner_gone || owner_in_foreground {
                let how = if owner_in_foreground { Propagation::Foreground } else { Propagation::Background };
                delete(sim, key, how);
                changed = true;
                continue;
            }
        }
        if !deleting(obj) {
            continue;
        }
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        if has_finalizer(obj, "foregroundDeletion") {
            let dependents = all.iter().any(|(_, o)| {
                o["metadata"]["ownerReferences"].as_array().is_some_and(|rs| rs.iter().any(|r| r["uid"] == json!(uid)))
            });
            if !dependents {
                drop_finalizer(sim, key, "foregroundDeletion");
                changed = true;
            }
        }
        if key.0 == "namespaces" {
            let contents: Vec<&Key> = all.iter().map(|(k, _)| k).filter(|k| k.1 == key.2 && !k.1.is_empty()).collect();
            for k in &contents {
                if all.iter().any(|(kk, o)| kk == *k && !deleting(o)) {
                    delete(sim, k, Propagation::Background);
                }
            }
            if contents.is_empty() {
                let _ = sim.store.write(|t| {
                    t.delete(key.clone());
                    Ok::<_, ()>(())
                });
            }
            changed = true;
        }
        if key.0 == "persistentvolumeclaims" && has_finalizer(obj, "kubernetes.io/pvc-protection") {
            let in_use = all.iter().any(|((r, ns, _), p)| {
                r == "pods"
                    && *ns == key.1
                    && !matches!(p["status"]["phase"].as_str(), Some("Succeeded") | Some("Failed"))
                    && p["spec"]["volumes"]
                        .as_array()
                        .is_some_and(|vs| vs.iter().any(|v| v["persistentVolumeClaim"]["claimName"] == json!(key.2)))
            });
            if !in_use {
                drop_finalizer(sim, key, "kubernetes.io/pvc-protection");
                changed = true;
            }
        }
    }
    changed
}

/// Runs passes whenever something was written, until `stop`.
pub async fn run(sim: Arc<Sim>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let notified = sim.changed.notified();
        let changed = pass(&sim);
        sim.refresh();
        if changed {
            // Settle with another pass right away, but let requests in between.
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
    }
}
