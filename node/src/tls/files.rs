//! Reading certificates, keys, CAs and CRLs from PEM files, each failure naming the flag and
//! the file.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::RootCertStore;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{flag} {}: {why}", file.display())]
    File { flag: String, file: std::path::PathBuf, why: String },
    #[error("{0}")]
    Flags(String),
}

fn bad(flag: &str, file: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::File { flag: flag.to_string(), file: file.to_path_buf(), why: why.to_string() }
}

/// Every certificate in a PEM file (a chain: the leaf first).
pub fn certs(flag: &str, file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(file)
        .map_err(|e| bad(flag, file, pem_error(e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(flag, file, pem_error(e)))?;
    if certs.is_empty() {
        return Err(bad(flag, file, "no certificate in it"));
    }
    Ok(certs)
}

pub fn key(flag: &str, file: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(file).map_err(|e| bad(flag, file, pem_error(e)))
}

pub fn roots(flag: &str, file: &Path) -> Result<Trusted, TlsError> {
    let mut store = RootCertStore::empty();
    let certs = certs(flag, file)?;
    for cert in &certs {
        store.add(cert.clone()).map_err(|e| bad(flag, file, e))?;
    }
    Ok(Trusted { store: Arc::new(store), certs: Arc::new(certs) })
}

/// A trusted-CA file: webpki's trust anchors, and the certificates themselves (a peer may
/// present one of them as its own, which Go accepts and webpki does not).
#[derive(Clone, Debug)]
pub struct Trusted {
    pub store: Arc<RootCertStore>,
    pub certs: Arc<Vec<CertificateDer<'static>>>,
}

/// CRLs, PEM or DER (etcd reads either).
pub fn crls(flag: &str, file: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = std::fs::read(file).map_err(|e| bad(flag, file, e))?;
    if bytes.starts_with(b"-----BEGIN") {
        let crls: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| bad(flag, file, pem_error(e)))?;
        if crls.is_empty() {
            return Err(bad(flag, file, "no certificate revocation list in it"));
        }
        return Ok(crls);
    }
    Ok(vec![CertificateRevocationListDer::from(bytes)])
}

fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "nothing of the expected kind in it (PEM)".into(),
        other => format!("not readable as PEM: {other:?}"),
    }
}
