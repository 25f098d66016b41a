//! Leases: which exist, which keys hang on each, and — on the leader only — when each expires.
//!
//! Grants and revokes are raft entries, applied by the applier, which also tells the lessor
//! about every put and delete so it knows each lease's keys. Expiry is not replicated state:
//! the leader keeps deadlines, and proposes a revoke when one passes. A new leader (or a
//! restarted member) starts every deadline afresh, as etcd does, so a lease never expires
//! early because of a leader change.

mod ids;

pub use ids::LeaseIdGenerator;

use crate::error::EtcdError;
use crate::proto::cairnpb::LeaseRecord;
use crate::proto::mvccpb::{event::EventType, Event};
use crate::storage::backend::{Backend, BackendError, PREFIX_LEASE};
use prost::Message;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// etcd's largest TTL, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// How long an expired lease waits before its revoke is proposed again.
const RETRY_EXPIRED: Duration = Duration::from_secs(3);

pub fn record_key(id: i64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = PREFIX_LEASE;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

pub fn record_value(id: i64, ttl: i64) -> Vec<u8> {
    LeaseRecord { id, ttl }.encode_to_vec()
}

struct Lease {
    ttl: i64,
    /// Only on the leader; elsewhere leases do not expire.
    expiry: Option<Instant>,
    keys: BTreeSet<Vec<u8>>,
}

#[derive(Default)]
struct Inner {
    leases: HashMap<i64, Lease>,
    key_lease: HashMap<Vec<u8>, i64>,
    primary: bool,
}

pub struct Lessor {
    inner: Mutex<Inner>,
    min_ttl: i64,
}

/// What LeaseTimeToLive reports.
pub struct TimeToLive {
    pub remaining: i64,
    pub granted: i64,
    pub keys: Vec<Vec<u8>>,
}

impl Lessor {
    /// `min_ttl`: shorter grants are raised to it (etcd: 1.5 election timeouts, in whole seconds).
    pub fn new(min_ttl: i64) -> Lessor {
        Lessor { inner: Mutex::default(), min_ttl }
    }

    /// The leases in the backend and the keys attached to them.
    /// Replaces every lease with the backend's (at start, and after a snapshot is installed).
    pub fn load(&self, backend: &Backend, leased_keys: Vec<(Vec<u8>, i64)>) -> Result<(), BackendError> {
        let mut inner = self.lock();
        inner.leases.clear();
        inner.key_lease.clear();
        for item in backend.scan_prefix([PREFIX_LEASE]) {
            let (k, v) = item?;
            let rec = LeaseRecord::decode(&v[..])
                .map_err(|e| BackendError::Corrupt { key: hex::encode(&k), why: e.to_string() })?;
            inner.leases.insert(rec.id, Lease { ttl: rec.ttl, expiry: None, keys: BTreeSet::new() });
        }
        for (key, id) in leased_keys {
            inner.attach(key, id);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn exists(&self, id: i64) -> bool {
        self.lock().leases.contains_key(&id)
    }

    /// Applies a grant; returns the TTL granted (raised to the minimum).
    pub fn grant(&self, id: i64, ttl: i64) -> Result<i64, EtcdError> {
        if ttl > MAX_LEASE_TTL {
            return Err(EtcdError::LeaseTtlTooLarge);
        }
        let ttl = ttl.max(self.min_ttl);
        let mut inner = self.lock();
        if inner.leases.contains_key(&id) {
            return Err(EtcdError::LeaseExists);
        }
        let expiry = inner.primary.then(|| Instant::now() + Duration::from_secs(ttl as u64));
        inner.leases.insert(id, Lease { ttl, expiry, keys: BTreeSet::new() });
        let metrics = &crate::metrics::get().lease;
        metrics.granted.inc();
        metrics.ttl.observe(ttl as f64);
        Ok(ttl)
    }

    /// The keys a revoke must delete, or None if there is no such lease.
    pub fn keys_of(&self, id: i64) -> Option<Vec<Vec<u8>>> {
        self.lock().leases.get(&id).map(|l| l.keys.iter().cloned().collect())
    }

    pub fn remove(&self, id: i64) {
        let mut inner = self.lock();
        if let Some(l) = inner.leases.remove(&id) {
            crate::metrics::get().lease.revoked.inc();
            for k in l.keys {
                inner.key_lease.remove(&k);
            }
        }
    }

    /// Follows a put or delete: keys move between leases as their values change.
    pub fn on_event(&self, ev: &Event) {
        let Some(kv) = &ev.kv else { return };
        let mut inner = self.lock();
        inner.detach(&kv.key);
        if ev.r#type == EventType::Put as i32 && kv.lease != 0 {
            inner.attach(kv.key.clone(), kv.lease);
        }
    }

    /// Keep-alive on the leader: restarts the deadline. None if the lease is gone or expired.
    pub fn renew(&self, id: i64) -> Option<i64> {
        let mut inner = self.lock();
        let primary = inner.primary;
        let l = inner.leases.get_mut(&id)?;
        let now = Instant::now();
        if l.expiry.is_some_and(|e| e <= now) {
            return None;
        }
        if primary {
            l.expiry = Some(now + Duration::from_secs(l.ttl as u64));
            crate::metrics::get().lease.renewed.inc();
        }
        Some(l.ttl)
    }

    pub fn time_to_live(&self, id: i64, with_keys: bool) -> Option<TimeToLive> {
        let inner = self.lock();
        let l = inner.leases.get(&id)?;
        // Whole seconds, truncated, as etcd reports them.
        let remaining = match l.expiry {
            Some(e) => e.saturating_duration_since(Instant::now()).as_secs() as i64,
            None => l.ttl,
        };
        let keys = if with_keys { l.keys.iter().cloned().collect() } else { Vec::new() };
        Some(TimeToLive { remaining, granted: l.ttl, keys })
    }

    /// Every lease, soonest deadline first (etcd's order), then by id.
    pub fn ids(&self) -> Vec<i64> {
        let inner = self.lock();
        let mut ids: Vec<(Option<Instant>, i64)> = inner.leases.iter().map(|(id, l)| (l.expiry, *id)).collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// This member became leader: every lease gets a full TTL from now, plus `extend` (the
    /// time the old leader's clients may need to find the new one).
    pub fn promote(&self, extend: Duration) {
        let mut inner = self.lock();
        inner.primary = true;
        let now = Instant::now();
        for l in inner.leases.values_mut() {
            l.expiry = Some(now + extend + Duration::from_secs(l.ttl as u64));
        }
    }

    pub fn demote(&self) {
        let mut inner = self.lock();
        inner.primary = false;
        for l in inner.leases.values_mut() {
            l.expiry = None;
        }
    }

    /// Leases whose deadline passed; each is held back a while so that its revoke is proposed
    /// once, not on every check.
    pub fn expired(&self) -> Vec<i64> {
        let mut inner = self.lock();
        let now = Instant::now();
        let mut out = Vec::new();
        for (id, l) in inner.leases.iter_mut() {
            if l.expiry.is_some_and(|e| e <= now) {
                out.push(*id);
                l.expiry = Some(now + RETRY_EXPIRED);
            }
        }
        out
    }
}

impl Inner {
    fn attach(&mut self, key: Vec<u8>, id: i64) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.insert(key.clone());
            self.key_lease.insert(key, id);
        }
    }

    fn detach(&mut self, key: &[u8]) {
        if let Some(id) = self.key_lease.remove(key) {
            if let Some(l) = self.leases.get_mut(&id) {
                l.keys.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests;
