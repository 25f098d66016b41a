//! The cluster's members as this member knows them: ids, names, peer and client URLs, and
//! the ids of removed members. Kept in the backend (records "n" + id), so they come back on
//! restart and travel in snapshots; changed only by the applier, from replicated requests.
//! At a given applied index the records ARE raft's configuration: voters are the members
//! that are not learners (see `voters`/`learners`).

mod change;
pub mod ids;

pub use change::Change;

use crate::proto::cairnpb::MemberRecord;
use crate::storage::backend::{Backend, BackendError};
use prost::Message;
use std::collections::BTreeMap;
use std::sync::RwLock;
use tokio::sync::watch;

pub const PREFIX_MEMBER: u8 = b'n';

pub fn record_key(id: u64) -> [u8; 9] {
    let mut k = [PREFIX_MEMBER; 9];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

pub struct Membership {
    /// This member's id.
    me: u64,
    /// Every record, removed members included, by id.
    records: RwLock<BTreeMap<u64, MemberRecord>>,
    /// Bumped on every change: the transport follows the peer list, and the server stops
    /// once this member is removed.
    changed: watch::Sender<u64>,
}

impl Membership {
    /// What the backend holds.
    pub fn load(backend: &Backend, me: u64) -> Result<Membership, BackendError> {
        let m = Membership { me, records: RwLock::default(), changed: watch::Sender::new(0) };
        m.reload(backend)?;
        Ok(m)
    }

    /// Replaces what is known with the backend's records (after a snapshot was installed).
    pub fn reload(&self, backend: &Backend) -> Result<(), BackendError> {
        let mut records = BTreeMap::new();
        for item in backend.scan_prefix([PREFIX_MEMBER]) {
            let (k, v) = item?;
            let rec = MemberRecord::decode(&v[..])
                .map_err(|e| BackendError::Corrupt { key: hex::encode(&k), why: e.to_string() })?;
            records.insert(rec.id, rec);
        }
        *self.records.write().unwrap_or_else(|e| e.into_inner()) = records;
        self.changed.send_modify(|v| *v += 1);
        Ok(())
    }

    pub fn me(&self) -> u64 {
        self.me
    }

    /// The members of the cluster, by id (removed ones left out).
    pub fn list(&self) -> Vec<MemberRecord> {
        let records = self.records.read().unwrap_or_else(|e| e.into_inner());
        records.values().filter(|r| !r.removed).cloned().collect()
    }

    /// A member of the cluster (not a removed one).
    pub fn get(&self, id: u64) -> Option<MemberRecord> {
        let records = self.records.read().unwrap_or_else(|e| e.into_inner());
        records.get(&id).filter(|r| !r.removed).cloned()
    }

    pub fn is_removed(&self, id: u64) -> bool {
        self.records.read().unwrap_or_else(|e| e.into_inner()).get(&id).is_some_and(|r| r.removed)
    }

    /// Whether this member is a learner (it then serves only serializable reads).
    pub fn me_is_learner(&self) -> bool {
        self.get(self.me).is_some_and(|r| r.is_learner)
    }

    pub fn voters(&self) -> Vec<u64> {
        self.list().into_iter().filter(|r| !r.is_learner).map(|r| r.id).collect()
    }

    pub fn learners(&self) -> Vec<u64> {
        self.list().into_iter().filter(|r| r.is_learner).map(|r| r.id).collect()
    }

    /// Records what the applier wrote.
    pub fn set(&self, rec: MemberRecord) {
        self.records.write().unwrap_or_else(|e| e.into_inner()).insert(rec.id, rec);
        self.changed.send_modify(|v| *v += 1);
    }

    /// Follows changes: resolves on each (see `watch::Receiver::changed`).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Whether two lists name the same peer URLs, in any order.
pub fn same_urls(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

/// The founding members of a new cluster, from --initial-cluster: ids derived from each
/// member's peer URLs and the cluster token, as etcd derives them.
pub fn founders(initial_cluster: &[(String, Vec<String>)], token: &str) -> Vec<MemberRecord> {
    initial_cluster
        .iter()
        .map(|(name, urls)| MemberRecord {
            id: crate::membership::ids::member_id(urls, token),
            name: name.clone(),
            peer_urls: urls.clone(),
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests;
