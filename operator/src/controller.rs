//! The controller: kube-runtime's Controller over CairnClusters (and the pods and claims they
//! own), with one reconcile per change: the cluster's Services, PDB and ConfigMap applied,
//! then observe → plan → act, one step, its status written, an Event for every membership
//! change, and a requeue while work remains. A finalizer makes deletion wait until the
//! members' pods and claims are gone.

use crate::crd::CairnCluster;
use crate::metrics::Metrics;
use crate::reconcile::{act, observe, plan, status};
use crate::resources::{self, services};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams};
use kube::api::{DeleteParams, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{finalizer, Event as Finalize};
use kube::runtime::watcher;
use kube::Resource;
use std::sync::Arc;
use std::time::Duration;

pub use crate::context::{Ctx, MANAGER};
pub const FINALIZER: &str = "cairn.dev/cleanup";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Act(#[from] act::ActError),
    #[error("waiting for {0}")]
    Waiting(String),
    #[error(transparent)]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Act(act::ActError::Member(_)) => "member",
            Error::Act(_) => "act",
            Error::Waiting(_) => "waiting",
            Error::Finalizer(_) => "finalizer",
        }
    }
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
    ctx.metrics.reconciles.inc();
    let api = Api::<CairnCluster>::namespaced(ctx.client.clone(), &resources::namespace(&c));
    let ctx2 = ctx.clone();
    let r = finalizer(&api, FINALIZER, c, |event| async move {
        match event {
            Finalize::Apply(c) => reconcile_cluster(c, ctx2).await,
            Finalize::Cleanup(c) => cleanup(c, ctx2).await,
        }
    })
    .await;
    r.map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Deletion: the members' pods go (SIGTERM); then their claims are deleted or released, as
/// spec.storage.retentionPolicy says; the finalizer is removed once that is done.
async fn cleanup(c: Arc<CairnCluster>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.backups.stop(&crate::backup::runner::id(&c));
    let ns = resources::namespace(&c);
    let lp = ListParams::default().labels(&resources::selector(&c));
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
    let left = pods.list(&lp).await?.items.len();
    if left > 0 {
        pods.delete_collection(&DeleteParams::default(), &lp).await?;
        return Err(Error::Waiting(format!("{left} pods of {} to go", resources::name(&c))));
    }
    match crate::claims::release_or_delete(&ctx.client, &c).await? {
        0 => Ok(Action::await_change()),
        left => Err(Error::Waiting(format!("{left} claims of {} to go", resources::name(&c)))),
    }
}

/// One reconcile of a live cluster (the finalizer's Apply): public for the mocked-API tests.
pub async fn reconcile_cluster(c: Arc<CairnCluster>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = resources::namespace(&c);
    let client = &ctx.client;
    apply(Api::<Service>::namespaced(client.clone(), &ns), &services::peer(&c)).await?;
    apply(Api::<Service>::namespaced(client.clone(), &ns), &services::client(&c)).await?;
    apply(Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns), &services::pdb(&c)).await?;
    apply(Api::<ConfigMap>::namespaced(client.clone(), &ns), &services::config_map(&c)).await?;
    let seen = observe::observe(client, &c, &ctx.unhealthy).await?;
    let step = plan::plan(&seen.observed);
    tracing::info!(cluster = %resources::name(&c), namespace = %ns, step = ?step, "planned");
    let outcome = act::act(client, &c, &seen, &step).await;
    let mut st = status::status(&c, &seen, &step);
    // The sub-reconcilers, each given only what it uses: backups (while the cluster runs),
    // then defragmentation (once it is as its spec asks).
    let mut events =
        crate::backup::reconcile::reconcile(&ctx.client, &ctx.backups, &ctx.metrics, &c, &seen, &mut st).await;
    events.extend(crate::claims::reconcile(client, &c, &seen.claims).await?);
    if matches!(step, plan::Step::Done) {
        events.extend(crate::defrag::reconcile(&ctx.metrics, &c, &seen, &mut st).await);
    }
    let labels = crate::metrics::cluster(&c);
    ctx.metrics.ready_members.get_or_create(&labels).set(i64::from(st.ready_members.unwrap_or(0)));
    let available = status::find(&st, "Available").is_some_and(|c| c.status == "True");
    ctx.metrics.available.get_or_create(&labels).set(i64::from(available));
    let api = Api::<CairnCluster>::namespaced(client.clone(), &ns);
    api.patch_status(&resources::name(&c), &PatchParams::default(), &Patch::Merge(status::patch_body(&st))).await?;
    for event in &events {
        publish(&ctx, &c, event).await;
    }
    match outcome? {
        act::Outcome::Changed { reason, note } => {
            ctx.metrics.membership_changed(reason);
            let warning = reason == "QuorumLost";
            publish(&ctx, &c, &step_event(warning, reason, note)).await;
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        act::Outcome::Refused { reason, note } => {
            publish(&ctx, &c, &step_event(true, reason, note)).await;
            Ok(Action::requeue(Duration::from_secs(15)))
        }
        act::Outcome::Waiting(why) => {
            tracing::debug!(why, "waiting");
            Ok(Action::requeue(Duration::from_secs(2)))
        }
        // With backups on, often enough for their status to follow them.
        act::Outcome::Settled if c.spec.backup.is_some() => Ok(Action::requeue(Duration::from_secs(5))),
        act::Outcome::Settled => Ok(Action::requeue(Duration::from_secs(30))),
    }
}

/// The Event of a step made or refused: its reason is the action's too.
fn step_event(warning: bool, reason: &str, note: String) -> Event {
    let type_ = if warning { EventType::Warning } else { EventType::Normal };
    Event { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None }
}

async fn publish(ctx: &Ctx, c: &CairnCluster, event: &Event) {
    if let Err(e) = ctx.recorder.publish(event, &c.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an event");
    }
}

fn error_policy(_: Arc<CairnCluster>, e: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.metrics.reconcile_error(e.kind());
    tracing::warn!(error = %e, "reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

pub async fn run(client: kube::Client, metrics: Arc<Metrics>) {
    let ctx = Arc::new(Ctx::new(client.clone(), metrics));
    let clusters = clusters(client.clone(), ctx.clone());
    tokio::join!(
        clusters,
        crate::ondemand::backup::run(client.clone(), ctx.clone()),
        crate::ondemand::restore::run(client, ctx)
    );
}

/// What in a CairnCluster is worth a reconcile when it changes: the spec (its generation),
/// deletion, and what another controller records in the status (a CairnRestore's restore).
/// Not the rest of the status: the reconciler writes it (the revision, under writes, every
/// time), and reacting to its own writes would reconcile in a loop.
fn worth_a_reconcile(c: &CairnCluster) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    c.metadata.generation.hash(&mut h);
    c.metadata.deletion_timestamp.is_some().hash(&mut h);
    c.metadata.finalizers.hash(&mut h);
    let status = c.status.as_ref();
    status
        .and_then(|s| s.restore.as_ref())
        .map(|r| (r.id.clone(), r.stage == crate::crd::RestoreStage::Starting))
        .hash(&mut h);
    Some(h.finish())
}

async fn clusters(client: kube::Client, ctx: Arc<Ctx>) {
    use kube::runtime::WatchStreamExt;
    let (reader, writer) = kube::runtime::reflector::store();
    let trigger = watcher(Api::<CairnCluster>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(worth_a_reconcile, Default::default());
    Controller::for_stream(trigger, reader)
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
