use super::*;
use crate::proto::authpb::{permission::Type, Permission};
use state::{ROOT_ROLE, ROOT_USER};

fn store() -> (AuthStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (backend, _writer) = Backend::open(&dir.path().join("db")).unwrap();
    let tokens = Tokens::from_flag("simple", Duration::from_secs(300)).unwrap();
    (AuthStore::load(&backend, tokens, password::MIN_COST).unwrap(), dir)
}

/// root (with the root role), and alice with read on [a, c) and write on "k".
fn populated() -> (AuthStore, tempfile::TempDir) {
    let (s, dir) = store();
    s.change(|st| {
        let mut out = st.user_add(ROOT_USER, Vec::new(), true)?;
        out.extend(st.user_grant_role(ROOT_USER, ROOT_ROLE)?);
        out.extend(st.user_add("alice", b"not checked here".to_vec(), false)?);
        out.extend(st.role_add("r")?);
        let perm = |t: Type, k: &str, e: &str| Permission {
            perm_type: t as i32,
            key: k.as_bytes().to_vec(),
            range_end: e.as_bytes().to_vec(),
        };
        out.extend(st.role_grant_permission("r", perm(Type::Read, "a", "c"))?);
        out.extend(st.role_grant_permission("r", perm(Type::Write, "k", ""))?);
        out.extend(st.user_grant_role("alice", "r")?);
        Ok(out)
    })
    .unwrap();
    (s, dir)
}

fn as_user(s: &AuthStore, user: &str) -> AuthInfo {
    AuthInfo { user: user.into(), revision: s.revision() }
}

#[test]
fn everything_is_allowed_while_auth_is_disabled() {
    let (s, _d) = populated();
    let nobody = AuthInfo::default();
    assert_eq!(s.check(&nobody, Need::Admin), Ok(()));
    assert_eq!(s.check(&nobody, Need::Write(b"z", b"")), Ok(()));
}

#[test]
fn enabled_checks_in_etcds_order() {
    let (s, _d) = populated();
    s.change(|st| st.enable()).unwrap();
    let nobody = AuthInfo::default();
    assert_eq!(s.check(&nobody, Need::Read(b"a", b"")), Err(EtcdError::UserEmpty));
    assert_eq!(s.check(&nobody, Need::Admin), Err(EtcdError::UserEmpty));
    let alice = as_user(&s, "alice");
    assert_eq!(s.check(&alice, Need::Read(b"a", b"b")), Ok(()));
    assert_eq!(s.check(&alice, Need::Read(b"a", b"d")), Err(EtcdError::PermissionDenied));
    assert_eq!(s.check(&alice, Need::Write(b"a", b"")), Err(EtcdError::PermissionDenied));
    assert_eq!(s.check(&alice, Need::Write(b"k", b"")), Ok(()));
    assert_eq!(s.check(&alice, Need::Admin), Err(EtcdError::PermissionDenied));
    let root = as_user(&s, ROOT_USER);
    assert_eq!(s.check(&root, Need::Write(b"\0", b"\0")), Ok(()));
    assert_eq!(s.check(&root, Need::Admin), Ok(()));
    let ghost = as_user(&s, "ghost");
    assert_eq!(s.check(&ghost, Need::Read(b"a", b"")), Err(EtcdError::PermissionDenied));
    assert_eq!(s.check(&ghost, Need::Admin), Err(EtcdError::UserNotFound));
    // Any change makes earlier identities old.
    s.change(|st| st.role_add("another")).unwrap();
    assert_eq!(s.check(&alice, Need::Read(b"a", b"")), Err(EtcdError::AuthOldRevision));
    assert_eq!(s.check(&as_user(&s, "alice"), Need::Read(b"a", b"")), Ok(()));
}

#[test]
fn revoking_a_permission_takes_effect_at_once() {
    let (s, _d) = populated();
    s.change(|st| st.enable()).unwrap();
    s.change(|st| st.role_revoke_permission("r", b"k", b"")).unwrap();
    assert_eq!(s.check(&as_user(&s, "alice"), Need::Write(b"k", b"")), Err(EtcdError::PermissionDenied));
}

#[tokio::test]
async fn simple_tokens_identify_once_their_entry_is_applied() {
    let (s, _d) = populated();
    s.change(|st| st.enable()).unwrap();
    let prefix = s.token_prefix();
    let (applied_tx, applied) = watch::channel(7u64);
    let token = s.issue_token("alice", s.revision(), &prefix, 8).unwrap();
    let creds = Credentials { token: Some(token.clone()), cert_name: None };
    // Index 8 is not applied: the member waits, then refuses.
    let wait = Duration::from_millis(50);
    assert_eq!(s.identify(&creds, &applied, wait).await, Err(EtcdError::InvalidAuthToken));
    s.authenticated("alice", &prefix, 8).unwrap();
    applied_tx.send_replace(8);
    assert_eq!(s.identify(&creds, &applied, wait).await.unwrap().map(|i| i.user), Some("alice".into()));
    // Disabling auth forgets every token.
    s.change(|st| Ok(st.disable())).unwrap();
    assert_eq!(s.identify(&creds, &applied, wait).await, Err(EtcdError::InvalidAuthToken));
    let by_cert = Credentials { token: None, cert_name: Some("bob".into()) };
    assert_eq!(s.identify(&by_cert, &applied, wait).await.unwrap().map(|i| i.user), Some("bob".into()));
}

#[test]
fn passwords_are_checked_with_etcds_errors() {
    let (s, _d) = store();
    assert_eq!(s.check_password("root", "x"), Err(EtcdError::AuthNotEnabled));
    let hashed = s.hash_password("secret");
    s.change(|st| {
        let mut out = st.user_add(ROOT_USER, hashed.clone(), false)?;
        out.extend(st.user_grant_role(ROOT_USER, ROOT_ROLE)?);
        out.extend(st.user_add("certonly", Vec::new(), true)?);
        out.extend(st.enable()?);
        Ok(out)
    })
    .unwrap();
    assert_eq!(s.check_password("root", "secret"), Ok(s.revision()));
    assert_eq!(s.check_password("root", "wrong"), Err(EtcdError::AuthFailed));
    assert_eq!(s.check_password("nobody", "x"), Err(EtcdError::AuthFailed));
    assert_eq!(s.check_password("certonly", "x"), Err(EtcdError::NoPasswordUser));
    assert_eq!(s.authenticated("certonly", "p", 1), Err(EtcdError::AuthFailed));
}
