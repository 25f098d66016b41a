//! The cluster's members as this member knows them: ids, names, peer and client URLs. Kept
//! in the backend (records "n" + id), so they come back on restart and travel in snapshots;
//! changed only by the applier, from replicated requests.

use crate::proto::cairnpb::MemberRecord;
use crate::storage::backend::{Backend, BackendError};
use prost::Message;
use std::collections::BTreeMap;
use std::sync::RwLock;

pub const PREFIX_MEMBER: u8 = b'n';

pub fn record_key(id: u64) -> [u8; 9] {
    let mut k = [PREFIX_MEMBER; 9];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

#[derive(Default)]
pub struct Membership {
    members: RwLock<BTreeMap<u64, MemberRecord>>,
}

impl Membership {
    /// What the backend holds.
    pub fn load(backend: &Backend) -> Result<Membership, BackendError> {
        let m = Membership::default();
        m.reload(backend)?;
        Ok(m)
    }

    /// Replaces what is known with the backend's records (after a snapshot was installed).
    pub fn reload(&self, backend: &Backend) -> Result<(), BackendError> {
        let mut members = BTreeMap::new();
        for item in backend.tree().scan_prefix([PREFIX_MEMBER]) {
            let (k, v) = item?;
            let rec = MemberRecord::decode(&v[..])
                .map_err(|e| BackendError::Corrupt { key: hex::encode(&k), why: e.to_string() })?;
            members.insert(rec.id, rec);
        }
        *self.members.write().unwrap_or_else(|e| e.into_inner()) = members;
        Ok(())
    }

    pub fn list(&self) -> Vec<MemberRecord> {
        self.members.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<MemberRecord> {
        self.members.read().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
    }

    /// Records what the applier wrote.
    pub fn set(&self, rec: MemberRecord) {
        self.members.write().unwrap_or_else(|e| e.into_inner()).insert(rec.id, rec);
    }
}
