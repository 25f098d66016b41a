//! Backups and restores on demand (DESIGN §4): a `CairnBackup` takes one full snapshot of a
//! named cluster now, as a backup of its own (catalog and full snapshot) that `cairn restore`
//! and `spec.bootstrap.restore` read like any other; a `CairnRestore` restores a named
//! cluster in place from a backup. Each has its own controller, beside the clusters'.

pub mod backup;
pub mod crd;
pub mod restore;
pub mod restore_crd;

use crate::context::Ctx;
use crate::crd::CairnCluster;
use crate::resources::{self, CLIENT_PORT};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

/// Merges `status` into an on-demand resource's status.
pub async fn patch_status<K>(client: &kube::Client, obj: &K, status: &impl serde::Serialize) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api = Api::<K>::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let body = serde_json::json!({ "status": status });
    api.patch_status(&obj.name_any(), &PatchParams::default(), &Patch::Merge(body)).await?;
    Ok(())
}

/// An Event about an on-demand resource (a failure to publish is only logged).
pub async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Ctx,
    obj: &K,
    (type_, action): (EventType, &str),
    reason: &str,
    note: String,
) {
    let event = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an event");
    }
}

/// The client addresses of a cluster's member pods that are not being deleted.
pub async fn member_endpoints(client: &kube::Client, c: &CairnCluster) -> Result<Vec<String>, kube::Error> {
    let pods = Api::<Pod>::namespaced(client.clone(), &resources::namespace(c))
        .list(&ListParams::default().labels(&resources::selector(c)))
        .await?;
    Ok(pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .map(|ip| format!("{ip}:{CLIENT_PORT}"))
        .collect())
}
