//! Times as backups record them (Unix milliseconds) and as people write them (RFC 3339).

use crate::BackupError;

pub fn parse_time(t: &str) -> Result<i64, BackupError> {
    let at = chrono::DateTime::parse_from_rfc3339(t)
        .map_err(|e| BackupError::Invalid(format!("--time {t:?}: not an RFC 3339 time: {e}")))?;
    Ok(at.timestamp_millis())
}

pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Now, as backups record times.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
