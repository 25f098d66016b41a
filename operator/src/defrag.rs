//! Automatic defragmentation (DESIGN §4): on a cron schedule (every member), and/or whenever a
//! member's fragmentation (1 − dbSizeInUse/dbSize) passes the threshold while its database is
//! at least minDbSize (that member). Only while the cluster is as its spec asks and every voter
//! is healthy. One member at a time, followers first; the leader last, after leadership moved
//! to a follower already done, so that the cluster never waits on a defragmenting leader;
//! health checked after each member, and the run stops at the first that does not come back.
//! A NOSPACE alarm is disarmed at the end: the space defragmentation gave back is what it needed.

use crate::backup::cron::Schedule;
use crate::crd::{CairnCluster, DefragSpec};
use crate::members::{self, MemberStatus};
use crate::metrics::Metrics;
use crate::reconcile::observe::Seen;
use kube::runtime::events::{Event, EventType};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub id: u64,
    pub endpoint: String,
    pub leader: bool,
    pub db_size: i64,
    pub db_size_in_use: i64,
}

/// What to defragment now, in order, and why.
#[derive(Debug, PartialEq)]
pub struct Due {
    pub reason: String,
    pub members: Vec<Candidate>,
}

pub fn fragmentation(m: &Candidate) -> f64 {
    if m.db_size <= 0 {
        return 0.0;
    }
    1.0 - m.db_size_in_use as f64 / m.db_size as f64
}

/// Checks the spec; a message for the first thing wrong.
pub fn check(spec: &DefragSpec) -> Result<(), String> {
    if let Some(s) = &spec.schedule {
        Schedule::parse(s).map_err(|e| format!("spec.defrag.schedule: {e}"))?;
    }
    if let Some(q) = &spec.min_db_size {
        crate::units::quantity(q).ok_or_else(|| format!("spec.defrag.minDbSize: {q:?} is not a quantity"))?;
    }
    if spec.schedule.is_none() && spec.fragmentation_threshold.is_none() {
        return Err("spec.defrag: neither a schedule nor a fragmentationThreshold".into());
    }
    Ok(())
}

/// Whether a run is due: `since_ms` is the last run's time (or the cluster's creation).
pub fn due(spec: &DefragSpec, members: &[Candidate], since_ms: i64, now_ms: i64) -> Option<Due> {
    let order = |mut ms: Vec<Candidate>| {
        ms.sort_by(|a, b| (a.leader, &a.name).cmp(&(b.leader, &b.name)));
        ms
    };
    if let Some(s) = spec.schedule.as_deref().and_then(|s| Schedule::parse(s).ok()) {
        let since = k8s_openapi::jiff::Timestamp::from_millisecond(since_ms).ok()?;
        if s.next_after(since).is_some_and(|t| t.as_millisecond() <= now_ms) {
            return Some(Due { reason: format!("scheduled ({s})"), members: order(members.to_vec()) });
        }
    }
    let threshold = spec.fragmentation_threshold?;
    let min = spec.min_db_size.as_deref().and_then(crate::units::quantity).unwrap_or(0);
    let over: Vec<Candidate> =
        members.iter().filter(|m| m.db_size >= min && fragmentation(m) >= threshold).cloned().collect();
    let worst = over.iter().map(fragmentation).fold(0.0, f64::max);
    (!over.is_empty()).then(|| Due {
        reason: format!("fragmented (up to {:.0}%, threshold {:.0}%)", worst * 100.0, threshold * 100.0),
        members: order(over),
    })
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub defragmented: Vec<String>,
    pub reclaimed: i64,
    pub disarmed: usize,
}

