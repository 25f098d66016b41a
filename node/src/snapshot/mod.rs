//! Snapshot files, as `etcdctl snapshot save` writes what Maintenance.Snapshot streams: a
//! backend image (see `storage::image`), zeros up to a multiple of 512 bytes, then the
//! SHA-256 of all that. etcdctl refuses a file whose size is not 32 more than a multiple of
//! 512; Cairn's own tools check the SHA-256 too. The image itself stops at its END record,
//! so the padding is never taken for data.

pub mod progress;
pub mod restore;
pub mod save;
pub mod status;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

pub const SHA_LEN: u64 = 32;

/// Zeros that follow `len` bytes of image in a snapshot.
pub fn padding(len: u64) -> u64 {
    (512 - len % 512) % 512
}

/// Checks a snapshot file's SHA-256 (unless `skip`, then only its shape).
pub fn verify(path: &Path, skip: bool) -> anyhow::Result<()> {
    let mut f = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let len = f.metadata()?.len();
    if len % 512 != SHA_LEN {
        bail!(
            "{}: not a snapshot file: no SHA-256 at its end (size {len} is not 32 more than a multiple of 512)",
            path.display()
        );
    }
    if skip {
        return Ok(());
    }
    let mut h = Sha256::new();
    let mut left = len - SHA_LEN;
    let mut progress = progress::Progress::new("verifying", Some(left));
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = f.read(&mut buf[..left.min(1 << 20) as usize])?;
        if n == 0 {
            bail!("{}: file ended early", path.display());
        }
        h.update(&buf[..n]);
        left -= n as u64;
        progress.add(n as u64);
    }
    progress.finish();
    let mut want = [0u8; SHA_LEN as usize];
    f.read_exact(&mut want)?;
    let got = h.finalize();
    if got.as_slice() != want {
        bail!("expected sha256 {}, got {}", hex::encode(want), hex::encode(got));
    }
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
        assert_eq!(padding(512), 0);
        assert_eq!(padding(1000), 24);
    }

    #[test]
    fn a_damaged_snapshot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.db");
        let mut data = vec![7u8; 1024];
        data.extend_from_slice(&Sha256::digest(&data));
        std::fs::write(&p, &data).unwrap();
        verify(&p, false).unwrap();
        data[10] ^= 1;
        std::fs::write(&p, &data).unwrap();
        let err = verify(&p, false).unwrap_err().to_string();
        assert!(err.starts_with("expected sha256"), "{err}");
        verify(&p, true).unwrap();
        std::fs::write(&p, &data[..1000]).unwrap();
        assert!(verify(&p, true).is_err(), "a file without the SHA-256 at its end");
    }
}
