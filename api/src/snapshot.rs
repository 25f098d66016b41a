//! What Maintenance.Snapshot streams, and so what `etcdctl snapshot save` writes: a backend
//! image (see `image`), zeros up to a multiple of 512 bytes, then the SHA-256 of all that.
//! etcdctl refuses a file whose size is not 32 more than a multiple of 512; Cairn's own tools
//! check the SHA-256 too. The image stops at its END record, so the padding is never taken
//! for data.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

pub const SHA_LEN: u64 = 32;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}: not a snapshot file: no SHA-256 at its end (size {1} is not 32 more than a multiple of 512)")]
    NoChecksum(String, u64),
    #[error("{0}: file ended early")]
    Short(String),
    #[error("expected sha256 {want}, got {got}")]
    Mismatch { want: String, got: String },
}

/// Zeros that follow `len` bytes of image in a snapshot.
pub fn padding(len: u64) -> u64 {
    (512 - len % 512) % 512
}

/// Checks a snapshot file's SHA-256 (unless `skip`, then only its shape); `checked` hears of
/// every piece read.
pub fn verify(path: &Path, skip: bool, mut checked: impl FnMut(u64)) -> Result<(), SnapshotError> {
    let shown = path.display().to_string();
    let io = |source| SnapshotError::Io { path: shown.clone(), source };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    if len % 512 != SHA_LEN {
        return Err(SnapshotError::NoChecksum(shown, len));
    }
    if skip {
        return Ok(());
    }
    let mut h = Sha256::new();
    let mut left = len - SHA_LEN;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = f.read(&mut buf[..left.min(1 << 20) as usize]).map_err(io)?;
        if n == 0 {
            return Err(SnapshotError::Short(shown));
        }
        h.update(&buf[..n]);
        left -= n as u64;
        checked(n as u64);
    }
    let mut want = [0u8; SHA_LEN as usize];
    f.read_exact(&mut want).map_err(io)?;
    let got = h.finalize();
    if got.as_slice() != want {
        return Err(SnapshotError::Mismatch { want: hex::encode(want), got: hex::encode(got) });
    }
    Ok(())
}

/// A backend image: every record of a member's backend as of one applied index.
///
/// Format: `MAGIC`, then records `[u32 key len][key][u32 value len][value]` (big-endian),
/// then `END` and the CRC-32 of everything before it.
pub mod image {
    pub const MAGIC: &[u8; 8] = b"CAIRNIMG";
    pub const END: u32 = u32::MAX;
    /// The backend record that holds the store's revision (8 bytes, big-endian).
    pub const META_REVISION: &[u8] = b"mrevision";

    #[derive(Debug, thiserror::Error)]
    #[error("a malformed revision record in the snapshot")]
    pub struct MalformedRevision;

    /// Finds the store's revision in an image that passes by in pieces of any size, keeping
    /// at most one record.
    #[derive(Default)]
    pub struct RevisionScan {
        pending: Vec<u8>,
        past_magic: bool,
        pub revision: Option<i64>,
        pub ended: bool,
    }

    impl RevisionScan {
        pub fn feed(&mut self, data: &[u8]) -> Result<(), MalformedRevision> {
            if self.ended {
                return Ok(()); // padding
            }
            self.pending.extend_from_slice(data);
            let mut at = 0;
            if !self.past_magic {
                if self.pending.len() < MAGIC.len() {
                    return Ok(());
                }
                at = MAGIC.len();
                self.past_magic = true;
            }
            let word = |b: &[u8], i: usize| b.get(i..i + 4).map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
            while let Some(klen) = word(&self.pending, at) {
                if klen == END {
                    self.ended = true;
                    self.pending.clear();
                    return Ok(());
                }
                let kstart = at + 4;
                let Some(vlen) = word(&self.pending, kstart + klen as usize) else { break };
                let vstart = kstart + klen as usize + 4;
                let end = vstart + vlen as usize;
                if self.pending.len() < end {
                    break;
                }
                if &self.pending[kstart..kstart + klen as usize] == META_REVISION {
                    let v: [u8; 8] = self.pending[vstart..end].try_into().map_err(|_| MalformedRevision)?;
                    self.revision = Some(u64::from_be_bytes(v) as i64);
                }
                at = end;
            }
            self.pending.drain(..at);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::image::{RevisionScan, END, MAGIC, META_REVISION};
    use super::*;

    fn record(out: &mut Vec<u8>, k: &[u8], v: &[u8]) {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }

    #[test]
    fn finds_the_revision_whatever_the_chunking() {
        let mut bytes = MAGIC.to_vec();
        record(&mut bytes, b"a-large-record", &[7u8; 10_000]);
        record(&mut bytes, META_REVISION, &4242u64.to_be_bytes());
        record(&mut bytes, b"z", b"after");
        bytes.extend_from_slice(&END.to_be_bytes());
        bytes.extend_from_slice(&[0; 4]);
        for chunk in [1, 3, 4096, bytes.len()] {
            let mut scan = RevisionScan::default();
            for piece in bytes.chunks(chunk) {
                scan.feed(piece).unwrap();
            }
            assert_eq!(scan.revision, Some(4242), "chunks of {chunk}");
            assert!(scan.ended, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_damaged_snapshot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.db");
        let mut data = vec![7u8; 1024];
        data.extend_from_slice(&Sha256::digest(&data));
        std::fs::write(&p, &data).unwrap();
        verify(&p, false, |_| {}).unwrap();
        data[10] ^= 1;
        std::fs::write(&p, &data).unwrap();
        let err = verify(&p, false, |_| {}).unwrap_err().to_string();
        assert!(err.starts_with("expected sha256"), "{err}");
        verify(&p, true, |_| {}).unwrap();
        std::fs::write(&p, &data[..1000]).unwrap();
        assert!(verify(&p, true, |_| {}).is_err(), "a file without the SHA-256 at its end");
        assert_eq!(padding(512), 0);
        assert_eq!(padding(1000), 24);
    }
}
