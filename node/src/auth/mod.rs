//! Authentication and authorization as etcd 3.4 does them. The replicated state (users,
//! roles, permissions, whether auth is on, its revision: `state`) changes only as the applier
//! applies entries; tokens (`token`) say who a request is from; and ONE permission check,
//! `AuthStore::check`, decides for every service, the applier and the gateway alike.
//!
//! Who a request is from (`identify`): its token, else — with `--client-cert-auth` — the
//! common name of its verified client certificate, else nobody. Reads are checked where
//! they are served; writes are checked by the applier, as of the entry, against the identity
//! the proposing member put in it (etcd's request header), so a permission revoked before a
//! write is applied stops it.

mod needs;
pub mod password;
mod perms;
pub mod state;
pub mod token;

pub use needs::{delete_needs, put_needs, range_needs, txn_needs};
pub use state::{AuthState, Record};
pub use token::Tokens;

use crate::error::EtcdError;
use crate::storage::backend::{Backend, BackendError};
use perms::UserPerms;
use state::has_root_role;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use token::SimpleTokens;
use tokio::sync::watch;

/// Who a request is from, as of which auth revision (etcd's AuthInfo). The default is
/// nobody: with auth enabled, nobody may do anything but authenticate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthInfo {
    pub user: String,
    pub revision: u64,
}

/// What a request carries that can identify its sender.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// The `token` (or `authorization`) metadata.
    pub token: Option<String>,
    /// The common name of the client certificate the server verified.
    pub cert_name: Option<String>,
}

/// Put on each request of a connection whose client certificate the server verified
/// (`--client-cert-auth`): the certificate's common name.
#[derive(Clone, Debug)]
pub struct CertName(pub Arc<str>);

/// What a request needs to be allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need<'a> {
    /// Reading a key (`range_end` empty) or a range.
    Read(&'a [u8], &'a [u8]),
    Write(&'a [u8], &'a [u8]),
    /// The root role: managing auth, members, snapshots, defragmentation, hashes.
    Admin,
}

struct Inner {
    state: AuthState,
    /// Each user's merged permissions, rebuilt on every change.
    perms: HashMap<String, UserPerms>,
}

impl Inner {
    fn new(state: AuthState) -> Inner {
        let perms = state
            .users
            .iter()
            .map(|(name, u)| (name.clone(), UserPerms::merge(u.roles.iter().filter_map(|r| state.roles.get(r)))))
            .collect();
        Inner { state, perms }
    }
}

pub struct AuthStore {
    inner: RwLock<Inner>,
    tokens: Tokens,
    bcrypt_cost: u32,
}

impl AuthStore {
    pub fn load(backend: &Backend, tokens: Tokens, bcrypt_cost: u32) -> Result<AuthStore, BackendError> {
        let state = AuthState::load(backend)?;
        let store = AuthStore {
            inner: RwLock::new(Inner::new(state)),
            tokens,
            bcrypt_cost: password::checked_cost(bcrypt_cost),
        };
        store.sync_tokens();
        Ok(store)
    }

