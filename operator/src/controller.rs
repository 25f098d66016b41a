//! The controller: kube-runtime's Controller over CairnClusters (and the pods and claims they
//! own), with one reconcile per change: the cluster's Services and PDB applied, then observe →
//! plan → act, one step, its status written, an Event for every membership change, and a
//! requeue while work remains.

use crate::crd::CairnCluster;
use crate::reconcile::{act, observe, plan, status};
use crate::resources::{self, services};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::Resource;
use std::sync::Arc;
use std::time::Duration;

pub const MANAGER: &str = "cairn-operator";

pub struct Ctx {
    pub client: kube::Client,
    pub recorder: Recorder,
    pub unhealthy: observe::Unhealthy,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Act(#[from] act::ActError),
}

async fn apply<K>(api: Api<K>, obj: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(obj)).await?;
    Ok(())
}

async fn reconcile(c: Arc<CairnCluster>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if c.metadata.deletion_timestamp.is_some() {
        // Everything it owns goes with it (owner references).
        return Ok(Action::await_change());
    }
    let ns = resources::namespace(&c);
    let client = &ctx.client;
    apply(Api::<Service>::namespaced(client.clone(), &ns), &services::peer(&c)).await?;
    apply(Api::<Service>::namespaced(client.clone(), &ns), &services::client(&c)).await?;
    apply(Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns), &services::pdb(&c)).await?;
    let seen = observe::observe(client, &c, &ctx.unhealthy).await?;
    let step = plan::plan(&seen.observed);
    tracing::info!(cluster = %resources::name(&c), namespace = %ns, step = ?step, "planned");
    let outcome = act::act(client, &c, &seen, &step).await;
    let st = status::status(&c, &seen, &step);
    let api = Api::<CairnCluster>::namespaced(client.clone(), &ns);
    api.patch_status(&resources::name(&c), &PatchParams::default(), &Patch::Merge(serde_json::json!({"status": st})))
        .await?;
    match outcome? {
        act::Outcome::Changed { reason, note } => {
            let event = Event {
                type_: EventType::Normal,
                reason: reason.into(),
                note: Some(note),
                action: reason.into(),
                secondary: None,
            };
            if let Err(e) = ctx.recorder.publish(&event, &c.object_ref(&())).await {
                tracing::warn!(error = %e, "publishing an event");
            }
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        act::Outcome::Waiting(why) => {
            tracing::debug!(why, "waiting");
            Ok(Action::requeue(Duration::from_secs(2)))
        }
        act::Outcome::Settled => Ok(Action::requeue(Duration::from_secs(30))),
    }
}

fn error_policy(_: Arc<CairnCluster>, e: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

pub async fn run(client: kube::Client) {
    let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        unhealthy: Default::default(),
    });
    Controller::new(Api::<CairnCluster>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .owns(Api::<PersistentVolumeClaim>::all(client.clone()), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "controller");
            }
        })
        .await;
}
