//! Tokens a client authenticates with, as `--auth-token` chooses: `simple` (etcd's default)
//! or `jwt,sign-method=...,priv-key=...,pub-key=...,ttl=...`.

mod jwt;
mod keys;
pub mod simple;

pub use jwt::{Claims, JwtTokens};
pub use simple::SimpleTokens;

use std::collections::BTreeMap;
use std::time::Duration;

pub enum Tokens {
    Simple(SimpleTokens),
    Jwt(JwtTokens),
}

impl Tokens {
    /// From `--auth-token` (and `--auth-token-ttl`, the simple tokens' TTL), with etcd's
    /// errors and what caused them.
    pub fn from_flag(spec: &str, simple_ttl: Duration) -> Result<Tokens, String> {
        let mut parts = spec.split(',');
        let kind = parts.next().unwrap_or_default();
        let mut opts = BTreeMap::new();
        for part in parts {
            let Some((k, v)) = part.split_once('=').filter(|(_, v)| !v.contains('=')) else {
                return Err(format!("auth: invalid auth options: {part:?} is not key=value"));
            };
            if opts.insert(k.to_string(), v.to_string()).is_some() {
                return Err(format!("auth: invalid auth options: {k} given twice"));
            }
        }
        match kind {
            "simple" => {
                tracing::warn!("simple token is not cryptographically signed");
                Ok(Tokens::Simple(SimpleTokens::new(simple_ttl)))
            }
            "jwt" => {
                let unknown: Vec<&String> = opts
                    .keys()
                    .filter(|k| !matches!(k.as_str(), "sign-method" | "pub-key" | "priv-key" | "ttl"))
                    .collect();
                if !unknown.is_empty() {
                    tracing::warn!(keys = ?unknown, "unknown JWT options");
                }
                Ok(Tokens::Jwt(JwtTokens::new(&opts)?))
            }
            other => Err(format!("auth: invalid auth options: unknown token type {other:?} (simple or jwt)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_flags() {
        let ttl = Duration::from_secs(300);
        assert!(matches!(Tokens::from_flag("simple", ttl), Ok(Tokens::Simple(_))));
        let err = |s: &str| Tokens::from_flag(s, ttl).err().unwrap();
        assert!(err("opaque").contains("unknown token type"));
        assert!(err("jwt,ttl").contains("not key=value"));
        assert!(err("jwt,ttl=1s,ttl=2s").contains("given twice"));
        assert!(err("jwt,sign-method=HS256").contains("missing key data"));
    }
}
