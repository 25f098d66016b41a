//! Auth in the applier: the permission check of each replicated request, as of its entry
//! (etcd's auth applier), and the auth store's changes written with the entry.

use super::{Applied, Applier, ApplyResult};
use crate::auth::{self, AuthInfo, AuthState, Need, Record};
use crate::error::EtcdError;
use crate::proto::cairnpb::internal_request::Request;
use crate::storage::mvcc::WriteTxn;

/// Who an entry was proposed for.
pub enum Origin {
    Client(AuthInfo),
    /// The member itself (a lease expired, an alarm, its attributes): nothing to check.
    Member,
}

/// The auth store's answer to an Authenticate entry.
#[derive(Debug)]
pub struct Authenticated {
    pub index: u64,
    pub revision: u64,
}

impl Applier {
    /// Whether `who` may make `req`, as of this entry. Keys a lease holds count as written by
    /// whoever attaches a key to it or revokes it: such a user could otherwise delete keys
    /// it cannot write (etcd's rule).
    pub(super) fn permitted(&self, who: &Origin, req: &Request) -> Result<(), EtcdError> {
        let Origin::Client(who) = who else { return Ok(()) };
        if !self.auth.enabled() {
            return Ok(());
        }
        let lease_keys = |lease: i64| self.lessor.keys_of(lease).unwrap_or_default();
        let check = |needs: &[Need<'_>]| self.auth.check_all(who, needs);
        match req {
            Request::Put(p) => {
                let mut needs = auth::put_needs(p);
                let keys = if p.lease != 0 { lease_keys(p.lease) } else { Vec::new() };
                let at = 1.min(needs.len());
                needs.splice(at..at, keys.iter().map(|k| Need::Write(k, &[])));
                check(&needs)
            }
            Request::DeleteRange(d) => check(&auth::delete_needs(d)),
            Request::Txn(t) => check(&auth::txn_needs(t)),
            Request::LeaseRevoke(r) => {
                let keys = lease_keys(r.id);
                check(&keys.iter().map(|k| Need::Write(k, &[])).collect::<Vec<_>>())
            }
            Request::AuthEnable(_)
            | Request::AuthDisable(_)
            | Request::UserAdd(_)
            | Request::UserDelete(_)
            | Request::UserChangePassword(_)
            | Request::UserGrantRole(_)
            | Request::UserRevokeRole(_)
            | Request::RoleAdd(_)
            | Request::RoleDelete(_)
            | Request::RoleGrantPermission(_)
            | Request::RoleRevokePermission(_) => check(&[Need::Admin]),
            Request::Compaction(_)
            | Request::LeaseGrant(_)
            | Request::Alarm(_)
            | Request::Authenticate(_)
            | Request::MemberAttrs(_)
            | Request::MemberPeerUrls(_) => Ok(()),
        }
    }

    /// A change to the auth store, its records written in this entry's batch.
    fn change_auth(
        &self,
        w: &mut WriteTxn<'_>,
        f: impl FnOnce(&mut AuthState) -> Result<Vec<Record>, EtcdError>,
    ) -> ApplyResult {
        for (key, value) in self.auth.change(f)? {
            match value {
                Some(v) => w.put_record(&key, v),
                None => w.remove_record(&key),
            }
        }
        Ok(Applied::Done)
    }

    /// An auth request, applied at `index`.
    pub(super) fn apply_auth(&self, w: &mut WriteTxn<'_>, req: Request, index: u64) -> ApplyResult {
        let result = match req {
            Request::Authenticate(a) => {
                let revision = self.auth.authenticated(&a.name, &a.token_prefix, index)?;
                return Ok(Applied::Authenticated(Authenticated { index, revision }));
            }
            Request::AuthEnable(_) => self.change_auth(w, |s| s.enable()),
            Request::AuthDisable(_) => self.change_auth(w, |s| Ok(s.disable())),
            Request::UserAdd(u) => {
                let no_password = u.options.is_some_and(|o| o.no_password);
                let hashed = if no_password { Vec::new() } else { u.hashed_password.into_bytes() };
                self.change_auth(w, |s| s.user_add(&u.name, hashed, no_password))
            }
            Request::UserDelete(u) => {
                let r = self.change_auth(w, |s| s.user_delete(&u.name));
                if r.is_ok() {
                    self.auth.invalidate_tokens(&u.name);
                }
                r
            }
            Request::UserChangePassword(u) => {
                let r = self.change_auth(w, |s| s.user_change_password(&u.name, u.hashed_password.into_bytes()));
                if r.is_ok() {
                    self.auth.invalidate_tokens(&u.name);
                }
                r
            }
            Request::UserGrantRole(g) => self.change_auth(w, |s| s.user_grant_role(&g.user, &g.role)),
            Request::UserRevokeRole(r) => self.change_auth(w, |s| s.user_revoke_role(&r.name, &r.role)),
            Request::RoleAdd(r) => self.change_auth(w, |s| s.role_add(&r.name)),
            Request::RoleDelete(r) => self.change_auth(w, |s| s.role_delete(&r.role)),
            Request::RoleGrantPermission(g) => {
                let perm = g.perm.unwrap_or_default();
                self.change_auth(w, |s| s.role_grant_permission(&g.name, perm))
            }
            Request::RoleRevokePermission(r) => {
                self.change_auth(w, |s| s.role_revoke_permission(&r.role, &r.key, &r.range_end))
            }
            other => Err(EtcdError::Internal(format!("not an auth request: {other:?}"))),
        };
        if result.is_ok() {
            tracing::info!(index, revision = self.auth.revision(), "auth store changed");
        }
        result
    }
}
