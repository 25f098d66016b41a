//! Auto TLS (`--auto-tls`, `--peer-auto-tls`), as etcd makes it: an ECDSA P-256 key and a
//! self-signed certificate valid for the hosts of this side's URLs, for a year, kept in
//! `<data-dir>/fixtures/<side>/` (0600 files) and reused at the next start.

use super::TlsError;
use std::path::{Path, PathBuf};

pub fn make(dir: &Path, hosts: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let failed = |why: String| TlsError::Flags(format!("making a self-signed certificate in {}: {why}", dir.display()));
    let mut names: Vec<String> = hosts.to_vec();
    names.sort();
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| failed(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "etcd");
    params.distinguished_name = dn;
    params.not_before = rcgen::date_time_ymd(2000, 1, 1).max(time_now());
    params.not_after = params.not_before + std::time::Duration::from_secs(365 * 24 * 3600);
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| failed(e.to_string()))?;
    let signed = params.self_signed(&key_pair).map_err(|e| failed(e.to_string()))?;
    crate::storage::private::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
    write(&key, key_pair.serialize_pem().as_bytes()).map_err(|e| failed(e.to_string()))?;
    write(&cert, signed.pem().as_bytes()).map_err(|e| failed(e.to_string()))?;
    tracing::info!(cert = %cert.display(), "made a self-signed certificate (auto TLS)");
    Ok((cert, key))
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = crate::storage::private::create_file(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
