//! The applier: the only writer of the backend. It takes committed raft entries in order and
//! applies them in backend batches that also record the index of the last entry applied, so a
//! restart resumes exactly after it and never applies an entry twice.

mod auth;
mod entry;
pub mod ops;
mod state;
pub mod txn;
mod worker;

pub use state::{open_state, write_initial_members, OpenError, State};

pub use auth::{Authenticated, Origin};
pub use entry::{Committed, Payload};
pub use worker::{spawn, ApplierEvent, ApplierHandle, BuiltImage, Spawned, Stopped};

use crate::alarm::Alarms;
use crate::auth::{AuthInfo, AuthStore};
use crate::error::EtcdError;
use crate::lease::{self, Lessor};
use crate::membership::Change;
use crate::membership::Membership;
use crate::proto::cairnpb::{internal_request::Request, InternalRequest, MemberRecord};
use crate::proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmResponse, AlarmType, CompactionResponse, DeleteRangeResponse, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, ResponseHeader, TxnResponse,
};
use crate::proto::mvccpb::Event;
use crate::storage::backend::BackendWriter;
use crate::storage::mvcc::watch::WatchHub;
use crate::storage::mvcc::{KeyRange, Revision};
use crate::storage::mvcc::{MvccStore, WriteTxn};
use crate::wait::Waiters;
use prost::Message;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Debug)]
pub enum Applied {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    /// A change of cluster metadata, answered by no response of its own.
    Done,
    /// A membership change went through: the members after it.
    Members(Vec<MemberRecord>),
    Alarm(AlarmResponse),
    Authenticated(Authenticated),
}

pub type ApplyResult = Result<Applied, EtcdError>;

/// The response type a proposal of a given kind applies to.
pub trait FromApplied: Sized {
    fn from_applied(a: Applied) -> Option<Self>;
}

macro_rules! from_applied {
    ($($variant:ident => $ty:ty),*) => {$(
        impl FromApplied for $ty {
            fn from_applied(a: Applied) -> Option<Self> {
                match a {
                    Applied::$variant(r) => Some(r),
                    _ => None,
                }
            }
        }
    )*};
}

from_applied!(
    Alarm => AlarmResponse,
    Put => PutResponse,
    DeleteRange => DeleteRangeResponse,
    Txn => TxnResponse,
    Compaction => CompactionResponse,
    LeaseGrant => LeaseGrantResponse,
    LeaseRevoke => LeaseRevokeResponse,
    Authenticated => Authenticated
);

/// The auth store's changes answer with a header alone.
macro_rules! from_done {
    ($($ty:ty),*) => {$(
        impl FromApplied for $ty {
            fn from_applied(a: Applied) -> Option<Self> {
                matches!(a, Applied::Done).then(Self::default)
            }
        }
    )*};
}

use crate::proto::etcdserverpb as pb;
from_done!(
    pb::AuthEnableResponse,
    pb::AuthDisableResponse,
    pb::AuthUserAddResponse,
    pb::AuthUserDeleteResponse,
    pb::AuthUserChangePasswordResponse,
    pb::AuthUserGrantRoleResponse,
    pb::AuthUserRevokeRoleResponse,
    pb::AuthRoleAddResponse,
    pb::AuthRoleDeleteResponse,
    pb::AuthRoleGrantPermissionResponse,
    pb::AuthRoleRevokePermissionResponse
);

/// Entries per backend batch: amortizes the batch cost under load, bounds its memory.
const BATCH_ENTRIES: usize = 512;
/// Records freed by compaction deleted per pass: small enough that writes never wait long.
const GARBAGE_CHUNK: usize = 2048;

/// etcd reports the store revision after a compaction.
fn finish(a: Applied, rev: i64) -> Applied {
    match a {
        Applied::Compaction(mut c) => {
            c.header = Some(ResponseHeader { revision: rev, ..Default::default() });
            Applied::Compaction(c)
        }
        other => other,
    }
}

pub struct Applier {
    mvcc: Arc<MvccStore>,
    /// The backend's one writer: the applier alone writes.
    writer: BackendWriter,
    membership: Arc<Membership>,
    alarms: Arc<Alarms>,
    hub: Arc<WatchHub>,
    lessor: Arc<Lessor>,
    auth: Arc<AuthStore>,
    waiters: Arc<Waiters<ApplyResult>>,
    applied: watch::Sender<u64>,
    last_applied: u64,
}

/// The services the applier keeps in step with the backend (besides the MVCC store).
pub struct Services {
    pub membership: Arc<Membership>,
    pub alarms: Arc<Alarms>,
    pub hub: Arc<WatchHub>,
    pub lessor: Arc<Lessor>,
    pub auth: Arc<AuthStore>,
}

impl Applier {
    /// The applier of `state`, applied up to `state.applied`; it tells `applied` how far it got.
    pub fn new(
        state: State,
        services: Services,
        waiters: Arc<Waiters<ApplyResult>>,
        applied: watch::Sender<u64>,
    ) -> Applier {
        let State { mvcc, applied: last_applied, writer, .. } = state;
        let Services { membership, alarms, hub, lessor, auth } = services;
        Applier { mvcc, writer, membership, alarms, hub, lessor, auth, waiters, applied, last_applied }
    }

