//! The replicated part of auth: whether it is enabled, its revision, the users and the roles,
//! and etcd 3.4's rules for changing them (each error where etcd gives it). A change returns
//! the backend records it touches; the applier writes them in the entry's batch, so the
//! state and its records always go together (and travel in snapshots).
//!
//! Records: `h` + user name (an authpb.User), `i` + role name (an authpb.Role), and the
//! metadata keys below.

use crate::error::EtcdError;
use crate::proto::authpb::{Permission, Role, User, UserAddOptions};
use crate::storage::backend::{Backend, BackendError};
use prost::Message;
use std::collections::BTreeMap;

pub const PREFIX_USER: u8 = b'h';
pub const PREFIX_ROLE: u8 = b'i';
pub const META_ENABLED: &[u8] = b"mauth_enabled";
pub const META_REVISION: &[u8] = b"mauth_revision";

pub const ROOT_USER: &str = "root";
pub const ROOT_ROLE: &str = "root";

fn key(prefix: u8, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(prefix);
    k.extend_from_slice(name.as_bytes());
    k
}

/// One backend record to write (`None`: to delete).
pub type Record = (Vec<u8>, Option<Vec<u8>>);

#[derive(Clone, Debug)]
pub struct AuthState {
    pub enabled: bool,
    /// Bumped by every change to users, roles or permissions, and by disabling: a request
    /// made as of an older revision is refused (etcd's "revision of auth store is old").
    pub revision: u64,
    pub users: BTreeMap<String, User>,
    pub roles: BTreeMap<String, Role>,
}

impl Default for AuthState {
    /// A fresh store is at revision 1, as etcd's.
    fn default() -> Self {
        AuthState { enabled: false, revision: 1, users: BTreeMap::new(), roles: BTreeMap::new() }
    }
}

fn corrupt(k: &[u8], e: impl std::fmt::Display) -> BackendError {
    BackendError::Corrupt { key: String::from_utf8_lossy(k).into_owned(), why: e.to_string() }
}

pub fn has_root_role(u: &User) -> bool {
    u.roles.iter().any(|r| r == ROOT_ROLE)
}

impl AuthState {
    /// What the backend holds.
    pub fn load(backend: &Backend) -> Result<AuthState, BackendError> {
        let mut s = AuthState {
            enabled: backend.get(META_ENABLED)?.is_some_and(|v| v.as_ref() == [1]),
            revision: backend.get_u64(META_REVISION)?.unwrap_or(1),
            ..AuthState::default()
        };
        for item in backend.scan_prefix([PREFIX_USER]) {
            let (k, v) = item?;
            let u = User::decode(&v[..]).map_err(|e| corrupt(&k, e))?;
            s.users.insert(String::from_utf8_lossy(&u.name).into_owned(), u);
        }
        for item in backend.scan_prefix([PREFIX_ROLE]) {
            let (k, v) = item?;
            let r = Role::decode(&v[..]).map_err(|e| corrupt(&k, e))?;
            s.roles.insert(String::from_utf8_lossy(&r.name).into_owned(), r);
        }
        Ok(s)
    }

    fn bump(&mut self, out: &mut Vec<Record>) {
        self.revision += 1;
        out.push((META_REVISION.to_vec(), Some(self.revision.to_be_bytes().to_vec())));
    }

    fn put_user(&mut self, u: User, out: &mut Vec<Record>) {
        let name = String::from_utf8_lossy(&u.name).into_owned();
        out.push((key(PREFIX_USER, &name), Some(u.encode_to_vec())));
        self.users.insert(name, u);
    }

    fn put_role(&mut self, r: Role, out: &mut Vec<Record>) {
        let name = String::from_utf8_lossy(&r.name).into_owned();
        out.push((key(PREFIX_ROLE, &name), Some(r.encode_to_vec())));
        self.roles.insert(name, r);
    }

