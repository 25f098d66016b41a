//! What the planner needs, read from the API (the cluster's pods and claims) and from the
//! members themselves (the member list from any that answers; each member's status at its
//! pod IP).

use super::plan::{Change, Member, Observed, Recovery, Restoring, Workload};
use crate::crd::{CairnCluster, ChangeKind, RecoveryStage, RestoreStage};
use crate::members::{self, MemberStatus};
use crate::resources::{self, CLIENT_PORT, MEMBER_LABEL};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Since when each member has looked unhealthy (by cluster uid and member name); kept by the
/// operator process (a restart starts the count again, which only delays a replacement).
#[derive(Default)]
pub struct Unhealthy(Mutex<HashMap<(String, String), Instant>>);

/// What observing found besides the plan's input: for acting and for status.
pub struct Seen {
    pub observed: Observed,
    /// Pod IP:port of each member that has one, by member name.
    pub endpoints: HashMap<String, String>,
    pub statuses: HashMap<String, MemberStatus>,
    /// Member ids by name.
    pub ids: HashMap<String, u64>,
    /// The cluster's claims as listed (their sizes are checked against the spec).
    pub claims: Vec<PersistentVolumeClaim>,
}

/// Asking each listed member for its status, and keeping count of how long each has been
/// unhealthy.
struct Asked<'a> {
    endpoints: &'a HashMap<String, String>,
    unhealthy: &'a Unhealthy,
    uid: &'a str,
    workloads: &'a mut Vec<Workload>,
    statuses: &'a mut HashMap<String, MemberStatus>,
    ids: &'a mut HashMap<String, u64>,
}

impl Asked<'_> {
    async fn members(&mut self, listed: Vec<members::ListedMember>) -> Vec<Member> {
        let mut out = Vec::new();
        for m in listed {
            let status = match self.endpoints.get(&m.name) {
                Some(ep) => members::status(ep).await.ok(),
                None => None,
            };
            let healthy = status.as_ref().is_some_and(|s| s.leader != 0);
            let leader = status.as_ref().is_some_and(|s| s.leader == m.id);
            let (reachable, applied) = (status.is_some(), status.as_ref().map_or(0, |s| s.applied));
            {
                let mut since = self.unhealthy.0.lock().unwrap_or_else(|e| e.into_inner());
                let key = (self.uid.to_string(), m.name.clone());
                if healthy {
                    since.remove(&key);
                } else {
                    let at = *since.entry(key).or_insert_with(Instant::now);
                    let i = slot(self.workloads, &m.name);
                    self.workloads[i].unhealthy_for = Some(at.elapsed());
                }
            }
            if let Some(s) = status {
                self.statuses.insert(m.name.clone(), s);
            }
            self.ids.insert(m.name.clone(), m.id);
            out.push(Member { id: m.id, name: m.name, learner: m.learner, healthy, leader, reachable, applied });
        }
        out
    }
}

/// The index of `name`'s workload, made empty if missing.
fn slot(w: &mut Vec<Workload>, name: &str) -> usize {
    match w.iter().position(|x| x.name == name) {
        Some(i) => i,
        None => {
            w.push(Workload { name: name.to_string(), ..Default::default() });
            w.len() - 1
        }
    }
}

pub fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn member_of(labels: Option<&std::collections::BTreeMap<String, String>>) -> Option<String> {
    labels?.get(MEMBER_LABEL).cloned()
}