    /// Rewrites the backend into a compact copy (see `Backend`); between batches.
    pub fn defragment(&self) -> Result<(u64, u64), crate::storage::backend::BackendError> {
        self.writer.defragment()
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    pub fn last_applied(&self) -> u64 {
        self.last_applied
    }

    /// Replaces the whole state with a snapshot's backend image, as of raft index `index`.
    /// Watchers then catch up from the new history.
    pub fn install(&mut self, index: u64, image: &std::path::Path) -> Result<(), String> {
        let backend = self.mvcc.backend();
        crate::storage::image::load(&self.writer, image).map_err(|e| format!("loading {}: {e}", image.display()))?;
        self.mvcc.reload().map_err(|e| e.to_string())?;
        self.lessor.load(backend, self.mvcc.leased_keys()).map_err(|e| e.to_string())?;
        self.membership.reload(backend).map_err(|e| e.to_string())?;
        self.alarms.reload(backend).map_err(|e| e.to_string())?;
        self.auth.reload(backend).map_err(|e| e.to_string())?;
        self.hub.resync(self.mvcc.current_revision());
        self.last_applied = index;
        self.applied.send_replace(index);
        Ok(())
    }

    /// Applies committed entries in order, up to `BATCH_ENTRIES` of them per backend batch:
    /// the batch carries the index of its last entry, so after a crash the backend is as of
    /// some entry boundary and raft replays from there. Waiters are woken once their entry is
    /// in the backend. A backend failure cannot be answered to a client and must not be
    /// skipped, so it stops the member (as etcd does).
    ///
    /// Returns the membership changes that passed validation: raft must apply them too.
    pub fn apply(&mut self, entries: &[Committed]) -> Vec<Change> {
        let mut accepted = Vec::new();
        for chunk in entries.chunks(BATCH_ENTRIES) {
            if let Err(err) = self.apply_batch(chunk, &mut accepted) {
                crate::fatal::stop("applying committed entries to the backend failed", &err);
            }
        }
        self.applied.send_replace(self.last_applied);
        accepted
    }

    fn apply_batch(&mut self, entries: &[Committed], accepted: &mut Vec<Change>) -> Result<(), String> {
        let mut w = self.mvcc.write(&self.writer);
        let mut results = Vec::new();
        let mut last = self.last_applied;
        let mut physical = false;
        for e in entries.iter().filter(|e| e.index > self.last_applied) {
            match &e.payload {
                // Leader no-ops only move the applied index.
                Payload::Empty => {}
                Payload::Unreadable(why) => return Err(format!("entry {}: {why}", e.index)),
                Payload::ConfChange { waiter, change } => {
                    let result = self.conf_change(&mut w, e.index, change, accepted);
                    results.push((*waiter, result));
                }
                Payload::Request(data) => {
                    let req = InternalRequest::decode(&data[..])
                        .map_err(|err| format!("entry {}: undecodable request: {err}", e.index))?;
                    let wants_physical = matches!(&req.request, Some(Request::Compaction(c)) if c.physical);
                    let first_event = w.event_count();
                    let origin = if req.by_member {
                        Origin::Member
                    } else {
                        Origin::Client(AuthInfo { user: req.user, revision: req.auth_revision })
                    };
                    let result = self.execute(&mut w, req.request, &origin, e.index);
                    physical |= wants_physical && result.is_ok();
                    // Before the next entry runs: it may revoke a lease this one attached a key to.
                    for ev in w.events_since(first_event) {
                        self.lessor.on_event(ev);
                    }
                    if result.is_err() && w.has_changes() {
                        return Err(format!("entry {}: request failed after writing: {result:?}", e.index));
                    }
                    results.push((req.id, result.map(|a| finish(a, w.rev()))));
                    w.finish_entry();
                }
            }
            last = e.index;
        }
        if last == self.last_applied {
            return Ok(());
        }
        // Cairn's backend commit: the applied batch written into the backend at once.
        let started = std::time::Instant::now();
        let events = w.commit(last).map_err(|err| err.to_string())?;
        crate::metrics::get().disk.backend_commit.observe(started.elapsed().as_secs_f64());
        self.last_applied = last;
        let mvcc = &self.mvcc;
        self.hub.notify(mvcc.current_revision(), &events, |e| {
            let kv = e.kv.as_ref()?;
            let prev = mvcc.prev_kv(&kv.key, Revision { main: kv.mod_revision, sub: 0 }).ok()??;
            Some(Event { prev_kv: Some(prev), ..e.clone() })
        });
        if physical {
            // etcd answers a physical compaction once the freed space is really gone.
            while self.collect_garbage()? > 0 {}
        }
        for (id, result) in results {
            self.waiters.trigger(id, result);
        }
        Ok(())
    }

    /// A membership change: validated against the records as of this entry (every member
    /// reaches the same verdict), then written with it. A refused change leaves raft's
    /// configuration alone, as etcd's does.
    fn conf_change(
        &self,
        w: &mut WriteTxn<'_>,
        index: u64,
        change: &Change,
        accepted: &mut Vec<Change>,
    ) -> ApplyResult {
        self.membership.validate(change)?;
        if let Some(rec) = self.membership.changed_record(change) {
            self.write_member(w, rec);
        }
        tracing::info!(?change, index, "membership changed");
        accepted.push(change.clone());
        Ok(Applied::Members(self.membership.list()))
    }

    /// A member's record, in this entry's batch and in the member list.
    fn write_member(&self, w: &mut WriteTxn<'_>, rec: MemberRecord) {
        w.put_record(&crate::membership::record_key(rec.id), rec.encode_to_vec());
        self.membership.set(rec);
    }

    /// Deletes one chunk of the records compaction freed; returns how many.
    pub fn collect_garbage(&self) -> Result<usize, String> {
        self.mvcc.collect_garbage(&self.writer, GARBAGE_CHUNK).map_err(|e| e.to_string())
    }

    pub fn has_garbage(&self) -> bool {
        self.mvcc.garbage_len() > 0
    }

    fn execute(&self, w: &mut WriteTxn<'_>, req: Option<Request>, who: &Origin, index: u64) -> ApplyResult {
        let Some(req) = req else { return Err(EtcdError::Internal("empty request".into())) };
        // Permissions first, as etcd's auth applier wraps its quota applier.
        self.permitted(who, &req)?;
        // With NOSPACE raised, nothing that grows the store goes in (etcd's capped applier);
        // reads, deletes and compactions do.
        let grows = match &req {
            Request::Put(_) | Request::LeaseGrant(_) => true,
            Request::Txn(t) => txn::has_puts(t),
            _ => false,
        };
        if grows && self.alarms.no_space() {
            return Err(EtcdError::NoSpace);
        }
        match req {
            Request::Put(p) => {
                ops::check_put(w, &self.lessor, &p)?;
                ops::put(w, &p).map(Applied::Put)
            }
            Request::DeleteRange(d) => ops::delete_range(w, &d).map(Applied::DeleteRange),
            Request::Txn(t) => txn::txn(w, &self.lessor, &t).map(Applied::Txn),
            Request::Compaction(c) => {
                let compacted = w.compact(c.revision)?;
                crate::metrics::get().mvcc.compaction_keys.inc_by(compacted as u64);
                Ok(Applied::Compaction(CompactionResponse { header: None }))
            }
            Request::LeaseGrant(g) => {
                let ttl = self.lessor.grant(g.id, g.ttl)?;
                w.put_record(&lease::record_key(g.id), lease::record_value(g.id, ttl));
                Ok(Applied::LeaseGrant(LeaseGrantResponse { header: None, id: g.id, ttl, error: String::new() }))
            }
            Request::LeaseRevoke(r) => {
                let keys = self.lessor.keys_of(r.id).ok_or(EtcdError::LeaseNotFound)?;
                // Every attached key goes in this one revision.
                for key in keys {
                    w.delete_range(&KeyRange::Single(key));
                }
                self.lessor.remove(r.id);
                w.remove_record(&lease::record_key(r.id));
                Ok(Applied::LeaseRevoke(LeaseRevokeResponse { header: None }))
            }
            Request::MemberAttrs(a) => {
                // A member removed meanwhile stays removed.
                let Some(mut rec) = self.membership.get(a.id) else { return Ok(Applied::Done) };
                rec.name = a.name;
                rec.client_urls = a.client_urls;
                self.write_member(w, rec);
                Ok(Applied::Done)
            }
            Request::Alarm(a) => {
                let key = crate::alarm::record_key(a.member_id, a.alarm);
                let member = crate::proto::etcdserverpb::AlarmMember { member_id: a.member_id, alarm: a.alarm };
                let changed = match AlarmAction::try_from(a.action) {
                    Ok(AlarmAction::Activate) if a.alarm != AlarmType::None as i32 => {
                        w.put_record(&key, Vec::new());
                        self.alarms.set(a.member_id, a.alarm, true);
                        tracing::warn!(alarm = %Alarms::describe(&member), "alarm raised");
                        true
                    }
                    Ok(AlarmAction::Deactivate) if self.alarms.set(a.member_id, a.alarm, false) => {
                        w.remove_record(&key);
                        tracing::info!(alarm = %Alarms::describe(&member), "alarm cleared");
                        true
                    }
                    _ => false,
                };
                let alarms = if changed { vec![member] } else { Vec::new() };
                Ok(Applied::Alarm(AlarmResponse { header: None, alarms }))
            }
            Request::MemberPeerUrls(u) => {
                let change = Change::Update(u.id, u.peer_urls);
                self.membership.validate(&change)?;
                if let Some(rec) = self.membership.changed_record(&change) {
                    self.write_member(w, rec);
                }
                Ok(Applied::Members(self.membership.list()))
            }
            auth => self.apply_auth(w, auth, index),
        }
    }
}