async fn healthy(endpoint: &str) -> Option<MemberStatus> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if let Ok(s) = members::status(endpoint).await {
            if s.leader != 0 {
                return Some(s);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

/// Runs a due defragmentation; `all` are every voter (a leader needs one to hand over to).
pub async fn run(due: &Due, all: &[Candidate]) -> Result<Outcome, (Outcome, String)> {
    let mut out = Outcome::default();
    for m in &due.members {
        if m.leader {
            // Preferably to a follower already defragmented.
            let to = all.iter().filter(|o| !o.leader).max_by_key(|o| out.defragmented.contains(&o.name));
            let Some(to) = to else { return Err((out, "no follower to hand leadership to".into())) };
            if let Err(e) = members::move_leader(&m.endpoint, to.id).await {
                return Err((out, format!("moving leadership from {} to {}: {e}", m.name, to.name)));
            }
            // Wait until the old leader knows it is one no longer.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                match members::status(&m.endpoint).await {
                    Ok(s) if s.leader != 0 && s.leader != m.id => break,
                    _ if tokio::time::Instant::now() > deadline => {
                        return Err((out, format!("{} still leads after MoveLeader", m.name)));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
        tracing::info!(member = %m.name, db_size = m.db_size, in_use = m.db_size_in_use, "defragmenting");
        if let Err(e) = members::defragment(&m.endpoint).await {
            return Err((out, format!("defragmenting {}: {e}", m.name)));
        }
        let Some(after) = healthy(&m.endpoint).await else {
            return Err((out, format!("{} is not healthy after defragmentation", m.name)));
        };
        out.reclaimed += (m.db_size - after.db_size).max(0);
        out.defragmented.push(m.name.clone());
    }
    if let Some(any) = all.first() {
        match members::disarm_nospace(&any.endpoint).await {
            Ok(n) => out.disarmed = n,
            Err(e) => return Err((out, format!("disarming NOSPACE: {e}"))),
        }
    }
    Ok(out)
}

/// The defragmentation part of a reconcile of a cluster that is as its spec asks: runs one
/// if due, records status.lastDefrag; returns the Events to publish.
pub async fn reconcile(
    metrics: &Metrics,
    c: &CairnCluster,
    seen: &Seen,
    status: &mut crate::crd::CairnClusterStatus,
) -> Vec<Event> {
    let Some(spec) = &c.spec.defrag else { return Vec::new() };
    let event = |type_, reason: &str, note: String| Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Defragment".into(),
        secondary: None,
    };
    if let Err(e) = check(spec) {
        return vec![event(EventType::Warning, "InvalidDefragSpec", e)];
    }
    let mut voters = Vec::new();
    for m in seen.observed.members.iter().flatten().filter(|m| !m.learner) {
        let (Some(st), Some(endpoint)) = (seen.statuses.get(&m.name), seen.endpoints.get(&m.name)) else {
            return Vec::new(); // not every voter answers: not now
        };
        if !m.healthy {
            return Vec::new();
        }
        voters.push(Candidate {
            name: m.name.clone(),
            id: m.id,
            endpoint: endpoint.clone(),
            leader: m.leader,
            db_size: st.db_size,
            db_size_in_use: st.db_size_in_use,
        });
    }
    let last = c.status.as_ref().and_then(|s| s.last_defrag.as_ref()).and_then(|d| d.time.as_deref());
    let since = last
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .or_else(|| c.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .map_or(0, |t| t.as_millisecond());
    let now = cairn_backup::time::now_ms();
    let Some(due) = due(spec, &voters, since, now) else { return Vec::new() };
    tracing::info!(cluster = %crate::resources::name(c), reason = %due.reason, "defragmenting");
    let labels = crate::metrics::cluster(c);
    let (out, failure) = match run(&due, &voters).await {
        Ok(out) => (out, None),
        Err((out, e)) => (out, Some(e)),
    };
    metrics.defrag_reclaimed_bytes.get_or_create(&labels).inc_by(out.reclaimed.max(0) as u64);
    let done = out.defragmented.join(", ");
    status.last_defrag = Some(crate::crd::LastDefrag {
        time: Some(cairn_backup::time::format_ms(now)),
        reclaimed_bytes: Some(out.reclaimed),
    });
    match failure {
        None => {
            metrics.defragmented(&labels, "ok");
            let disarmed =
                if out.disarmed > 0 { format!("; {} NOSPACE alarm(s) disarmed", out.disarmed) } else { String::new() };
            vec![event(
                EventType::Normal,
                "Defragmented",
                format!("{done} defragmented, {}: {} bytes reclaimed{disarmed}", due.reason, out.reclaimed),
            )]
        }
        Some(e) => {
            metrics.defragmented(&labels, "failed");
            vec![event(EventType::Warning, "DefragFailed", format!("{e} (defragmented before it: {done})"))]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, leader: bool, db_size: i64, in_use: i64) -> Candidate {
        Candidate { name: name.into(), id: 1, endpoint: String::new(), leader, db_size, db_size_in_use: in_use }
    }

    const MI: i64 = 1 << 20;

    #[test]
    fn a_threshold_picks_the_fragmented_members_followers_first() {
        let spec = DefragSpec { schedule: None, fragmentation_threshold: Some(0.5), min_db_size: Some("100Mi".into()) };
        let ms = [
            m("c-0", true, 400 * MI, 100 * MI),
            m("c-1", false, 400 * MI, 300 * MI),
            m("c-2", false, 200 * MI, 20 * MI),
        ];
        let d = due(&spec, &ms, 0, 0).unwrap();
        assert_eq!(d.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["c-2", "c-0"]);
        assert!(d.reason.contains("90%"), "{}", d.reason);
        // Small databases are left alone, however fragmented.
        let small = [m("c-0", true, 50 * MI, MI)];
        assert_eq!(due(&spec, &small, 0, 0), None);
    }

    #[test]
    fn a_schedule_takes_every_member_once_per_period() {
        let spec = DefragSpec { schedule: Some("0 3 * * *".into()), fragmentation_threshold: None, min_db_size: None };
        let ms = [m("c-0", true, MI, MI), m("c-1", false, MI, MI)];
        let at = |s: &str| s.parse::<k8s_openapi::jiff::Timestamp>().unwrap().as_millisecond();
        let last = at("2026-11-20T03:00:00Z");
        assert_eq!(due(&spec, &ms, last, at("2026-11-21T02:59:00Z")), None);
        let d = due(&spec, &ms, last, at("2026-11-21T03:00:30Z")).unwrap();
        assert_eq!(d.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["c-1", "c-0"]);
    }

    #[test]
    fn specs_need_a_trigger() {
        let none = DefragSpec { schedule: None, fragmentation_threshold: None, min_db_size: None };
        assert!(check(&none).unwrap_err().contains("neither"));
        let bad = DefragSpec { schedule: Some("daily".into()), fragmentation_threshold: None, min_db_size: None };
        assert!(check(&bad).unwrap_err().contains("spec.defrag.schedule"));
    }
}
