//! The units the spec's fields are written in, read in one place: durations as Kubernetes and
//! Go write them ("10s", "1m30s", "168h", "500ms") and quantities of bytes ("100Mi", "1G").

use std::time::Duration;

/// A duration: a sequence of numbers with units.
pub fn duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?}: not a duration (examples: 10s, 1m30s, 168h)");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(bad)?;
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit_len = rest[digits..].find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len() - digits);
        let unit = match &rest[digits..digits + unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(n * unit);
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

/// A Kubernetes quantity in bytes ("100Mi", "1G", "1.5Gi", "500").
pub fn quantity(q: &str) -> Option<i64> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(q.len());
    let n: f64 = q[..split].parse().ok()?;
    let unit: f64 = match &q[split..] {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        _ => return None,
    };
    Some((n * unit) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("168h"), Ok(Duration::from_secs(168 * 3600)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("1.5h"), Ok(Duration::from_secs(5400)));
        for bad in ["", "10", "s", "10d", "1x"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantities() {
        const MI: i64 = 1 << 20;
        assert_eq!(quantity("100Mi"), Some(100 * MI));
        assert_eq!(quantity("1G"), Some(1_000_000_000));
        assert_eq!(quantity("1.5Gi"), Some(1536 * MI));
        assert_eq!(quantity("500"), Some(500));
        assert_eq!(quantity("5 Mi"), None);
        assert_eq!(quantity("Mi"), None);
    }
}