    fn user(&self, name: &str) -> Result<&User, EtcdError> {
        self.users.get(name).ok_or(EtcdError::UserNotFound)
    }

    fn role(&self, name: &str) -> Result<&Role, EtcdError> {
        self.roles.get(name).ok_or(EtcdError::RoleNotFound)
    }

    /// Refused until `root` exists with the root role; enabling twice changes nothing.
    pub fn enable(&mut self) -> Result<Vec<Record>, EtcdError> {
        if self.enabled {
            return Ok(Vec::new());
        }
        let root = self.users.get(ROOT_USER).ok_or(EtcdError::RootUserNotExist)?;
        if !has_root_role(root) {
            return Err(EtcdError::RootRoleNotExist);
        }
        self.enabled = true;
        Ok(vec![(META_ENABLED.to_vec(), Some(vec![1]))])
    }

    pub fn disable(&mut self) -> Vec<Record> {
        if !self.enabled {
            return Vec::new();
        }
        self.enabled = false;
        let mut out = vec![(META_ENABLED.to_vec(), Some(vec![0]))];
        self.bump(&mut out);
        out
    }

    /// `hashed`: the bcrypt hash of the password (empty for a user without one).
    pub fn user_add(&mut self, name: &str, hashed: Vec<u8>, no_password: bool) -> Result<Vec<Record>, EtcdError> {
        if name.is_empty() {
            return Err(EtcdError::UserEmpty);
        }
        if self.users.contains_key(name) {
            return Err(EtcdError::UserAlreadyExist);
        }
        let mut out = Vec::new();
        let user = User {
            name: name.as_bytes().to_vec(),
            password: hashed,
            roles: Vec::new(),
            options: Some(UserAddOptions { no_password }),
        };
        self.put_user(user, &mut out);
        self.bump(&mut out);
        Ok(out)
    }

    pub fn user_delete(&mut self, name: &str) -> Result<Vec<Record>, EtcdError> {
        if self.enabled && name == ROOT_USER {
            return Err(EtcdError::InvalidAuthMgmt);
        }
        self.user(name)?;
        self.users.remove(name);
        let mut out = vec![(key(PREFIX_USER, name), None)];
        self.bump(&mut out);
        Ok(out)
    }

    pub fn user_change_password(&mut self, name: &str, hashed: Vec<u8>) -> Result<Vec<Record>, EtcdError> {
        let user = User { password: hashed, ..self.user(name)?.clone() };
        let mut out = Vec::new();
        self.put_user(user, &mut out);
        self.bump(&mut out);
        Ok(out)
    }

    /// The root role needs no role record (etcd's); granting a role twice changes nothing.
    pub fn user_grant_role(&mut self, name: &str, role: &str) -> Result<Vec<Record>, EtcdError> {
        let mut user = self.user(name)?.clone();
        if role != ROOT_ROLE {
            self.role(role)?;
        }
        if user.roles.iter().any(|r| r == role) {
            return Ok(Vec::new());
        }
        user.roles.push(role.to_string());
        user.roles.sort();
        let mut out = Vec::new();
        self.put_user(user, &mut out);
        self.bump(&mut out);
        Ok(out)
    }

    pub fn user_revoke_role(&mut self, name: &str, role: &str) -> Result<Vec<Record>, EtcdError> {
        if self.enabled && name == ROOT_USER && role == ROOT_ROLE {
            return Err(EtcdError::InvalidAuthMgmt);
        }
        let mut user = self.user(name)?.clone();
        let before = user.roles.len();
        user.roles.retain(|r| r != role);
        if user.roles.len() == before {
            return Err(EtcdError::RoleNotGranted);
        }
        let mut out = Vec::new();
        self.put_user(user, &mut out);
        self.bump(&mut out);
        Ok(out)
    }