    /// Replaces the state with the backend's (after a snapshot was installed).
    pub fn reload(&self, backend: &Backend) -> Result<(), BackendError> {
        let state = AuthState::load(backend)?;
        *self.write() = Inner::new(state);
        self.sync_tokens();
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn sync_tokens(&self) {
        if let Tokens::Simple(t) = &self.tokens {
            t.set_enabled(self.enabled());
        }
    }

    pub fn enabled(&self) -> bool {
        self.read().state.enabled
    }

    pub fn revision(&self) -> u64 {
        self.read().state.revision
    }

    /// THE permission check (etcd's isOpPermitted and IsAdminPermitted): with auth disabled
    /// everything is allowed; root may do anything; others what their roles grant, as of
    /// the current auth revision.
    pub fn check(&self, who: &AuthInfo, need: Need<'_>) -> Result<(), EtcdError> {
        let inner = self.read();
        if !inner.state.enabled {
            return Ok(());
        }
        let (key, range_end, read) = match need {
            Need::Admin => {
                if who.user.is_empty() {
                    return Err(EtcdError::UserEmpty);
                }
                let user = inner.state.users.get(&who.user).ok_or(EtcdError::UserNotFound)?;
                return if has_root_role(user) { Ok(()) } else { Err(EtcdError::PermissionDenied) };
            }
            Need::Read(k, e) => (k, e, true),
            Need::Write(k, e) => (k, e, false),
        };
        if who.revision == 0 {
            return Err(EtcdError::UserEmpty);
        }
        if who.revision < inner.state.revision {
            return Err(EtcdError::AuthOldRevision);
        }
        let user = inner.state.users.get(&who.user).ok_or(EtcdError::PermissionDenied)?;
        if has_root_role(user) {
            return Ok(());
        }
        let perms = inner.perms.get(&who.user).ok_or(EtcdError::PermissionDenied)?;
        let set = if read { &perms.read } else { &perms.write };
        if set.covers(key, range_end) {
            Ok(())
        } else {
            Err(EtcdError::PermissionDenied)
        }
    }

    /// Every need in order; the first refusal wins.
    pub fn check_all(&self, who: &AuthInfo, needs: &[Need<'_>]) -> Result<(), EtcdError> {
        needs.iter().try_for_each(|n| self.check(who, *n))
    }

    /// Who a request is from (see the module's documentation). A simple token names the
    /// raft index that made it: a member that has not applied it yet waits (at most
    /// `wait`) before judging it.
    pub async fn identify(
        &self,
        creds: &Credentials,
        applied: &watch::Receiver<u64>,
        wait: Duration,
    ) -> Result<Option<AuthInfo>, EtcdError> {
        if let Some(token) = &creds.token {
            let info = match &self.tokens {
                Tokens::Simple(t) => {
                    let index = SimpleTokens::index_of(token).ok_or(EtcdError::InvalidAuthToken)?;
                    let mut applied = applied.clone();
                    let reached = tokio::time::timeout(wait, applied.wait_for(|a| *a >= index)).await;
                    if !matches!(reached, Ok(Ok(_))) {
                        return Err(EtcdError::InvalidAuthToken);
                    }
                    let user = t.user_of(token).ok_or(EtcdError::InvalidAuthToken)?;
                    AuthInfo { user, revision: self.revision() }
                }
                Tokens::Jwt(j) => {
                    let claims = j.verify_token(token).ok_or(EtcdError::InvalidAuthToken)?;
                    AuthInfo { user: claims.username, revision: claims.revision }
                }
            };
            return Ok(Some(info));
        }
        Ok(creds.cert_name.as_ref().map(|cn| AuthInfo { user: cn.clone(), revision: self.revision() }))
    }

    /// Applies a change to the replicated state (the applier's call); returns the records to
    /// write with the entry.
    pub fn change(
        &self,
        f: impl FnOnce(&mut AuthState) -> Result<Vec<Record>, EtcdError>,
    ) -> Result<Vec<Record>, EtcdError> {
        let mut inner = self.write();
        let records = f(&mut inner.state)?;
        if !records.is_empty() {
            let state = std::mem::take(&mut inner.state);
            *inner = Inner::new(state);
        }
        drop(inner);
        self.sync_tokens();
        Ok(records)
    }

    /// A user's tokens die with its deletion or a new password.
    pub fn invalidate_tokens(&self, user: &str) {
        if let Tokens::Simple(t) = &self.tokens {
            t.invalidate_user(user);
        }
    }

    /// The password check of Authenticate, before anything is proposed: the auth revision
    /// it held at. Slow (bcrypt): run off the async runtime.
    pub fn check_password(&self, name: &str, password: &str) -> Result<u64, EtcdError> {
        let (hashed, revision) = {
            let inner = self.read();
            if !inner.state.enabled {
                return Err(EtcdError::AuthNotEnabled);
            }
            let user = inner.state.users.get(name).ok_or(EtcdError::AuthFailed)?;
            if user.options.as_ref().is_some_and(|o| o.no_password) {
                return Err(EtcdError::NoPasswordUser);
            }
            (user.password.clone(), inner.state.revision)
        };
        if !password::verify(password, &hashed) {
            tracing::info!(user = name, "invalid password");
            return Err(EtcdError::AuthFailed);
        }
        Ok(revision)
    }

    /// The random part of a simple token (none for JWT).
    pub fn token_prefix(&self) -> String {
        match &self.tokens {
            Tokens::Simple(_) => SimpleTokens::prefix(),
            Tokens::Jwt(_) => String::new(),
        }
    }

    /// An Authenticate entry applied at `index`: the user may have a token; a simple one is
    /// remembered now, on every member. Returns the auth revision it is as of.
    pub fn authenticated(&self, name: &str, token_prefix: &str, index: u64) -> Result<u64, EtcdError> {
        let inner = self.read();
        if !inner.state.enabled {
            return Err(EtcdError::AuthNotEnabled);
        }
        let user = inner.state.users.get(name).ok_or(EtcdError::AuthFailed)?;
        if user.options.as_ref().is_some_and(|o| o.no_password) {
            return Err(EtcdError::AuthFailed);
        }
        if let Tokens::Simple(t) = &self.tokens {
            t.assign(SimpleTokens::token(token_prefix, index), name);
        }
        Ok(inner.state.revision)
    }

    /// The token the client gets for an Authenticate applied at `index` as of `revision`.
    pub fn issue_token(&self, name: &str, revision: u64, token_prefix: &str, index: u64) -> Result<String, EtcdError> {
        match &self.tokens {
            Tokens::Simple(_) => Ok(SimpleTokens::token(token_prefix, index)),
            Tokens::Jwt(j) if !j.can_sign() => Err(EtcdError::VerifyOnly),
            Tokens::Jwt(j) => j.issue(name, revision).map_err(EtcdError::Internal),
        }
    }

    pub fn hash_password(&self, password: &str) -> Vec<u8> {
        password::hash(password, self.bcrypt_cost)
    }

    pub fn user_roles(&self, name: &str) -> Result<Vec<String>, EtcdError> {
        self.read().state.user_roles(name)
    }

    pub fn role_permissions(&self, name: &str) -> Result<Vec<crate::proto::authpb::Permission>, EtcdError> {
        self.read().state.role_permissions(name)
    }

    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.read().state.users.get(user).is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    pub fn users(&self) -> Vec<String> {
        self.read().state.users.keys().cloned().collect()
    }

    pub fn roles(&self) -> Vec<String> {
        self.read().state.roles.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests;
