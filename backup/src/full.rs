//! A full backup: Maintenance.Snapshot from one member, compressed as it streams and uploaded
//! in parts, so no snapshot is ever held whole in memory or written to local disk. Its
//! revision is read from the snapshot itself (the backend image's revision record) as it
//! passes, not asked of the member, which may have moved on by then.

use crate::catalog::Full;
use crate::s3::Store;
use crate::BackupError;
use cairn_api::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cairn_api::proto::etcdserverpb::SnapshotRequest;
use cairn_api::snapshot::image::RevisionScan;
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
) -> Result<Full, BackupError> {
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
    upload: &mut crate::s3::Multipart,
) -> Result<(i64, u64, u64, String), BackupError> {
    let receiving = |e: tonic::Status| BackupError::Snapshot(format!("receiving the snapshot: {e}"));
    let compressing = BackupError::io("compressing the snapshot");
    let mut stream = MaintenanceClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .snapshot(SnapshotRequest {})
        .await
        .map_err(receiving)?
        .into_inner();
    let mut scan = RevisionScan::default();
    let mut content = Sha256::new();
    let mut stored = Sha256::new();
    let mut encoder =
        zstd::stream::write::Encoder::new(Vec::with_capacity(PART * 2), ZSTD_LEVEL).map_err(BackupError::io("zstd"))?;
    let (mut bytes, mut stored_bytes) = (0u64, 0u64);
    // The last message is the SHA-256 of everything before it (and the one before it says
    // 0 bytes remain too), so each message is taken as content once the next one arrives.
    let mut held: Option<Vec<u8>> = None;
    while let Some(chunk) = stream.message().await.map_err(receiving)? {
        bytes += chunk.blob.len() as u64;
        encoder.write_all(&chunk.blob).map_err(BackupError::io("compressing the snapshot"))?;
        if let Some(prev) = held.replace(chunk.blob) {
            content.update(&prev);
            scan.feed(&prev).map_err(|e| BackupError::Snapshot(e.to_string()))?;
        }
        if encoder.get_ref().len() >= PART {
            let part = std::mem::replace(encoder.get_mut(), Vec::with_capacity(PART * 2));
            stored.update(&part);
            stored_bytes += part.len() as u64;
            upload.part(part).await?;
        }
    }
    let bad = |why: &str| BackupError::Snapshot(why.to_string());
    let Some(trailer) = held.filter(|t| t.len() == 32) else { return Err(bad("the snapshot stream ended early")) };
    if content.finalize().as_slice() != trailer.as_slice() {
        return Err(bad("the snapshot's SHA-256 does not match its content"));
    }
    let Some(revision) = scan.revision else { return Err(bad("the snapshot holds no revision record")) };
    let last = encoder.finish().map_err(compressing)?;
    stored.update(&last);
    stored_bytes += last.len() as u64;
    upload.part(last).await?;
    Ok((revision, bytes, stored_bytes, hex::encode(stored.finalize())))
}
