//! The members' claims beyond creating them: grown when `spec.storage.size` grows (where their
//! StorageClass allows expansion), and, when the CairnCluster is deleted, kept or deleted as
//! `spec.storage.retentionPolicy` says.

use crate::crd::{CairnCluster, ClaimRetention};
use crate::resources;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use serde_json::json;
use std::collections::HashMap;

const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

fn requested(pvc: &PersistentVolumeClaim) -> Option<i64> {
    let q = pvc.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?.get("storage")?;
    crate::units::quantity(&q.0)
}

/// Whether claims of this class (None: the cluster's default class) may grow.
async fn expandable(client: &kube::Client, class: Option<&str>) -> Result<bool, kube::Error> {
    let classes = Api::<StorageClass>::all(client.clone());
    let found = match class {
        Some(name) => classes.get_opt(name).await?,
        None => classes.list(&ListParams::default()).await?.items.into_iter().find(|sc| {
            sc.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CLASS)).is_some_and(|v| v == "true")
        }),
    };
    Ok(found.and_then(|sc| sc.allow_volume_expansion).unwrap_or(false))
}

/// Grows every claim (of those observing listed) smaller than `spec.storage.size`; an Event
/// for what cannot grow. A smaller size is left alone (volumes do not shrink), with an Event.
pub async fn reconcile(
    client: &kube::Client,
    c: &CairnCluster,
    claims: &[PersistentVolumeClaim],
) -> Result<Vec<Event>, kube::Error> {
    let Some(want) = crate::units::quantity(&c.spec.storage.size) else { return Ok(Vec::new()) };
    let api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &resources::namespace(c));
    // Each class looked up once per reconcile, however many claims share it.
    let mut classes: HashMap<Option<String>, bool> = HashMap::new();
    let mut events = Vec::new();
    let warn = |reason: &str, note: String| Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note),
        action: "ResizeClaim".into(),
        secondary: None,
    };
    for pvc in claims.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        let name = pvc.metadata.name.clone().unwrap_or_default();
        let Some(has) = requested(pvc) else { continue };
        if has > want {
            events.push(warn("StorageNotShrunk", format!("claim {name} stays at its size: volumes do not shrink")));
            continue;
        }
        if has == want {
            continue;
        }
        let class = pvc.spec.as_ref().and_then(|s| s.storage_class_name.as_deref());
        let grows = match classes.get(&class.map(str::to_string)) {
            Some(known) => *known,
            None => {
                let known = expandable(client, class).await?;
                classes.insert(class.map(str::to_string), known);
                known
            }
        };
        if !grows {
            events.push(warn(
                "StorageNotExpandable",
                format!(
                    "claim {name} cannot grow to {}: its StorageClass {} does not allow volume expansion",
                    c.spec.storage.size,
                    class.unwrap_or("(the default)")
                ),
            ));
            continue;
        }
        let body = json!({"spec": {"resources": {"requests": {"storage": c.spec.storage.size}}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(body)).await?;
        events.push(Event {
            type_: EventType::Normal,
            reason: "ClaimResized".into(),
            note: Some(format!("claim {name} grows to {}", c.spec.storage.size)),
            action: "ResizeClaim".into(),
            secondary: None,
        });
    }
    Ok(events)
}

/// At deletion, once the pods are gone: the claims deleted, or released (no longer owned,
/// so that garbage collection leaves them) as the retention policy says. Returns how many
/// claims are still to go.
pub async fn release_or_delete(client: &kube::Client, c: &CairnCluster) -> Result<usize, kube::Error> {
    let api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &resources::namespace(c));
    let lp = ListParams::default().labels(&resources::selector(c));
    match c.spec.storage.retention_policy {
        ClaimRetention::Delete => {
            let left = api.list(&lp).await?.items.len();
            if left > 0 {
                api.delete_collection(&DeleteParams::default(), &lp).await?;
            }
            Ok(left)
        }
        ClaimRetention::Retain => {
            let uid = c.metadata.uid.clone().unwrap_or_default();
            for pvc in api.list(&lp).await? {
                let owned = pvc.metadata.owner_references.iter().flatten().any(|o| o.uid == uid);
                if owned {
                    let name = pvc.metadata.name.clone().unwrap_or_default();
                    let body = json!({"metadata": {"ownerReferences": null}});
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(body)).await?;
                }
            }
            Ok(0)
        }
    }
}
