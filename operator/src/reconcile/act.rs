//! Carrying out the planner's step. A membership change is recorded in the cluster's status
//! before it is made, so that after a crash the planner sees it and finishes it; creating
//! objects that exist already is no error, so every step can be done twice.

use super::observe::{now, Seen};
use super::plan::Step;
use super::recovery;
use super::restore;
use crate::crd::{CairnCluster, ChangeKind, RecordedChange, RecoveryStage, RestoreStage};
use crate::members;
use crate::resources::{self, member};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Member(#[from] members::MemberError),
    #[error("no member answers")]
    NoEndpoint,
}

/// What a step did, for events and for how soon to look again.
pub enum Outcome {
    /// A change was made (reason and note for the Event).
    Changed { reason: &'static str, note: String },
    /// Nothing changed; look again soon.
    Waiting(String),
    /// The step cannot be made (reason and note for a Warning Event); look again later.
    Refused { reason: &'static str, note: String },
    /// As asked.
    Settled,
}

fn ignore_exists<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

fn ignore_missing<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn record(
    client: &kube::Client,
    c: &CairnCluster,
    change: Option<RecordedChange>,
) -> Result<(), kube::Error> {
    patch_status(client, c, json!({ "change": change })).await
}

async fn patch_status(client: &kube::Client, c: &CairnCluster, status: serde_json::Value) -> Result<(), kube::Error> {
    let api = Api::<CairnCluster>::namespaced(client.clone(), &resources::namespace(c));
    api.patch_status(&resources::name(c), &PatchParams::default(), &Patch::Merge(json!({ "status": status }))).await?;
    Ok(())
}

/// Deletes a member's pod, and its claim too when `claim`; what is gone already is no error.
async fn delete_member(client: &kube::Client, ns: &str, name: &str, claim: bool) -> Result<(), kube::Error> {
    ignore_missing(Api::<Pod>::namespaced(client.clone(), ns).delete(name, &DeleteParams::default()).await)?;
    if claim {
        let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns);
        ignore_missing(claims.delete(name, &DeleteParams::default()).await)?;
    }
    Ok(())
}

/// A member's pod, and its claim when `new_claim`: only a member that has never run (or one a
/// restore fills) gets an empty claim. A member already in the cluster whose claim is gone has lost its data; it
/// must not come back under its old id (it would vote with an empty log): the planner
/// removes and re-adds it instead.
async fn create_member(client: &kube::Client, c: &CairnCluster, pod: &Pod, new_claim: bool) -> Result<(), kube::Error> {
    let ns = resources::namespace(c);
    if new_claim {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns);
        ignore_exists(claims.create(&PostParams::default(), &member::claim(c, name)).await)?;
    }
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    ignore_exists(pods.create(&PostParams::default(), pod).await)
}

/// A member to send membership calls to: the leader if known, else any that answers, never
/// `except`.
fn endpoint<'a>(seen: &'a Seen, except: Option<&str>) -> Result<&'a str, ActError> {
    let members = seen.observed.members.as_deref().unwrap_or_default();
    let usable = |name: &str| Some(name) != except;
    let leader = members.iter().find(|m| m.leader && usable(&m.name)).and_then(|m| seen.endpoints.get(&m.name));
    let any =
        members.iter().filter(|m| m.healthy && !m.learner && usable(&m.name)).find_map(|m| seen.endpoints.get(&m.name));
    leader.or(any).map(String::as_str).ok_or(ActError::NoEndpoint)
}

