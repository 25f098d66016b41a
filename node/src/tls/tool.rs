//! TLS for Cairn's own client tools (`cairn bench`, `cairn snapshot save`), from etcdctl's
//! flags: `--cacert` (whom to trust; else the system's CA bundle), `--cert` and `--key` (the
//! tool's own certificate, for mutual TLS).

use super::{default_provider, files, verify, TlsError};
use std::path::Path;
use std::sync::Arc;

/// Where Debian and most distributions keep the system's trusted CAs.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

pub fn client_config(
    cacert: Option<&Path>,
    cert_key: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let (flag, ca) = match cacert {
        Some(ca) => ("--cacert", ca),
        None => ("the system's CA bundle", Path::new(SYSTEM_CAS)),
    };
    let roots = files::roots(flag, ca)?;
    let provider = default_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Flags(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verify::server_verifier(roots, provider)?);
    let mut config = match cert_key {
        Some((cert, key)) => {
            let certs = files::certs("--cert", cert)?;
            let key_der = files::key("--key", key)?;
            builder.with_client_auth_cert(certs, key_der).map_err(|e| TlsError::File {
                flag: "--key".into(),
                file: key.to_path_buf(),
                why: format!("does not go with --cert {}: {e}", cert.display()),
            })?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// etcd's rule for the certificate its gRPC proxy shows the members: no Common Name, for the
/// members' auth would take a CN for the user of every call the proxy passes on.
pub fn require_empty_cn(cert: &Path) -> Result<(), TlsError> {
    let certs = files::certs("--cert", cert)?;
    match certs.first().and_then(verify::common_name).filter(|cn| !cn.is_empty()) {
        Some(cn) => Err(TlsError::Flags(format!("cert has non empty Common Name ({cn})"))),
        None => Ok(()),
    }
}
