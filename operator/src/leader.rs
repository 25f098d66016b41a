//! Leader election on a coordination.k8s.io Lease, so that two operator replicas never act
//! at once. The holder renews the lease every third of its duration and stops acting (the
//! process exits, and restarts as a follower) when it has not renewed within the renew
//! deadline, two thirds of the duration, counted from when its last successful renewal was
//! sent. Another replica takes the lease only once it has seen the lease unchanged for a
//! whole duration on its own clock: the holder's renewTime is never compared with our clock,
//! so clock skew between nodes cannot make two replicas act. Optimistic concurrency (the
//! lease's resourceVersion) lets one taker win.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub struct Election {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The other holder's lease as last seen changed, and when (on our clock).
    observed: Mutex<Option<(String, Instant)>>,
}

/// What changes at every renewal of a lease: its holder and renewTime (the resourceVersion
/// changes with them).
fn record(lease: &Lease) -> String {
    let spec = lease.spec.clone().unwrap_or_default();
    format!("{:?}/{:?}/{:?}", lease.metadata.resource_version, spec.holder_identity, spec.renew_time)
}

/// Whether a lease seen unchanged since `since` (our clock) may be taken.
fn expired(since: Instant, now: Instant, duration: Duration) -> bool {
    now.duration_since(since) >= duration
}

/// The renew deadline: a holder that has not renewed within it stops acting, a third of the
/// duration before anyone else may take the lease.
pub fn renew_deadline(duration: Duration) -> Duration {
    duration * 2 / 3
}

impl Election {
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: String, duration: Duration) -> Election {
        Election {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity,
            duration,
            observed: Mutex::new(None),
        }
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One attempt to hold the lease; true when this replica holds it now.
    pub async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        if !mine {
            let seen = record(&lease);
            let mut observed = self.observed.lock().unwrap_or_else(|e| e.into_inner());
            match observed.as_ref() {
                Some((last, since)) if *last == seen => {
                    if !expired(*since, Instant::now(), self.duration) {
                        return Ok(false);
                    }
                }
                // Changed (renewed, or a new holder) since we last looked: its duration starts now.
                _ => {
                    *observed = Some((seen, Instant::now()));
                    return Ok(false);
                }
            }
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine { spec.acquire_time.clone() } else { None };
        lease.spec = Some(self.spec(now, acquired, transitions));
        // The resourceVersion read above makes this a compare-and-swap: of two takers, one wins.
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_hold().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(self.duration / 5).await;
        }
    }

    /// Renews the lease until it cannot be renewed within the renew deadline; then returns.
    /// A renewal counts from when it was sent: the lease's duration runs for the others from
    /// when they see it, which is later.
    pub async fn keep(&self) {
        let deadline = renew_deadline(self.duration);
        let mut renewed = Instant::now();
        loop {
            let wait = (self.duration / 3).min(deadline.saturating_sub(renewed.elapsed()));
            tokio::time::sleep(wait).await;
            let sent = Instant::now();
            let attempt = tokio::time::timeout(deadline.saturating_sub(renewed.elapsed()), self.try_hold()).await;
            match attempt {
                Ok(Ok(true)) => renewed = sent,
                Ok(Ok(false)) => return,
                Ok(Err(e)) => tracing::warn!(error = %e, "renewing the lease"),
                Err(_) => tracing::warn!("renewing the lease: no answer within the renew deadline"),
            }
            if renewed.elapsed() >= deadline {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_taken_only_after_a_whole_duration_unchanged_on_our_clock() {
        let d = Duration::from_secs(15);
        let seen = Instant::now();
        assert!(!expired(seen, seen + Duration::from_secs(14), d));
        assert!(expired(seen, seen + d, d));
        // The holder stops acting a third of the duration before anyone may take over.
        assert_eq!(renew_deadline(d), Duration::from_secs(10));
        assert!(renew_deadline(d) < d);
    }

    #[test]
    fn every_renewal_changes_the_record_a_taker_watches() {
        let lease = |rv: &str, renewed: i64| Lease {
            metadata: ObjectMeta { resource_version: Some(rv.into()), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some("a".into()),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
                ..Default::default()
            }),
        };
        assert_eq!(record(&lease("1", 10)), record(&lease("1", 10)));
        assert_ne!(record(&lease("1", 10)), record(&lease("2", 20)));
    }
}