pub async fn act(client: &kube::Client, c: &CairnCluster, seen: &Seen, step: &Step) -> Result<Outcome, ActError> {
    let ns = resources::namespace(c);
    match step {
        Step::Bootstrap { names } => {
            for n in names {
                create_member(client, c, &member::pod(c, n, names, member::Join::New), true).await?;
            }
            Ok(Outcome::Changed { reason: "Bootstrap", note: format!("founding members {}", names.join(", ")) })
        }
        Step::AddLearner { name } => {
            let ep = endpoint(seen, None)?.to_string();
            let rec = RecordedChange { kind: ChangeKind::Adding, member: name.clone(), since: now().as_secs() as i64 };
            if seen.observed.change.is_none() {
                record(client, c, Some(rec)).await?;
            }
            let id = members::add_learner(&ep, &resources::peer_url(c, name)).await?;
            Ok(Outcome::Changed { reason: "MemberAdded", note: format!("{name} ({id:x}) added as a learner") })
        }
        Step::CreatePod { name } => {
            // Known members join the cluster they are in; during bootstrap (nobody answers)
            // a founder comes back with the founders; a recovery's survivor is alone.
            let survivor = seen.observed.recovery.as_ref().is_some_and(|r| r.survivor == *name);
            let (initial, join) = match &seen.observed.members {
                _ if survivor => (vec![name.clone()], member::Join::Existing),
                Some(ms) => (ms.iter().map(|m| m.name.clone()).collect::<Vec<_>>(), member::Join::Existing),
                None => (seen.observed.workloads.iter().map(|w| w.name.clone()).collect(), member::Join::New),
            };
            let mut initial = initial;
            if !initial.contains(name) {
                initial.push(name.clone());
            }
            // A claim only for a member being added (or a founder during bootstrap): one that
            // has run keeps the claim it has, or is replaced.
            let adding =
                matches!(&seen.observed.change, Some(super::plan::Change::Adding { name: n, .. }) if n == name);
            let new_claim = adding || seen.observed.members.is_none();
            create_member(client, c, &member::pod(c, name, &initial, join), new_claim).await?;
            Ok(Outcome::Changed { reason: "PodCreated", note: format!("pod for member {name}") })
        }
        Step::Promote { id, name } => {
            let ep = endpoint(seen, None)?.to_string();
            match members::promote(&ep, *id).await {
                Ok(()) => {
                    Ok(Outcome::Changed { reason: "MemberPromoted", note: format!("{name} ({id:x}) is a voter") })
                }
                Err(e) if e.not_in_sync() => Ok(Outcome::Waiting(format!("learner {name} not in sync yet"))),
                Err(e) => Err(e.into()),
            }
        }
        Step::MoveLeader { from, to } => {
            let leader = seen.observed.members.as_deref().unwrap_or_default().iter().find(|m| m.id == *from);
            let ep = leader.and_then(|m| seen.endpoints.get(&m.name)).ok_or(ActError::NoEndpoint)?;
            members::move_leader(ep, *to).await?;
            Ok(Outcome::Changed { reason: "LeaderMoved", note: format!("leadership from {from:x} to {to:x}") })
        }
        Step::Remove { id, name } => {
            if seen.observed.change.is_none() {
                let rec =
                    RecordedChange { kind: ChangeKind::Removing, member: name.clone(), since: now().as_secs() as i64 };
                record(client, c, Some(rec)).await?;
            }
            let ep = endpoint(seen, Some(name))?.to_string();
            members::remove(&ep, *id).await?;
            Ok(Outcome::Changed { reason: "MemberRemoved", note: format!("{name} ({id:x}) removed") })
        }
        Step::Update { name } => {
            let rec =
                RecordedChange { kind: ChangeKind::Updating, member: name.clone(), since: now().as_secs() as i64 };
            record(client, c, Some(rec)).await?;
            delete_member(client, &ns, name, false).await?;
            Ok(Outcome::Changed {
                reason: "MemberUpdating",
                note: format!("{name}'s pod is made again as the spec asks now (its data stays)"),
            })
        }
        Step::Stalled { reason, .. } => Ok(Outcome::Refused { reason: "UpdateStalled", note: reason.clone() }),
        Step::DeletePod { name, claim } => {
            delete_member(client, &ns, name, *claim).await?;
            Ok(Outcome::Changed { reason: "MemberDeleted", note: format!("pod and claim of {name}") })
        }
        Step::Recover { survivor, lost } => {
            let rec = recovery::start(c, seen, survivor, lost);
            let note = recovery::lost_note(&rec);
            patch_status(client, c, json!({"recovery": rec, "change": null})).await?;
            delete_member(client, &ns, survivor, false).await?;
            for name in lost {
                delete_member(client, &ns, name, true).await?;
            }
            Ok(Outcome::Changed { reason: "QuorumLost", note })
        }
        Step::CreateForcedPod { name } => {
            let pods = Api::<Pod>::namespaced(client.clone(), &ns);
            ignore_exists(pods.create(&PostParams::default(), &member::forced_pod(c, name)).await)?;
            Ok(Outcome::Changed {
                reason: "ForcedNewCluster",
                note: format!("{name} starts from its data as a one-member cluster (--force-new-cluster)"),
            })
        }
        Step::Restart { name } => {
            patch_status(client, c, json!({"recovery": {"stage": RecoveryStage::Restarting}})).await?;
            delete_member(client, &ns, name, false).await?;
            Ok(Outcome::Changed {
                reason: "PodRestarted",
                note: format!("{name} is a one-member cluster: restarted without --force-new-cluster"),
            })
        }
        Step::FinishRecovery { survivor } => {
            let done = recovery::finish(c);
            patch_status(client, c, json!({"recovery": null, "lastRecovery": done})).await?;
            Ok(Outcome::Changed {
                reason: "QuorumRecovered",
                note: format!("{survivor} serves as a one-member cluster; members are added back as learners"),
            })
        }
        Step::Rebuild { lost } => {
            let Some(b) = &c.spec.backup else { return Ok(Outcome::Waiting("no spec.backup to rebuild from".into())) };
            let target = cairn_backup::catalog::Target::Latest;
            let plan = match restore::check(client, &ns, &b.s3, target).await {
                Ok(plan) => plan,
                Err(e) => return Ok(Outcome::Refused { reason: "RebuildImpossible", note: e.to_string() }),
            };
            let founders = (0..seen.observed.replicas).map(|i| super::plan::member_name(&resources::name(c), i));
            let last_seen = c.status.as_ref().and_then(|s| s.revision);
            let id = format!("rebuild-{}", cairn_backup::time::now_ms());
            let rec = restore::record(id, None, b.s3.clone(), (target, None), &plan, last_seen, founders.collect());
            let note = restore::rebuild_note(&rec, lost);
            patch_status(client, c, json!({"restore": rec, "change": null, "recovery": null})).await?;
            for w in &seen.observed.workloads {
                delete_member(client, &ns, &w.name, true).await?;
            }
            Ok(Outcome::Changed { reason: "QuorumLost", note })
        }
        Step::StartRestore => {
            patch_status(client, c, json!({"restore": {"stage": RestoreStage::Starting}})).await?;
            Ok(Outcome::Changed { reason: "MembersStopped", note: "every member stopped: each restores now".into() })
        }
        Step::CreateRestoredPod { name } => {
            let Some(r) = c.status.as_ref().and_then(|s| s.restore.as_ref()) else {
                return Ok(Outcome::Waiting("the restore record is gone".into()));
            };
            // Its claim too, if gone (a rebuild deleted it): the restore fills it.
            let into = member::RestoreInto::Replace { id: r.id.clone(), bump_revision: r.bump_revision };
            create_member(client, c, &member::restored_pod(c, name, &r.members, &r.source, into), true).await?;
            Ok(Outcome::Changed {
                reason: "PodCreated",
                note: format!("pod for member {name}, restoring from the backup"),
            })
        }
        Step::FinishRestore => {
            let done = c.status.as_ref().and_then(|s| s.restore.as_ref()).map(restore::finish);
            let note = match &done {
                Some(r) => format!(
                    "{} restored from {} ({}), revisions going on from {}",
                    r.members.join(", "),
                    restore::location(&r.source.s3),
                    restore::target(&r.source),
                    seen.statuses.values().map(|s| s.revision).max().unwrap_or_default()
                ),
                None => "restore complete".into(),
            };
            patch_status(client, c, json!({"restore": null, "lastRestore": done})).await?;
            Ok(Outcome::Changed { reason: "RestoreCompleted", note })
        }
        Step::Finish => {
            record(client, c, None).await?;
            Ok(Outcome::Changed { reason: "ChangeComplete", note: "membership change complete".into() })
        }
        Step::Wait { reason } | Step::Degraded { reason } => Ok(Outcome::Waiting(reason.clone())),
        Step::Done => Ok(Outcome::Settled),
    }
}
