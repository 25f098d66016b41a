//! etcd's JWT tokens: claims `username`, `revision` (the auth revision when it was issued)
//! and `exp`, signed with the method `sign-method` names. Any member holding the key
//! verifies a token any other member issued; a token dies at `exp`, and with every change to
//! the auth store (its revision is then old).

use super::keys::{self, KeyKind, PublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::{hmac, signature};
use rustls::sign::SigningKey;
use rustls::SignatureScheme;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The sign methods, by their JWT names.
#[derive(Clone, Copy, Debug)]
enum Method {
    Rsa(SignatureScheme, &'static signature::RsaParameters),
    Ecdsa(SignatureScheme, &'static signature::EcdsaVerificationAlgorithm, KeyKind, usize),
    Hmac(hmac::Algorithm),
}

fn method(name: &str) -> Option<Method> {
    use SignatureScheme as S;
    Some(match name {
        "RS256" => Method::Rsa(S::RSA_PKCS1_SHA256, &signature::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => Method::Rsa(S::RSA_PKCS1_SHA384, &signature::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => Method::Rsa(S::RSA_PKCS1_SHA512, &signature::RSA_PKCS1_2048_8192_SHA512),
        "PS256" => Method::Rsa(S::RSA_PSS_SHA256, &signature::RSA_PSS_2048_8192_SHA256),
        "PS384" => Method::Rsa(S::RSA_PSS_SHA384, &signature::RSA_PSS_2048_8192_SHA384),
        "PS512" => Method::Rsa(S::RSA_PSS_SHA512, &signature::RSA_PSS_2048_8192_SHA512),
        "ES256" => Method::Ecdsa(S::ECDSA_NISTP256_SHA256, &signature::ECDSA_P256_SHA256_FIXED, KeyKind::EcP256, 32),
        "ES384" => Method::Ecdsa(S::ECDSA_NISTP384_SHA384, &signature::ECDSA_P384_SHA384_FIXED, KeyKind::EcP384, 48),
        "HS256" => Method::Hmac(hmac::HMAC_SHA256),
        "HS384" => Method::Hmac(hmac::HMAC_SHA384),
        "HS512" => Method::Hmac(hmac::HMAC_SHA512),
        _ => return None,
    })
}

/// What a token says once verified.
#[derive(Debug, PartialEq, Eq)]
pub struct Claims {
    pub username: String,
    pub revision: u64,
}

pub struct JwtTokens {
    name: String,
    method: Method,
    /// None: this member only verifies (it was given a public key alone).
    signer: Option<Arc<dyn SigningKey>>,
    public: Option<PublicKey>,
    secret: Option<hmac::Key>,
    ttl: Duration,
}

/// Why `--auth-token jwt,...` cannot be used (etcd's error first).
fn invalid(what: &str) -> String {
    format!("auth: invalid auth options: {what}")
}

impl JwtTokens {
    /// From the options after "jwt,": sign-method, pub-key, priv-key, ttl.
    pub fn new(opts: &std::collections::BTreeMap<String, String>) -> Result<JwtTokens, String> {
        let ttl = match opts.get("ttl") {
            Some(t) => {
                crate::config::parse_duration(t).ok_or_else(|| invalid(&format!("ttl {t:?} is not a duration")))?
            }
            None => Duration::from_secs(300),
        };
        let name = opts.get("sign-method").cloned().unwrap_or_default();
        let method = method(&name).ok_or_else(|| {
            format!(
                "auth: invalid auth signature method {name:?} (RS256/384/512, PS256/384/512, ES256/384, HS256/384/512)"
            )
        })?;
        let read = |opt: &str| -> Result<Option<Vec<u8>>, String> {
            opts.get(opt).map(|f| std::fs::read(f).map_err(|e| invalid(&format!("{opt} {f}: {e}")))).transpose()
        };
        let (private, public) = (read("priv-key")?, read("pub-key")?);
        let mut t = JwtTokens { name, method, signer: None, public: None, secret: None, ttl };
        if let Method::Hmac(alg) = method {
            let secret = private.ok_or("auth: missing key data: priv-key (the HMAC secret)")?;
            t.secret = Some(hmac::Key::new(alg, &secret));
            return Ok(t);
        }
        let public =
            public.map(|p| keys::read_public(&p).map_err(|e| invalid(&format!("pub-key: {e}")))).transpose()?;
        if let Some(p) = private {
            let (signer, derived) = keys::read_private(&p).map_err(|e| invalid(&format!("priv-key: {e}")))?;
            if public.as_ref().is_some_and(|p| *p != derived) {
                return Err("auth: public and private keys don't match".into());
            }
            t.signer = Some(signer);
            t.public = Some(derived);
        } else {
            t.public = Some(public.ok_or("auth: missing key data: pub-key or priv-key")?);
        }
        let kind = t.public.as_ref().map(|p| p.algorithm);
        let fits = match method {
            Method::Rsa(..) => kind == Some(KeyKind::Rsa),
            Method::Ecdsa(_, _, want, _) => kind == Some(want),
            Method::Hmac(_) => true,
        };
        if !fits {
            return Err(invalid(&format!("the key is not one {} signs with", t.name)));
        }
        // A signer must offer the method's scheme (an RSA key always does).
        if let (Some(s), Method::Rsa(scheme, _) | Method::Ecdsa(scheme, ..)) = (&t.signer, method) {
            if s.choose_scheme(&[scheme]).is_none() {
                return Err(invalid(&format!("the key cannot sign {}", t.name)));
            }
        }
        Ok(t)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        match self.method {
            Method::Hmac(_) => Ok(hmac::sign(self.secret.as_ref().ok_or("no secret")?, message).as_ref().to_vec()),
            Method::Rsa(scheme, _) | Method::Ecdsa(scheme, ..) => {
                let signer = self.signer.as_ref().ok_or("verify-only")?;
                let sig =
                    signer.choose_scheme(&[scheme]).ok_or("no scheme")?.sign(message).map_err(|e| e.to_string())?;
                match self.method {
                    Method::Ecdsa(_, _, _, width) => {
                        keys::ecdsa_der_to_fixed(&sig, width).ok_or("bad ECDSA signature".into())
                    }
                    _ => Ok(sig),
                }
            }
        }
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self.method {
            Method::Hmac(_) => self.secret.as_ref().is_some_and(|k| hmac::verify(k, message, sig).is_ok()),
            Method::Rsa(_, params) => self
                .public
                .as_ref()
                .is_some_and(|p| signature::UnparsedPublicKey::new(params, &p.bits).verify(message, sig).is_ok()),
            Method::Ecdsa(_, alg, _, _) => self
                .public
                .as_ref()
                .is_some_and(|p| signature::UnparsedPublicKey::new(alg, &p.bits).verify(message, sig).is_ok()),
        }
    }

    pub fn can_sign(&self) -> bool {
        self.signer.is_some() || self.secret.is_some()
    }

    /// A token for `username` as of auth revision `revision`, valid for the TTL.
    pub fn issue(&self, username: &str, revision: u64) -> Result<String, String> {
        let exp = (SystemTime::now() + self.ttl).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let header = serde_json::json!({"alg": self.name, "typ": "JWT"});
        // Go encodes a map's keys sorted; so does serde_json's (BTreeMap-backed) object.
        let claims = serde_json::json!({"exp": exp, "revision": revision, "username": username});
        let signed = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let sig = self.sign(signed.as_bytes())?;
        Ok(format!("{signed}.{}", B64.encode(sig)))
    }

    /// What a token says, if this member's key verifies it and it has not expired.
    pub fn verify_token(&self, token: &str) -> Option<Claims> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: serde_json::Value = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
        if header.get("alg")?.as_str()? != self.name {
            return None;
        }
        if !self.verify(&token.as_bytes()[..h.len() + 1 + c.len()], &B64.decode(s).ok()?) {
            return None;
        }
        let claims: serde_json::Value = serde_json::from_slice(&B64.decode(c).ok()?).ok()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
        if let Some(exp) = claims.get("exp") {
            if now > exp.as_f64()? {
                return None;
            }
        }
        Some(Claims {
            username: claims.get("username")?.as_str()?.to_string(),
            revision: claims.get("revision")?.as_f64()? as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn opts(
        dir: &std::path::Path,
        method: &str,
        private: Option<&str>,
        public: Option<&str>,
    ) -> BTreeMap<String, String> {
        let mut m = BTreeMap::from([("sign-method".to_string(), method.to_string())]);
        for (name, pem) in [("priv-key", private), ("pub-key", public)] {
            if let Some(pem) = pem {
                let path = dir.join(name);
                std::fs::write(&path, pem).unwrap();
                m.insert(name.to_string(), path.display().to_string());
            }
        }
        m
    }

    #[test]
    fn each_method_signs_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        // ring cannot make RSA keys: a PKCS#1 one made by openssl.
        let rsa = RSA_KEY.to_string();
        let cases = vec![
            ("ES256", p256.serialize_pem()),
            ("ES384", p384.serialize_pem()),
            ("RS256", rsa.clone()),
            ("RS512", rsa.clone()),
            ("PS256", rsa),
            ("HS256", "a shared secret".into()),
        ];
        for (method, pem) in cases {
            let t = JwtTokens::new(&opts(dir.path(), method, Some(&pem), None)).unwrap();
            let token = t.issue("alice", 7).unwrap();
            assert_eq!(t.verify_token(&token), Some(Claims { username: "alice".into(), revision: 7 }), "{method}");
            // Tampered claims fail.
            let mut parts: Vec<&str> = token.split('.').collect();
            let forged = B64.encode(r#"{"exp":99999999999,"revision":7,"username":"root"}"#);
            parts[1] = &forged;
            assert_eq!(t.verify_token(&parts.join(".")), None, "{method}");
        }
    }

    const RSA_KEY: &str = include_str!("testdata/rsa.key");
    const RSA_PUB: &str = include_str!("testdata/rsa.pub");

    #[test]
    fn an_rsa_public_key_verifies_what_its_private_key_signed() {
        let dir = tempfile::tempdir().unwrap();
        let signer = JwtTokens::new(&opts(dir.path(), "RS256", Some(RSA_KEY), Some(RSA_PUB))).unwrap();
        let verifier = JwtTokens::new(&opts(dir.path(), "RS256", None, Some(RSA_PUB))).unwrap();
        let token = signer.issue("u", 3).unwrap();
        assert_eq!(verifier.verify_token(&token), Some(Claims { username: "u".into(), revision: 3 }));
        // Another method's name on the same key is refused.
        let ps = JwtTokens::new(&opts(dir.path(), "PS256", Some(RSA_KEY), None)).unwrap();
        assert_eq!(verifier.verify_token(&ps.issue("u", 3).unwrap()), None);
    }

    #[test]
    fn a_public_key_alone_verifies_only() {
        let dir = tempfile::tempdir().unwrap();
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let signer = JwtTokens::new(&opts(dir.path(), "ES256", Some(&pair.serialize_pem()), None)).unwrap();
        let verifier = JwtTokens::new(&opts(dir.path(), "ES256", None, Some(&pair.public_key_pem()))).unwrap();
        assert!(!verifier.can_sign());
        assert!(verifier.issue("u", 1).is_err());
        let token = signer.issue("u", 1).unwrap();
        assert_eq!(verifier.verify_token(&token).map(|c| c.username), Some("u".to_string()));
        // Another key's tokens are refused.
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let stranger = JwtTokens::new(&opts(dir.path(), "ES256", Some(&other.serialize_pem()), None)).unwrap();
        assert_eq!(verifier.verify_token(&stranger.issue("u", 1).unwrap()), None);
    }

    #[test]
    fn expired_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path(), "HS256", Some("secret"), None);
        o.insert("ttl".into(), "1ms".into());
        let t = JwtTokens::new(&o).unwrap();
        let token = t.issue("u", 1).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // exp has a resolution of one second: it passes within two.
        while t.verify_token(&token).is_some() {
            assert!(std::time::Instant::now() < deadline, "the token never expired");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn bad_options_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let err = |o| JwtTokens::new(&o).err().unwrap();
        assert!(err(opts(dir.path(), "XX1", Some(&p256.serialize_pem()), None)).contains("signature method"));
        assert!(err(opts(dir.path(), "ES256", None, None)).contains("missing key data"));
        assert!(err(opts(dir.path(), "ES384", Some(&p256.serialize_pem()), None)).contains("is not one ES384"));
        assert!(err(opts(dir.path(), "ES256", Some(&p256.serialize_pem()), Some(&other.public_key_pem())))
            .contains("don't match"));
        assert!(err(opts(dir.path(), "RS256", Some(&p256.serialize_pem()), None)).contains("is not one RS256"));
    }
}
