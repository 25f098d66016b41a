//! The CairnBackup controller. A backup runs once: Running is recorded before the snapshot
//! starts; Completed or Failed after, and then nothing more happens to it. A restarted
//! operator that finds one Running takes it again (an upload never completed is invisible),
//! or, if its catalog made it to S3 already, completes it from there.

use super::crd::{CairnBackup, CairnBackupStatus};
use crate::backup::runner::s3_config;
use crate::backup::writer::upload_full;
use crate::context::Ctx;
use crate::crd::{CairnCluster, S3Location};
use cairn_backup::catalog::{Catalog, Full, Generation, CATALOG};
use cairn_backup::s3::Store;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::ResourceExt;
use std::sync::Arc;
use std::time::Duration;

/// Where a backup goes: its own location as is, or under the cluster's backup location.
pub fn location(b: &CairnBackup, c: &CairnCluster) -> Option<S3Location> {
    if let Some(s3) = &b.spec.s3 {
        return Some(s3.clone());
    }
    let mut s3 = c.spec.backup.as_ref()?.s3.clone();
    let name = b.metadata.name.clone().unwrap_or_default();
    s3.prefix = [s3.prefix.trim_matches('/'), "on-demand", &name]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    Some(s3)
}

/// The catalog of a backup that is one full snapshot.
pub fn catalog_of(f: &Full) -> Catalog {
    Catalog {
        generations: vec![Generation { generation: f.generation, from_revision: f.revision + 1, unix_ms: f.unix_ms }],
        fulls: vec![f.clone()],
        head: f.revision,
        head_unix_ms: f.unix_ms,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

enum Outcome {
    Done(CairnBackupStatus),
    /// Not now (the cluster is not there, or has no member to read from): Pending, again later.
    Later(String),
    Failed(String),
}

async fn reconcile(b: Arc<CairnBackup>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let mut status = b.status.clone().unwrap_or_default();
    if matches!(status.phase.as_deref(), Some("Completed" | "Failed")) {
        return Ok(Action::await_change());
    }
    match take(&b, &ctx, &mut status).await? {
        Outcome::Done(done) => {
            super::patch_status(&ctx.client, &*b, &done).await?;
            let note = format!(
                "revision {} of {} ({} bytes) in {}",
                done.revision.unwrap_or(0),
                b.spec.cluster_name,
                done.size.unwrap_or(0),
                done.location.as_deref().unwrap_or_default()
            );
            super::publish(&ctx, &*b, (EventType::Normal, "Backup"), "BackupCompleted", note).await;
            Ok(Action::await_change())
        }
        Outcome::Later(why) => {
            status.phase = Some("Pending".into());
            status.message = Some(why);
            super::patch_status(&ctx.client, &*b, &status).await?;
            Ok(Action::requeue(Duration::from_secs(5)))
        }
        Outcome::Failed(why) => {
            status.phase = Some("Failed".into());
            status.completion_time = Some(crate::reconcile::status::rfc3339_now());
            status.message = Some(why.clone());
            super::patch_status(&ctx.client, &*b, &status).await?;
            super::publish(&ctx, &*b, (EventType::Warning, "Backup"), "BackupFailed", why).await;
            Ok(Action::await_change())
        }
    }
}

async fn take(b: &CairnBackup, ctx: &Ctx, status: &mut CairnBackupStatus) -> Result<Outcome, Error> {
    let ns = b.namespace().unwrap_or_default();
    let clusters = Api::<CairnCluster>::namespaced(ctx.client.clone(), &ns);
    let Some(c) = clusters.get_opt(&b.spec.cluster_name).await? else {
        return Ok(Outcome::Later(format!("CairnCluster {ns}/{} not found", b.spec.cluster_name)));
    };
    let Some(loc) = location(b, &c) else {
        return Ok(Outcome::Failed(format!(
            "no location: neither spec.s3 nor CairnCluster {}'s spec.backup.s3 is set",
            b.spec.cluster_name
        )));
    };
    let s3 = match s3_config(&ctx.client, &ns, &loc).await {
        Ok(s3) => s3,
        Err(e) => return Ok(Outcome::Failed(e)),
    };
    let store = Store::new(&s3);
    let where_ = store.url("").trim_end_matches('/').to_string();
    let existing = match store.get(CATALOG).await {
        Ok(existing) => existing,
        Err(e) => return Ok(Outcome::Failed(e.to_string())),
    };
    let running = status.phase.as_deref() == Some("Running");
    if let Some((bytes, _)) = existing {
        // Ours if this backup was running (the catalog is its last write); anyone else's is
        // never overwritten.
        let ours = serde_json::from_slice::<Catalog>(&bytes).ok().filter(|_| running);
        return Ok(match ours.and_then(|cat| cat.fulls.first().cloned()) {
            Some(f) => Outcome::Done(completed(status, &store, &where_, &f)),
            None => Outcome::Failed(format!("a backup exists at {where_} already")),
        });
    }
    let endpoints = super::member_endpoints(&ctx.client, &c).await?;
    if endpoints.is_empty() {
        return Ok(Outcome::Later(format!("no member of {} to read from", b.spec.cluster_name)));
    }
    if !running {
        status.phase = Some("Running".into());
        status.start_time = Some(crate::reconcile::status::rfc3339_now());
        status.location = Some(where_.clone());
        status.message = None;
        super::patch_status(&ctx.client, b, status).await?;
    }
    let eps: crate::backup::watch::Endpoints = Arc::new(move || endpoints.clone());
    let f = match upload_full(&store, &eps, 1).await {
        Ok(f) => f,
        Err(e) => return Ok(Outcome::Failed(e.to_string())),
    };
    let body = serde_json::to_vec_pretty(&catalog_of(&f)).unwrap_or_default();
    if let Err(e) = store.put_if(CATALOG, body, None).await {
        return Ok(Outcome::Failed(e.to_string()));
    }
    Ok(Outcome::Done(completed(status, &store, &where_, &f)))
}

fn completed(status: &CairnBackupStatus, store: &Store, location: &str, f: &Full) -> CairnBackupStatus {
    CairnBackupStatus {
        phase: Some("Completed".into()),
        revision: Some(f.revision),
        size: Some(f.bytes as i64),
        stored_size: Some(f.stored_bytes as i64),
        object: Some(store.url(&f.key)),
        location: Some(location.to_string()),
        start_time: status.start_time.clone(),
        completion_time: Some(crate::reconcile::status::rfc3339_now()),
        message: None,
    }
}

fn error_policy(_: Arc<CairnBackup>, e: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "CairnBackup reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

pub async fn run(client: kube::Client, ctx: Arc<Ctx>) {
    Controller::new(Api::<CairnBackup>::all(client), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "CairnBackup controller");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::sample;

    fn backup(yaml: &str) -> CairnBackup {
        let mut b = CairnBackup::new("nightly", serde_yaml::from_str(yaml).unwrap());
        b.metadata.namespace = Some("ns".into());
        b
    }

    #[test]
    fn by_default_under_the_clusters_location_and_never_without_one() {
        let c = sample(
            "demo",
            "{backup: {s3: {bucket: b, prefix: /ns/demo/, credentialsSecret: s}, fullSchedule: '@daily'}}",
        );
        let loc = location(&backup("{clusterName: demo}"), &c).unwrap();
        assert_eq!((loc.bucket.as_str(), loc.prefix.as_str()), ("b", "ns/demo/on-demand/nightly"));
        assert_eq!(loc.credentials_secret.as_deref(), Some("s"));
        let own = location(&backup("{clusterName: demo, s3: {bucket: x, prefix: p}}"), &c).unwrap();
        assert_eq!((own.bucket.as_str(), own.prefix.as_str()), ("x", "p"));
        assert!(location(&backup("{clusterName: demo}"), &sample("demo", "{}")).is_none());
    }

    #[test]
    fn its_catalog_restores_the_one_full_snapshot() {
        let f = Full {
            revision: 42,
            key: "full/1-g1.snap.zst".into(),
            sha256: "00".into(),
            bytes: 10,
            stored_bytes: 5,
            unix_ms: 1000,
            generation: 1,
            restart: true,
        };
        let plan = catalog_of(&f).plan(&[], cairn_backup::catalog::Target::Latest).unwrap();
        assert_eq!((plan.full.revision, plan.reaches, plan.deltas.len()), (42, 42, 0));
    }
}
