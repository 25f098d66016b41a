//! The keys JWT tokens are signed and verified with, read from `--auth-token`'s files as
//! etcd reads them: a private key in PEM (PKCS#1, PKCS#8 or SEC1) signs; a public key in PEM
//! ("PUBLIC KEY", or a certificate) verifies, and alone makes a member that only verifies;
//! for the HMAC methods the private key file's bytes are the secret.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, SubjectPublicKeyInfoDer};
use rustls::sign::SigningKey;
use std::sync::Arc;

/// A public key as ring verifies it: its algorithm and the key bits (an RSAPublicKey for
/// RSA, the uncompressed point for ECDSA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub algorithm: KeyKind,
    pub bits: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Other,
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// The key in a SubjectPublicKeyInfo.
pub fn from_spki(der: &[u8]) -> Result<PublicKey, String> {
    use x509_parser::prelude::FromDer;
    let (_, spki) =
        x509_parser::x509::SubjectPublicKeyInfo::from_der(der).map_err(|e| format!("not a public key: {e}"))?;
    let oid = spki.algorithm.algorithm.to_id_string();
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
    let algorithm = match (oid.as_str(), curve.as_deref()) {
        (OID_RSA, _) => KeyKind::Rsa,
        (OID_EC, Some(OID_P256)) => KeyKind::EcP256,
        (OID_EC, Some(OID_P384)) => KeyKind::EcP384,
        _ => KeyKind::Other,
    };
    Ok(PublicKey { algorithm, bits: spki.subject_public_key.data.to_vec() })
}

/// A public key file: "PUBLIC KEY" or a certificate.
pub fn read_public(pem: &[u8]) -> Result<PublicKey, String> {
    if let Ok(spki) = SubjectPublicKeyInfoDer::from_pem_slice(pem) {
        return from_spki(spki.as_ref());
    }
    if let Ok(cert) = CertificateDer::from_pem_slice(pem) {
        let (_, parsed) =
            x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| format!("not a certificate: {e}"))?;
        return from_spki(parsed.public_key().raw);
    }
    Err("no PEM public key or certificate in it".into())
}

/// A private key file, and the public key that goes with it.
pub fn read_private(pem: &[u8]) -> Result<(Arc<dyn SigningKey>, PublicKey), String> {
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no PEM private key in it: {e}"))?;
    let key = rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| e.to_string())?;
    let spki = key.public_key().ok_or("a key without a public half")?;
    let public = from_spki(spki.as_ref())?;
    Ok((key, public))
}

/// ring signs ECDSA as a DER SEQUENCE of two INTEGERs; JWT wants r and s as fixed-width
/// big-endian numbers of `width` bytes each, concatenated.
pub fn ecdsa_der_to_fixed(der: &[u8], width: usize) -> Option<Vec<u8>> {
    fn take(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = input.split_first()?;
        if t != tag {
            return None;
        }
        let (&len, rest) = rest.split_first()?;
        let (len, rest) = if len < 0x80 {
            (len as usize, rest)
        } else if len == 0x81 {
            let (&l, rest) = rest.split_first()?;
            (l as usize, rest)
        } else {
            return None;
        };
        (rest.len() >= len).then(|| rest.split_at(len))
    }
    let (seq, _) = take(der, 0x30)?;
    let (r, rest) = take(seq, 0x02)?;
    let (s, _) = take(rest, 0x02)?;
    let mut out = Vec::with_capacity(2 * width);
    for n in [r, s] {
        let n = &n[n.iter().position(|&b| b != 0).unwrap_or(n.len())..];
        if n.len() > width {
            return None;
        }
        out.extend(std::iter::repeat_n(0, width - n.len()));
        out.extend_from_slice(n);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_signatures_become_fixed_width() {
        // r = 0x00ff.. (a leading zero for the sign), s = 0x01.
        let mut der = vec![0x30, 0, 0x02, 33, 0];
        der.extend([0xff; 32]);
        der.extend([0x02, 1, 1]);
        der[1] = (der.len() - 2) as u8;
        let fixed = ecdsa_der_to_fixed(&der, 32).unwrap();
        assert_eq!(fixed.len(), 64);
        assert_eq!(&fixed[..32], &[0xff; 32]);
        assert_eq!(fixed[63], 1);
        assert!(fixed[32..63].iter().all(|&b| b == 0));
        assert_eq!(ecdsa_der_to_fixed(&der, 16), None);
        assert_eq!(ecdsa_der_to_fixed(b"junk", 32), None);
    }

    #[test]
    fn generated_keys_read_back() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let (_, public) = read_private(pair.serialize_pem().as_bytes()).unwrap();
        assert_eq!(public.algorithm, KeyKind::EcP256);
        assert_eq!(read_public(pair.public_key_pem().as_bytes()).unwrap(), public);
        let cert = rcgen::CertificateParams::new(vec!["x".into()]).unwrap().self_signed(&pair).unwrap();
        assert_eq!(read_public(cert.pem().as_bytes()).unwrap(), public);
        assert!(read_public(b"nothing").is_err());
    }
}
