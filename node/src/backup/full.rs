//! A full backup: Maintenance.Snapshot from one member, compressed as it streams and uploaded
//! in parts, so no snapshot is ever held whole in memory or written to local disk. Its
//! revision is read from the snapshot itself (the backend image's revision record) as it
//! passes, not asked of the member, which may have moved on by then.

use super::catalog::Full;
use super::s3::Store;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::proto::etcdserverpb::SnapshotRequest;
use crate::storage::backend::META_REVISION;
use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use std::io::Write;

/// Parts of this size are sent as the compressed stream fills them (S3 wants >= 5 MiB).
const PART: usize = 8 << 20;
const ZSTD_LEVEL: i32 = 3;

/// Uploads a snapshot of the member behind `channel` as `key`; returns its catalog entry.
pub async fn upload(
    channel: tonic::transport::Channel,
    store: &Store,
    key: &str,
    generation: u64,
    unix_ms: i64,
) -> anyhow::Result<Full> {
    let mut upload = store.multipart(key).await?;
    match stream_into(channel, &mut upload).await {
        Ok((revision, bytes, stored_bytes, sha256)) => {
            upload.complete().await?;
            Ok(Full {
                revision,
                key: key.to_string(),
                sha256,
                bytes,
                stored_bytes,
                unix_ms,
                generation,
                restart: false,
            })
        }
        Err(e) => {
            upload.abort().await;
            Err(e)
        }
    }
}

async fn stream_into(
    channel: tonic::transport::Channel,
    upload: &mut super::s3::Multipart,
) -> anyhow::Result<(i64, u64, u64, String)> {
    let mut stream = MaintenanceClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .snapshot(SnapshotRequest {})
        .await?
        .into_inner();
    let mut scan = RevisionScan::default();
    let mut content = Sha256::new();
    let mut stored = Sha256::new();
    let mut encoder = zstd::stream::write::Encoder::new(Vec::with_capacity(PART * 2), ZSTD_LEVEL)?;
    let (mut bytes, mut stored_bytes) = (0u64, 0u64);
    // The last message is the SHA-256 of everything before it (and the one before it says
    // 0 bytes remain too), so each message is taken as content once the next one arrives.
    let mut held: Option<Vec<u8>> = None;
    while let Some(chunk) = stream.message().await.context("receiving the snapshot")? {
        bytes += chunk.blob.len() as u64;
        encoder.write_all(&chunk.blob)?;
        if let Some(prev) = held.replace(chunk.blob) {
            content.update(&prev);
            scan.feed(&prev)?;
        }
        if encoder.get_ref().len() >= PART {
            let part = std::mem::replace(encoder.get_mut(), Vec::with_capacity(PART * 2));
            stored.update(&part);
            stored_bytes += part.len() as u64;
            upload.part(part).await?;
        }
    }
    let Some(trailer) = held.filter(|t| t.len() == 32) else { bail!("the snapshot stream ended early") };
    if content.finalize().as_slice() != trailer.as_slice() {
        bail!("the snapshot's SHA-256 does not match its content");
    }
    let Some(revision) = scan.revision else { bail!("the snapshot holds no revision record") };
    let last = encoder.finish()?;
    stored.update(&last);
    stored_bytes += last.len() as u64;
    upload.part(last).await?;
    Ok((revision, bytes, stored_bytes, hex::encode(stored.finalize())))
}

/// Finds the revision record in a backend image as it streams by (format: `storage::image`:
/// an 8-byte magic, then `[u32 len][key][u32 len][value]` records until a length of u32::MAX).
#[derive(Default)]
struct RevisionScan {
    pending: Vec<u8>,
    past_magic: bool,
    ended: bool,
    revision: Option<i64>,
}

impl RevisionScan {
    fn feed(&mut self, data: &[u8]) -> anyhow::Result<()> {
        if self.ended {
            return Ok(()); // padding
        }
        self.pending.extend_from_slice(data);
        let mut at = 0;
        if !self.past_magic {
            if self.pending.len() < 8 {
                return Ok(());
            }
            at = 8;
            self.past_magic = true;
        }
        let word = |b: &[u8], i: usize| b.get(i..i + 4).map(|w| u32::from_be_bytes(w.try_into().unwrap()));
        while let Some(klen) = word(&self.pending, at) {
            if klen == u32::MAX {
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
                let v: [u8; 8] = self.pending[vstart..end].try_into().context("a malformed revision record")?;
                self.revision = Some(u64::from_be_bytes(v) as i64);
            }
            at = end;
        }
        self.pending.drain(..at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::backend::Backend;

    #[test]
    fn finds_the_revision_whatever_the_chunking() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::open(&dir.path().join("db")).unwrap();
        let mut batch = sled::Batch::default();
        batch.insert(b"a-large-record".as_slice(), vec![7u8; 10_000]);
        crate::storage::backend::put_u64(&mut batch, META_REVISION, 4242);
        batch.insert(b"z".as_slice(), b"after".as_slice());
        backend.apply(batch).unwrap();
        let image = dir.path().join("x.image");
        crate::storage::image::write(&backend, &image).unwrap();
        let bytes = std::fs::read(&image).unwrap();
        for chunk in [1, 3, 4096, bytes.len()] {
            let mut scan = RevisionScan::default();
            for piece in bytes.chunks(chunk) {
                scan.feed(piece).unwrap();
            }
            assert_eq!(scan.revision, Some(4242), "chunks of {chunk}");
            assert!(scan.ended, "chunks of {chunk}");
        }
    }
}
