//! Verifying certificates: a connecting client's (webpki, CRLs, and for peers etcd's
//! allowed CN and hostname), and none at all where etcd trusts anyone (auto TLS).

use super::TlsError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// webpki's verification of client certificates, then etcd's peer checks.
pub fn client_verifier(
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    provider: Arc<CryptoProvider>,
    allowed_cn: Option<String>,
    allowed_hostname: Option<String>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let inner = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
        .with_crls(crls)
        .build()
        .map_err(|e| TlsError::Flags(format!("client certificate verification: {e}")))?;
    if allowed_cn.is_none() && allowed_hostname.is_none() {
        return Ok(inner);
    }
    Ok(Arc::new(Allowed { inner, allowed_cn, allowed_hostname }))
}

#[derive(Debug)]
struct Allowed {
    inner: Arc<dyn ClientCertVerifier>,
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
        let ok = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        if let Some(cn) = &self.allowed_cn {
            if common_name(end_entity).as_deref() != Some(cn.as_str()) {
                return Err(rustls::Error::General(format!("CommonName authentication failed: not {cn:?}")));
            }
        }
        if let Some(host) = &self.allowed_hostname {
            let name = ServerName::try_from(host.as_str())
                .map_err(|_| rustls::Error::General(format!("{host:?} is not a host name")))?;
            let cert =
                webpki::EndEntityCert::try_from(end_entity).map_err(|e| rustls::Error::General(e.to_string()))?;
            cert.verify_is_valid_for_subject_name(&name).map_err(|_| {
                rustls::Error::General(format!("hostname authentication failed: not valid for {host:?}"))
            })?;
        }
        Ok(ok)
    }

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