pub async fn observe(client: &kube::Client, c: &CairnCluster, unhealthy: &Unhealthy) -> Result<Seen, kube::Error> {
    let ns = resources::namespace(c);
    let lp = ListParams::default().labels(&resources::selector(c));
    let pods = Api::<Pod>::namespaced(client.clone(), &ns).list(&lp).await?;
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns).list(&lp).await?;
    let mut workloads: Vec<Workload> = Vec::new();
    let mut endpoints = HashMap::new();
    for p in &pods {
        let Some(name) = member_of(p.metadata.labels.as_ref()) else { continue };
        let i = slot(&mut workloads, &name);
        let w = &mut workloads[i];
        w.pod = true;
        w.pod_terminating = p.metadata.deletion_timestamp.is_some();
        w.forced = resources::member::is_forced(p);
        w.outdated = !w.pod_terminating && resources::member::is_outdated(c, &name, p);
        let status = p.status.as_ref();
        w.pod_ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if let Some(ip) = status.and_then(|s| s.pod_ip.clone()).filter(|_| !w.pod_terminating) {
            endpoints.insert(name.clone(), format!("{ip}:{CLIENT_PORT}"));
        }
    }
    for pvc in &claims {
        let Some(name) = member_of(pvc.metadata.labels.as_ref()) else { continue };
        let i = slot(&mut workloads, &name);
        workloads[i].claim = pvc.metadata.deletion_timestamp.is_none();
    }
    // The member list from the first member that answers.
    let mut listed = None;
    for ep in endpoints.values() {
        if let Ok(l) = members::list(ep).await {
            listed = Some(l);
            break;
        }
    }
    let mut statuses = HashMap::new();
    let mut ids = HashMap::new();
    let uid = c.metadata.uid.clone().unwrap_or_default();
    let mut asked = Asked {
        endpoints: &endpoints,
        unhealthy,
        uid: &uid,
        workloads: &mut workloads,
        statuses: &mut statuses,
        ids: &mut ids,
    };
    let members = match listed {
        Some(listed) => Some(asked.members(listed).await),
        None => None,
    };
    // Nobody could answer for the cluster: what the most advanced member that answers holds
    // locally, for deciding whether quorum is lost for good.
    let mut local = None;
    if members.is_none() {
        let mut best: Option<(u64, Vec<members::ListedMember>)> = None;
        for ep in endpoints.values() {
            let (Ok(l), Ok(s)) = (members::local_list(ep).await, members::status(ep).await) else { continue };
            if best.as_ref().is_none_or(|(applied, _)| s.applied > *applied) {
                best = Some((s.applied, l));
            }
        }
        if let Some((_, l)) = best {
            local = Some(asked.members(l).await);
        }
    }
    let status = c.status.clone().unwrap_or_default();
    let recovery = status.recovery.map(|r| Recovery {
        survivor: r.survivor,
        lost: r.lost,
        restarting: r.stage == RecoveryStage::Restarting,
    });
    let restore = status
        .restore
        .as_ref()
        .map(|r| Restoring { members: r.members.clone(), starting: r.stage == RestoreStage::Starting });
    let founded = status.revision.is_some();
    let change = status.change.map(|r| match r.kind {
        ChangeKind::Adding => Change::Adding { name: r.member, since: Duration::from_secs(r.since.max(0) as u64) },
        ChangeKind::Removing => Change::Removing { name: r.member },
        ChangeKind::Updating => Change::Updating { name: r.member, since: Duration::from_secs(r.since.max(0) as u64) },
    });
    let observed = Observed {
        cluster: resources::name(c),
        replicas: c.spec.replicas.max(1) as usize,
        members,
        local,
        // Every slot is a pod's, a claim's, or an unhealthy member's (then without pod and
        // claim: its data is gone).
        workloads,
        change,
        recovery,
        restore,
        founded,
        backup: c.spec.backup.is_some(),
        recovery_mode: c.spec.recovery.mode,
        // The schema checks the pattern; a duration it lets through that does not parse
        // counts as the default.
        unreachable_for: crate::units::duration(&c.spec.recovery.unreachable_for).unwrap_or(Duration::from_secs(300)),
        progress_deadline: crate::units::duration(&c.spec.progress_deadline).unwrap_or(Duration::from_secs(300)),
        replace_after: crate::units::duration(&c.spec.replace_unhealthy_after).unwrap_or(Duration::from_secs(120)),
        now: now(),
    };
    Ok(Seen { observed, endpoints, statuses, ids, claims: claims.items })
}
