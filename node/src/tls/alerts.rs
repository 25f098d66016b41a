//! A TLS alert a peer sent, in Go's words: etcd's members log "remote error: tls: bad
//! certificate" when a peer refuses their certificate, and tools and people look for it.

use rustls::AlertDescription;
use std::error::Error;

/// Every alert rustls names, to read one back from its message.
const ALERTS: [AlertDescription; 20] = [
    AlertDescription::CloseNotify,
    AlertDescription::UnexpectedMessage,
    AlertDescription::BadRecordMac,
    AlertDescription::RecordOverflow,
    AlertDescription::HandshakeFailure,
    AlertDescription::BadCertificate,
    AlertDescription::UnsupportedCertificate,
    AlertDescription::CertificateRevoked,
    AlertDescription::CertificateExpired,
    AlertDescription::CertificateUnknown,
    AlertDescription::IllegalParameter,
    AlertDescription::UnknownCA,
    AlertDescription::AccessDenied,
    AlertDescription::DecodeError,
    AlertDescription::DecryptError,
    AlertDescription::ProtocolVersion,
    AlertDescription::InsufficientSecurity,
    AlertDescription::InternalError,
    AlertDescription::CertificateRequired,
    AlertDescription::NoApplicationProtocol,
];

fn go_name(alert: AlertDescription) -> String {
    let name = match alert {
        AlertDescription::CloseNotify => "close notify",
        AlertDescription::UnexpectedMessage => "unexpected message",
        AlertDescription::BadRecordMac => "bad record MAC",
        AlertDescription::RecordOverflow => "record overflow",
        AlertDescription::HandshakeFailure => "handshake failure",
        AlertDescription::BadCertificate => "bad certificate",
        AlertDescription::UnsupportedCertificate => "unsupported certificate",
        AlertDescription::CertificateRevoked => "revoked certificate",
        AlertDescription::CertificateExpired => "expired certificate",
        AlertDescription::CertificateUnknown => "unknown certificate",
        AlertDescription::IllegalParameter => "illegal parameter",
        AlertDescription::UnknownCA => "unknown certificate authority",
        AlertDescription::AccessDenied => "access denied",
        AlertDescription::DecodeError => "error decoding message",
        AlertDescription::DecryptError => "error decrypting message",
        AlertDescription::ProtocolVersion => "protocol version not supported",
        AlertDescription::InsufficientSecurity => "insufficient security level",
        AlertDescription::InternalError => "internal error",
        AlertDescription::CertificateRequired => "certificate required",
        AlertDescription::NoApplicationProtocol => "no application protocol",
        other => return format!("alert({})", u8::from(other)),
    };
    name.to_string()
}

/// The alert that ended a connection, somewhere in `err`'s chain of causes, as Go's
/// crypto/tls reports one ("remote error: tls: ...").
pub fn remote_error(err: &(dyn Error + 'static)) -> Option<String> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(rustls::Error::AlertReceived(alert)) = e.downcast_ref::<rustls::Error>() {
            return Some(format!("remote error: tls: {}", go_name(*alert)));
        }
        // tokio-rustls passes the error on as its message only: rustls's own words for it.
        if let Some(name) = e.to_string().strip_prefix("received fatal alert: ") {
            if let Some(alert) = ALERTS.iter().find(|a| format!("{a:?}") == name) {
                return Some(format!("remote error: tls: {}", go_name(*alert)));
            }
        }
        // io::Error's source() skips the error it wraps: look inside it.
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if let Some(found) = remote_error(inner) {
                return Some(found);
            }
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_inside_an_io_error_is_found_and_named_as_go_does() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::BadCertificate),
        );
        assert_eq!(remote_error(&io).as_deref(), Some("remote error: tls: bad certificate"));
        let passed_on = std::io::Error::new(std::io::ErrorKind::InvalidData, "received fatal alert: UnknownCA");
        assert_eq!(remote_error(&passed_on).as_deref(), Some("remote error: tls: unknown certificate authority"));
        let other = std::io::Error::other("connection refused");
        assert_eq!(remote_error(&other), None);
    }
}
