//! The CairnRestore controller. It checks that the backup holds what is asked — before
//! anything is stopped — then records the restore in the cluster's status, where the
//! cluster's own planner carries it out (every member stopped, then each restored and
//! started; see `reconcile::plan::restoring`), and follows it there to Completed. A restore
//! runs once: Completed or Failed is final.

use super::crd::CairnBackup;
use super::restore_crd::{CairnRestore, CairnRestoreStatus};
use crate::context::Ctx;
use crate::crd::{CairnCluster, RecordedRestore, S3Location};
use crate::reconcile::plan::member_name;
use crate::reconcile::restore::{self, Unusable};
use crate::reconcile::status::rfc3339_now;
use cairn_backup::catalog::Target;
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::ResourceExt;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// What a reconcile found.
enum Next {
    /// Not yet (with what it waits for).
    Pending(String),
    /// Never (nothing was stopped).
    Failed(String),
    /// Recorded in the cluster: follow it.
    Started(Box<RecordedRestore>),
}

async fn reconcile(r: Arc<CairnRestore>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let mut status = r.status.clone().unwrap_or_default();
    if matches!(status.phase.as_deref(), Some("Completed" | "Failed")) {
        return Ok(Action::await_change());
    }
    let ns = r.namespace().unwrap_or_default();
    let clusters = Api::<CairnCluster>::namespaced(ctx.client.clone(), &ns);
    let Some(c) = clusters.get_opt(&r.spec.cluster_name).await? else {
        let why = format!("CairnCluster {ns}/{} not found", r.spec.cluster_name);
        return pending(&ctx, &r, status, why).await;
    };
    let uid = r.metadata.uid.clone().unwrap_or_default();
    let cs = c.status.clone().unwrap_or_default();
    if let Some(done) = cs.last_restore.as_ref().filter(|d| d.id == uid) {
        status.phase = Some("Completed".into());
        status.stage = None;
        status.revision = status.revision.or(done.source.revision);
        status.new_revision = cs.revision;
        status.completion_time = Some(rfc3339_now());
        status.message = None;
        super::patch_status(&ctx.client, &*r, &status).await?;
        let note = format!(
            "{} restored from {}; it goes on from revision {}",
            r.spec.cluster_name,
            restore::location(&done.source.s3),
            cs.revision.unwrap_or_default()
        );
        super::publish(&ctx, &*r, (EventType::Normal, "Restore"), "RestoreCompleted", note).await;
        return Ok(Action::await_change());
    }
    let next = match cs.restore.as_ref() {
        Some(rec) if rec.id == uid => Next::Started(Box::new(rec.clone())),
        _ if status.phase.as_deref() == Some("Restoring") => {
            Next::Failed(format!("CairnCluster {}'s record of this restore is gone", r.spec.cluster_name))
        }
        _ => start(&ctx, &r, &c, &uid).await?,
    };
    match next {
        Next::Pending(why) => pending(&ctx, &r, status, why).await,
        Next::Failed(why) => {
            status.phase = Some("Failed".into());
            status.completion_time = Some(rfc3339_now());
            status.message = Some(why.clone());
            super::patch_status(&ctx.client, &*r, &status).await?;
            super::publish(&ctx, &*r, (EventType::Warning, "Restore"), "RestoreFailed", why).await;
            Ok(Action::await_change())
        }
        Next::Started(rec) => {
            let before = status.clone();
            let first = status.phase.as_deref() != Some("Restoring");
            status.phase = Some("Restoring".into());
            status.stage = Some(rec.stage);
            status.revision = rec.source.revision;
            status.location = Some(restore::location(&rec.source.s3));
            status.start_time = status.start_time.or(Some(rec.started.clone()));
            status.message = None;
            // Followed every few seconds: written only when the stage moves, so that it does
            // not wake itself up with its own writes.
            if status != before {
                super::patch_status(&ctx.client, &*r, &status).await?;
            }
            if first {
                let note = format!(
                    "{}: every member stops, then restores {} from {}",
                    r.spec.cluster_name,
                    restore::target(&rec.source),
                    restore::location(&rec.source.s3)
                );
                super::publish(&ctx, &*r, (EventType::Normal, "Restore"), "RestoreStarted", note).await;
            }
            Ok(Action::requeue(Duration::from_secs(3)))
        }
    }
}

async fn pending(ctx: &Ctx, r: &CairnRestore, mut status: CairnRestoreStatus, why: String) -> Result<Action, Error> {
    if status.phase.as_deref() != Some("Pending") || status.message.as_deref() != Some(&why) {
        status.phase = Some("Pending".into());
        status.message = Some(why);
        super::patch_status(&ctx.client, r, &status).await?;
    }
    Ok(Action::requeue(Duration::from_secs(5)))
}

