//! `cairn snapshot save|status|restore`: snapshot files, as `etcdctl snapshot save` writes
//! what Maintenance.Snapshot streams (the format: `cairn_api::snapshot`).

pub mod progress;
pub mod restore;
pub mod save;
pub mod status;

use std::path::Path;

pub use cairn_api::snapshot::SHA_LEN;

/// Checks a snapshot file's SHA-256 (unless `skip`, then only its shape), with progress.
pub fn verify(path: &Path, skip: bool) -> anyhow::Result<()> {
    let size = std::fs::metadata(path).map(|m| m.len().saturating_sub(SHA_LEN)).ok();
    let mut progress = progress::Progress::new("verifying", size);
    cairn_api::snapshot::verify(path, skip, |n| progress.add(n))?;
    progress.finish();
    Ok(())
}

/// etcd's way of showing a size (go-humanize): powers of 1000, one decimal below 10.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let val = ((n as f64 / 1000f64.powi(e as i32)) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_etcd_prints_them() {
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(20480), "20 kB");
        assert_eq!(human_bytes(2_100_000), "2.1 MB");
    }
}
