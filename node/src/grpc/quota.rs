//! etcd's quota check, before proposing what would grow the store: past
//! --quota-backend-bytes, or with less free disk than the member's reserve (see
//! `storage::disk`), NOSPACE is raised cluster-wide and the request refused.

use crate::alarm::Alarms;
use crate::error::EtcdError;
use crate::proto::cairnpb::internal_request::Request;
use crate::proto::etcdserverpb::{alarm_request::AlarmAction, AlarmRequest, AlarmType};
use crate::raft::RaftHandle;
use crate::storage::backend::Backend;
use crate::storage::disk::DiskSpace;
use std::sync::Arc;

pub struct Quota {
    pub member_id: u64,
    /// --quota-backend-bytes as it applies (None: no quota).
    pub quota_bytes: Option<u64>,
    pub disk: DiskSpace,
    pub backend: Arc<Backend>,
    pub alarms: Arc<Alarms>,
    pub raft: RaftHandle,
}

impl Quota {
    /// Whether a request growing the store by about `cost` bytes may be proposed.
    pub async fn check(&self, cost: usize) -> Result<(), EtcdError> {
        let over_quota = self.quota_bytes.is_some_and(|q| self.backend.size_on_disk() + cost as u64 > q);
        let disk_low = !over_quota && self.disk.low();
        if !over_quota && !disk_low {
            return Ok(());
        }
        if disk_low && !self.alarms.no_space() {
            tracing::warn!(
                available = self.disk.available().unwrap_or(0),
                reserve = self.disk.reserve(),
                "free disk space on the data dir's file system is below the member's reserve; raising NOSPACE"
            );
        }
        let raise = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        if let Err(e) = self.raft.propose(&crate::apply::Origin::Member, Request::Alarm(raise)).await {
            tracing::warn!(error = %e, "raising the NOSPACE alarm failed");
        }
        Err(EtcdError::NoSpace)
    }
}