/// Where to restore from, and the revision a CairnBackup recorded.
async fn source(
    ctx: &Ctx,
    r: &CairnRestore,
    c: &CairnCluster,
) -> Result<Result<(S3Location, Option<i64>), Next>, Error> {
    if let Some(name) = &r.spec.backup_name {
        let ns = r.namespace().unwrap_or_default();
        let Some(b) = Api::<CairnBackup>::namespaced(ctx.client.clone(), &ns).get_opt(name).await? else {
            return Ok(Err(Next::Pending(format!("CairnBackup {ns}/{name} not found"))));
        };
        let bs = b.status.clone().unwrap_or_default();
        match bs.phase.as_deref() {
            Some("Completed") => {}
            Some("Failed") => return Ok(Err(Next::Failed(format!("CairnBackup {name} failed: nothing to restore")))),
            _ => return Ok(Err(Next::Pending(format!("CairnBackup {name} has not completed")))),
        }
        let Some(loc) = super::backup::location(&b, c) else {
            return Ok(Err(Next::Failed(format!("CairnBackup {name} has no location"))));
        };
        return Ok(Ok((loc, bs.revision)));
    }
    match r.spec.s3.clone().or_else(|| c.spec.backup.as_ref().map(|b| b.s3.clone())) {
        Some(s3) => Ok(Ok((s3, None))),
        None => Ok(Err(Next::Failed(format!(
            "no backup to restore from: set spec.backupName or spec.s3, or spec.backup on CairnCluster {}",
            r.spec.cluster_name
        )))),
    }
}

/// Checks the backup, then records the restore in the cluster's status.
async fn start(ctx: &Ctx, r: &CairnRestore, c: &CairnCluster, uid: &str) -> Result<Next, Error> {
    let cs = c.status.clone().unwrap_or_default();
    if let Some(other) = &cs.restore {
        let by = other.requested_by.as_deref().unwrap_or("a rebuild after quorum loss");
        return Ok(Next::Pending(format!("{} is being restored by {by}: this restore waits", r.spec.cluster_name)));
    }
    if cs.recovery.is_some() {
        return Ok(Next::Pending(format!(
            "{} is recovering from quorum loss: this restore waits",
            r.spec.cluster_name
        )));
    }
    let (s3, recorded) = match source(ctx, r, c).await? {
        Ok(s) => s,
        Err(next) => return Ok(next),
    };
    let (target, time) = match (r.spec.revision.or(recorded), &r.spec.time) {
        (_, Some(t)) if r.spec.revision.is_some() => {
            return Ok(Next::Failed(format!("give revision or time, not both ({t})")))
        }
        (_, Some(t)) => match cairn_backup::time::parse_time(t) {
            Ok(ms) => (Target::Time(ms), Some(t.clone())),
            Err(e) => return Ok(Next::Failed(format!("spec.time: {e}"))),
        },
        (Some(rev), None) if rev <= 0 => return Ok(Next::Failed("spec.revision must be positive".into())),
        (Some(rev), None) => (Target::Revision(rev), None),
        (None, None) => (Target::Latest, None),
    };
    let ns = r.namespace().unwrap_or_default();
    let plan = match restore::check(&ctx.client, &ns, &s3, target).await {
        Ok(plan) => plan,
        Err(Unusable::Refused(why)) => return Ok(Next::Failed(format!("refused before anything was stopped: {why}"))),
        Err(Unusable::Unreadable(why)) => return Ok(Next::Pending(why)),
    };
    // The newest revision any member answers with now, so that the restored cluster's
    // revisions go on past it (the status may be a reconcile old).
    let mut last_seen = cs.revision;
    for ep in super::member_endpoints(&ctx.client, c).await? {
        if let Ok(s) = crate::members::status(&ep).await {
            last_seen = last_seen.max(Some(s.revision));
        }
    }
    let founders = (0..c.spec.replicas.max(1) as usize).map(|i| member_name(&r.spec.cluster_name, i)).collect();
    let rec = restore::record(uid.to_string(), Some(r.name_any()), s3, (target, time), &plan, last_seen, founders);
    let clusters = Api::<CairnCluster>::namespaced(ctx.client.clone(), &ns);
    let body = serde_json::json!({ "status": { "restore": rec, "change": null } });
    clusters.patch_status(&r.spec.cluster_name, &PatchParams::default(), &Patch::Merge(body)).await?;
    Ok(Next::Started(Box::new(rec)))
}

fn error_policy(_: Arc<CairnRestore>, e: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "CairnRestore reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

pub async fn run(client: kube::Client, ctx: Arc<Ctx>) {
    Controller::new(Api::<CairnRestore>::all(client), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "CairnRestore controller");
            }
        })
        .await;
}
