//! Alarms (etcd's NOSPACE and CORRUPT), raised and cleared through raft so that every
//! member holds the same set; kept in the backend (records "a" + member id + alarm type),
//! so they survive restarts and travel in snapshots. While NOSPACE is raised, the applier
//! refuses whatever would grow the store (puts, txns with puts, lease grants).

use crate::proto::etcdserverpb::{AlarmMember, AlarmType};
use crate::storage::backend::{Backend, BackendError};
use std::collections::BTreeSet;
use std::sync::RwLock;

pub const PREFIX_ALARM: u8 = b'a';

pub fn record_key(member: u64, alarm: i32) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = PREFIX_ALARM;
    k[1..9].copy_from_slice(&member.to_be_bytes());
    k[9..].copy_from_slice(&(alarm as u32).to_be_bytes());
    k
}

#[derive(Default)]
pub struct Alarms {
    /// (member id, alarm type).
    active: RwLock<BTreeSet<(u64, i32)>>,
}

impl Alarms {
    pub fn load(backend: &Backend) -> Result<Alarms, BackendError> {
        let a = Alarms::default();
        a.reload(backend)?;
        Ok(a)
    }

    /// Replaces what is known with the backend's records (after a snapshot was installed).
    pub fn reload(&self, backend: &Backend) -> Result<(), BackendError> {
        let mut active = BTreeSet::new();
        for item in backend.scan_prefix([PREFIX_ALARM]) {
            let (k, _) = item?;
            if k.len() == 13 {
                let member = u64::from_be_bytes(k[1..9].try_into().unwrap_or_default());
                let alarm = u32::from_be_bytes(k[9..13].try_into().unwrap_or_default()) as i32;
                active.insert((member, alarm));
            }
        }
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = active;
        Ok(())
    }

    /// Raised alarms of type `alarm` (NONE: of every type), by member.
    pub fn get(&self, alarm: i32) -> Vec<AlarmMember> {
        let active = self.active.read().unwrap_or_else(|e| e.into_inner());
        active
            .iter()
            .filter(|(_, a)| alarm == AlarmType::None as i32 || *a == alarm)
            .map(|(m, a)| AlarmMember { member_id: *m, alarm: *a })
            .collect()
    }

    /// Every raised alarm.
    pub fn all(&self) -> Vec<AlarmMember> {
        self.get(AlarmType::None as i32)
    }

    pub fn no_space(&self) -> bool {
        self.active.read().unwrap_or_else(|e| e.into_inner()).iter().any(|(_, a)| *a == AlarmType::Nospace as i32)
    }

    /// Records what the applier wrote; returns whether it changed anything.
    pub fn set(&self, member: u64, alarm: i32, raised: bool) -> bool {
        let mut active = self.active.write().unwrap_or_else(|e| e.into_inner());
        if raised {
            active.insert((member, alarm))
        } else {
            active.remove(&(member, alarm))
        }
    }

    /// etcd's text form of an alarm (Go's protobuf text format), as Status.errors and
    /// `etcdctl alarm list` show it.
    pub fn describe(a: &AlarmMember) -> String {
        let name = AlarmType::try_from(a.alarm).map(|t| t.as_str_name()).unwrap_or("NONE");
        format!("memberID:{} alarm:{} ", a.member_id, name)
    }
}
