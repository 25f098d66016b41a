//! Verifying certificates: a connecting client's (webpki, CRLs, and for peers etcd's
//! allowed CN and hostname), and none at all where etcd trusts anyone (auto TLS).

use super::files::Trusted;
use super::TlsError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::Arc;

/// The handshake's signatures are checked by the wrapped webpki verifier: only the
/// certificate's own checks differ.
macro_rules! signatures_checked_by_inner {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// webpki's verification of client certificates (or Go's root-as-leaf rule), then etcd's
/// peer checks.
pub fn client_verifier(
    roots: Trusted,
    crls: Vec<CertificateRevocationListDer<'static>>,
    provider: Arc<CryptoProvider>,
    allowed_cn: Option<String>,
    allowed_hostname: Option<String>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let inner = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.store.clone(), provider)
        .with_crls(crls)
        .build()
        .map_err(|e| TlsError::Flags(format!("client certificate verification: {e}")))?;
    Ok(Arc::new(Allowed { inner, roots: roots.certs, allowed_cn, allowed_hostname }))
}

/// webpki's verification of a server's certificate, or Go's root-as-leaf rule.
pub fn server_verifier(roots: Trusted, provider: Arc<CryptoProvider>) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots.store.clone(), provider)
        .build()
        .map_err(|e| TlsError::Flags(format!("server certificate verification: {e}")))?;
    Ok(Arc::new(Server { inner, roots: roots.certs }))
}

/// Go's x509 accepts a certificate that is itself one of the trusted roots, alone, while it is
/// valid; webpki refuses a CA as an end entity. etcd's deployments (and its own test fixtures)
/// use a self-signed CA as a member's certificate, so Cairn accepts it as etcd does.
fn is_trusted_root(
    roots: &[CertificateDer<'static>],
    cert: &CertificateDer<'_>,
    intermediates: usize,
    now: UnixTime,
) -> bool {
    if intermediates != 0 || !roots.iter().any(|r| r.as_ref() == cert.as_ref()) {
        return false;
    }
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return false;
    };
    let now = now.as_secs() as i64;
    let validity = parsed.validity();
    validity.not_before.timestamp() <= now && now <= validity.not_after.timestamp()
}

/// A peer whose certificate etcd's allowed CN or hostname refuses: logged here with the reason,
/// and answered with the alert Go sends ("bad certificate").
fn refused(why: String) -> rustls::Error {
    // etcd's words for it, which tools look for.
    tracing::warn!("rejected a connection: client certificate authentication failed ({why})");
    rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
}

#[derive(Debug)]
struct Allowed {
    inner: Arc<dyn ClientCertVerifier>,
    roots: Arc<Vec<CertificateDer<'static>>>,
    allowed_cn: Option<String>,
    allowed_hostname: Option<String>,
}

/// The common name of a certificate's subject, if it has one.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

impl ClientCertVerifier for Allowed {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = match self.inner.verify_client_cert(end_entity, intermediates, now) {
            Err(_) if is_trusted_root(&self.roots, end_entity, intermediates.len(), now) => {
                ClientCertVerified::assertion()
            }
            verdict => verdict?,
        };
        if let Some(cn) = &self.allowed_cn {
            if common_name(end_entity).as_deref() != Some(cn.as_str()) {
                return Err(refused(format!("its CommonName is not {cn:?}")));
            }
        }
        if let Some(host) = &self.allowed_hostname {
            let valid = ServerName::try_from(host.as_str()).ok().is_some_and(|name| {
                webpki::EndEntityCert::try_from(end_entity)
                    .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
            });
            if !valid {
                return Err(refused(format!("it is not valid for {host:?}")));
            }
        }
        Ok(ok)
    }

    signatures_checked_by_inner!();
}

/// Trusts any server certificate (auto TLS, where every member's is self-signed, as etcd's
/// members do), still checking that the handshake's signatures are real.
#[derive(Debug)]
pub struct AcceptAny(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[derive(Debug)]
struct Server {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    roots: Arc<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Server {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, name, ocsp, now) {
            Err(e) if is_trusted_root(&self.roots, end_entity, intermediates.len(), now) => {
                // Trusted as a root; it must still name the server dialed.
                let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| e.clone())?;
                cert.verify_is_valid_for_subject_name(name).map_err(|_| e)?;
                Ok(ServerCertVerified::assertion())
            }
            verdict => verdict,
        }
    }

    signatures_checked_by_inner!();
}