    pub fn role_add(&mut self, name: &str) -> Result<Vec<Record>, EtcdError> {
        if name.is_empty() {
            return Err(EtcdError::RoleEmpty);
        }
        if self.roles.contains_key(name) {
            return Err(EtcdError::RoleAlreadyExist);
        }
        let mut out = Vec::new();
        self.put_role(Role { name: name.as_bytes().to_vec(), key_permission: Vec::new() }, &mut out);
        self.bump(&mut out);
        Ok(out)
    }

    /// Deleting a role takes it from every user that had it.
    pub fn role_delete(&mut self, name: &str) -> Result<Vec<Record>, EtcdError> {
        if self.enabled && name == ROOT_ROLE {
            return Err(EtcdError::InvalidAuthMgmt);
        }
        self.role(name)?;
        self.roles.remove(name);
        let mut out = vec![(key(PREFIX_ROLE, name), None)];
        let holders: Vec<User> = self.users.values().filter(|u| u.roles.iter().any(|r| r == name)).cloned().collect();
        for mut u in holders {
            u.roles.retain(|r| r != name);
            self.put_user(u, &mut out);
        }
        self.bump(&mut out);
        Ok(out)
    }

    /// A permission on the same key and range end as one the role has replaces its type;
    /// otherwise it is added, the role's permissions kept sorted by key.
    pub fn role_grant_permission(&mut self, name: &str, perm: Permission) -> Result<Vec<Record>, EtcdError> {
        let mut role = self.role(name)?.clone();
        match role.key_permission.iter_mut().find(|p| p.key == perm.key && p.range_end == perm.range_end) {
            Some(p) => p.perm_type = perm.perm_type,
            None => {
                role.key_permission.push(perm);
                role.key_permission.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        let mut out = Vec::new();
        self.put_role(role, &mut out);
        self.bump(&mut out);
        Ok(out)
    }

    pub fn role_revoke_permission(
        &mut self,
        name: &str,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<Vec<Record>, EtcdError> {
        let mut role = self.role(name)?.clone();
        let before = role.key_permission.len();
        role.key_permission.retain(|p| !(p.key == key && p.range_end == range_end));
        if role.key_permission.len() == before {
            return Err(EtcdError::PermissionNotGranted);
        }
        let mut out = Vec::new();
        self.put_role(role, &mut out);
        self.bump(&mut out);
        Ok(out)
    }

    pub fn user_roles(&self, name: &str) -> Result<Vec<String>, EtcdError> {
        Ok(self.user(name)?.roles.clone())
    }

    pub fn role_permissions(&self, name: &str) -> Result<Vec<Permission>, EtcdError> {
        Ok(self.role(name)?.key_permission.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::authpb::permission::Type;

    fn with_root() -> AuthState {
        let mut s = AuthState::default();
        s.user_add(ROOT_USER, b"h".to_vec(), false).unwrap();
        s.user_grant_role(ROOT_USER, ROOT_ROLE).unwrap();
        s
    }

    #[test]
    fn enable_needs_root_with_the_root_role() {
        let mut s = AuthState::default();
        assert_eq!(s.enable(), Err(EtcdError::RootUserNotExist));
        s.user_add(ROOT_USER, Vec::new(), false).unwrap();
        assert_eq!(s.enable(), Err(EtcdError::RootRoleNotExist));
        s.user_grant_role(ROOT_USER, ROOT_ROLE).unwrap();
        let rev = s.revision;
        assert_eq!(s.enable().unwrap().len(), 1);
        assert!(s.enabled);
        // Enabling neither bumps the revision nor writes twice.
        assert_eq!(s.revision, rev);
        assert!(s.enable().unwrap().is_empty());
    }

    #[test]
    fn root_is_protected_only_while_enabled() {
        let mut s = with_root();
        s.role_add(ROOT_ROLE).unwrap();
        s.enable().unwrap();
        assert_eq!(s.user_delete(ROOT_USER), Err(EtcdError::InvalidAuthMgmt));
        assert_eq!(s.user_revoke_role(ROOT_USER, ROOT_ROLE), Err(EtcdError::InvalidAuthMgmt));
        assert_eq!(s.role_delete(ROOT_ROLE), Err(EtcdError::InvalidAuthMgmt));
        let rev = s.revision;
        s.disable();
        assert_eq!(s.revision, rev + 1);
        s.user_revoke_role(ROOT_USER, ROOT_ROLE).unwrap();
        s.user_delete(ROOT_USER).unwrap();
    }

    #[test]
    fn users_and_roles_errors() {
        let mut s = with_root();
        assert_eq!(s.user_add("", Vec::new(), false), Err(EtcdError::UserEmpty));
        assert_eq!(s.user_add(ROOT_USER, Vec::new(), false), Err(EtcdError::UserAlreadyExist));
        assert_eq!(s.role_add(""), Err(EtcdError::RoleEmpty));
        s.role_add("r").unwrap();
        assert_eq!(s.role_add("r"), Err(EtcdError::RoleAlreadyExist));
        assert_eq!(s.user_grant_role("nobody", "r"), Err(EtcdError::UserNotFound));
        assert_eq!(s.user_grant_role(ROOT_USER, "nothing"), Err(EtcdError::RoleNotFound));
        assert_eq!(s.user_revoke_role(ROOT_USER, "r"), Err(EtcdError::RoleNotGranted));
        assert_eq!(s.role_revoke_permission("r", b"k", b""), Err(EtcdError::PermissionNotGranted));
        assert_eq!(s.user_delete("nobody"), Err(EtcdError::UserNotFound));
        assert_eq!(s.role_delete("nothing"), Err(EtcdError::RoleNotFound));
    }

    #[test]
    fn granting_twice_changes_nothing() {
        let mut s = with_root();
        s.role_add("r").unwrap();
        s.user_grant_role(ROOT_USER, "r").unwrap();
        let rev = s.revision;
        assert!(s.user_grant_role(ROOT_USER, "r").unwrap().is_empty());
        assert_eq!(s.revision, rev);
        assert_eq!(s.user_roles(ROOT_USER).unwrap(), vec!["r".to_string(), "root".to_string()]);
    }

    #[test]
    fn deleting_a_role_takes_it_from_its_users() {
        let mut s = with_root();
        s.role_add("r").unwrap();
        s.user_add("u", Vec::new(), true).unwrap();
        s.user_grant_role("u", "r").unwrap();
        let out = s.role_delete("r").unwrap();
        assert!(s.user_roles("u").unwrap().is_empty());
        // The role's deletion, the user's new record and the revision.
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn permissions_replace_by_key_and_range_end() {
        let mut s = with_root();
        s.role_add("r").unwrap();
        let perm = |t: Type, k: &str, e: &str| Permission {
            perm_type: t as i32,
            key: k.as_bytes().to_vec(),
            range_end: e.as_bytes().to_vec(),
        };
        s.role_grant_permission("r", perm(Type::Read, "b", "c")).unwrap();
        s.role_grant_permission("r", perm(Type::Read, "a", "")).unwrap();
        s.role_grant_permission("r", perm(Type::Write, "b", "c")).unwrap();
        s.role_grant_permission("r", perm(Type::Read, "b", "d")).unwrap();
        let perms = s.role_permissions("r").unwrap();
        let shown: Vec<_> = perms.iter().map(|p| (p.key.clone(), p.range_end.clone(), p.perm_type)).collect();
        assert_eq!(
            shown,
            vec![
                (b"a".to_vec(), vec![], Type::Read as i32),
                (b"b".to_vec(), b"c".to_vec(), Type::Write as i32),
                (b"b".to_vec(), b"d".to_vec(), Type::Read as i32),
            ]
        );
        s.role_revoke_permission("r", b"b", b"c").unwrap();
        assert_eq!(s.role_permissions("r").unwrap().len(), 2);
    }
}
