//! etcd's simple tokens: `<16 random letters>.<raft index of the Authenticate entry>`. Every
//! member applies that entry and remembers the token, so any member accepts it; each one
//! forgets it after `ttl` without use (the TTL is per member and restarts on every use, as
//! etcd's). A member that restarts forgets them all: clients authenticate again.

use rand::Rng;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const PREFIX_LEN: usize = 16;

/// How often expired tokens are swept out (they are refused when looked up either way).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub struct SimpleTokens {
    ttl: Duration,
    inner: Mutex<Inner>,
}

struct Inner {
    /// Tokens are kept only while auth is enabled.
    enabled: bool,
    /// Token -> (user, when it expires).
    tokens: HashMap<String, (String, Instant)>,
    swept: Instant,
}

impl SimpleTokens {
    pub fn new(ttl: Duration) -> SimpleTokens {
        let inner = Inner { enabled: false, tokens: HashMap::new(), swept: Instant::now() };
        SimpleTokens { ttl, inner: Mutex::new(inner) }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn prefix() -> String {
        let mut rng = rand::thread_rng();
        (0..PREFIX_LEN).map(|_| LETTERS[rng.gen_range(0..LETTERS.len())] as char).collect()
    }

    pub fn token(prefix: &str, index: u64) -> String {
        format!("{prefix}.{index}")
    }

    /// The raft index a well-formed token names (the member must have applied it before the
    /// token can be known).
    pub fn index_of(token: &str) -> Option<u64> {
        let (prefix, index) = token.split_once('.')?;
        if prefix.contains('.') || index.contains('.') {
            return None;
        }
        index.parse().ok()
    }

    pub fn set_enabled(&self, enabled: bool) {
        let mut inner = self.inner();
        inner.enabled = enabled;
        if !enabled {
            inner.tokens.clear();
        }
    }

    /// Remembers a token for `user` (when its Authenticate entry is applied).
    pub fn assign(&self, token: String, user: &str) {
        let now = Instant::now();
        let mut inner = self.inner();
        if !inner.enabled {
            return;
        }
        if now.duration_since(inner.swept) >= SWEEP_EVERY {
            inner.tokens.retain(|_, (_, deadline)| *deadline > now);
            inner.swept = now;
        }
        inner.tokens.insert(token, (user.to_string(), now + self.ttl));
    }

    /// The user a live token is for; using it restarts its TTL.
    pub fn user_of(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut inner = self.inner();
        let (user, deadline) = inner.tokens.get_mut(token)?;
        if *deadline <= now {
            inner.tokens.remove(token);
            return None;
        }
        *deadline = now + self.ttl;
        Some(user.clone())
    }

    /// Forgets every token of `user` (deleted, or its password changed).
    pub fn invalidate_user(&self, user: &str) {
        self.inner().tokens.retain(|_, (u, _)| u != user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_index() {
        let p = SimpleTokens::prefix();
        assert_eq!(p.len(), PREFIX_LEN);
        assert_eq!(SimpleTokens::index_of(&SimpleTokens::token(&p, 42)), Some(42));
        assert_eq!(SimpleTokens::index_of("abc"), None);
        assert_eq!(SimpleTokens::index_of("a.b.3"), None);
        assert_eq!(SimpleTokens::index_of("a.-3"), None);
    }

    #[test]
    fn tokens_live_while_enabled_and_used() {
        let t = SimpleTokens::new(Duration::from_secs(60));
        t.assign("x.1".into(), "u");
        assert_eq!(t.user_of("x.1"), None, "disabled: nothing kept");
        t.set_enabled(true);
        t.assign("x.1".into(), "u");
        t.assign("y.2".into(), "v");
        assert_eq!(t.user_of("x.1").as_deref(), Some("u"));
        t.invalidate_user("u");
        assert_eq!(t.user_of("x.1"), None);
        assert_eq!(t.user_of("y.2").as_deref(), Some("v"));
        t.set_enabled(false);
        assert_eq!(t.user_of("y.2"), None);
    }

    #[test]
    fn tokens_expire() {
        let t = SimpleTokens::new(Duration::ZERO);
        t.set_enabled(true);
        t.assign("x.1".into(), "u");
        assert_eq!(t.user_of("x.1"), None);
    }
}
