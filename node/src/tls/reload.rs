//! A certificate and key that follow their files: each handshake checks (a stat, cheap)
//! whether either file changed since it was read, and reads the pair again if so. A pair that
//! does not read, or whose key does not match its certificate, is logged and the last good
//! pair stays in use: a rotation caught half-written never takes the member down.

use super::files;
use super::{Side, TlsError};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

#[derive(Debug)]
pub struct Reloading {
    side: Side,
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<(Option<SystemTime>, Option<SystemTime>, Arc<CertifiedKey>)>,
}

fn modified(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Reloading {
    pub fn new(
        side: Side,
        cert_file: PathBuf,
        key_file: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let stamps = (modified(&cert_file), modified(&key_file));
        let key = load(side, &cert_file, &key_file, &provider)?;
        Ok(Reloading { side, cert_file, key_file, provider, current: Mutex::new((stamps.0, stamps.1, Arc::new(key))) })
    }

    fn get(&self) -> Arc<CertifiedKey> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let stamps = (modified(&self.cert_file), modified(&self.key_file));
        if (stamps.0, stamps.1) != (cur.0, cur.1) {
            match load(self.side, &self.cert_file, &self.key_file, &self.provider) {
                Ok(k) => {
                    tracing::info!(cert = %self.cert_file.display(), "reloaded a rotated certificate");
                    *cur = (stamps.0, stamps.1, Arc::new(k));
                }
                Err(e) => {
                    // Not retried until the files change again.
                    tracing::warn!(error = %e, "keeping the last good certificate");
                    cur.0 = stamps.0;
                    cur.1 = stamps.1;
                }
            }
        }
        cur.2.clone()
    }
}

fn load(
    side: Side,
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let certs = files::certs(&side.flag("cert-file"), cert_file)?;
    let key = files::key(&side.flag("key-file"), key_file)?;
    let ck = CertifiedKey::from_der(certs, key, provider).map_err(|e| TlsError::File {
        flag: side.flag("key-file"),
        file: key_file.to_path_buf(),
        why: format!("does not go with {} {}: {e}", side.flag("cert-file"), cert_file.display()),
    })?;
    Ok(ck)
}

impl rustls::server::ResolvesServerCert for Reloading {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

impl rustls::client::ResolvesClientCert for Reloading {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
