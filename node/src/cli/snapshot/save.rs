//! `cairn snapshot save FILE`: what `etcdctl snapshot save` does — Maintenance.Snapshot from
//! one endpoint into FILE.part, synced, its SHA-256 checked, renamed to FILE — with progress
//! (bytes, share, rate) on a terminal, which etcdctl 3.4 does not show.

use super::progress::Progress;
use crate::cli::connect::ClientFlags;
use anyhow::{bail, Context};
use cairn_api::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cairn_api::proto::etcdserverpb::SnapshotRequest;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    /// Where to write the snapshot.
    pub file: PathBuf,
    /// The one member to ask (host:port or URL).
    #[arg(long, default_value = "127.0.0.1:2379")]
    pub endpoints: String,
    #[command(flatten)]
    pub client: ClientFlags,
}

pub async fn run(a: &SaveArgs) -> anyhow::Result<()> {
    let endpoints: Vec<&str> = a.endpoints.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
    if endpoints.len() != 1 {
        // etcdctl's words.
        bail!("snapshot must be requested to one selected node, not multiple [{}]", endpoints.join(" "));
    }
    let part = PathBuf::from(format!("{}.part", a.file.display()));
    let result = save(&a.client, endpoints[0], &part).await;
    let result = result.and_then(|()| {
        super::verify(&part, false)?;
        std::fs::rename(&part, &a.file).with_context(|| format!("rename to {}", a.file.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result?;
    println!("Snapshot saved at {}", a.file.display());
    Ok(())
}

async fn save(client: &ClientFlags, endpoint: &str, part: &Path) -> anyhow::Result<()> {
    let mut maintenance = MaintenanceClient::new(client.connect(endpoint).await?);
    let mut stream = maintenance.snapshot(SnapshotRequest {}).await?.into_inner();
    // Only its owner may read it: a snapshot holds every secret the cluster stores (etcdctl's mode too).
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(part)
        .await
        .with_context(|| format!("create {}", part.display()))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut progress = Progress::new("saving", None);
    let mut first = true;
    while let Some(chunk) = stream.message().await? {
        if first {
            // What follows this chunk, and the SHA-256 after all of it.
            progress.set_total(chunk.blob.len() as u64 + chunk.remaining_bytes + super::SHA_LEN);
            first = false;
        }
        out.write_all(&chunk.blob).await?;
        progress.add(chunk.blob.len() as u64);
    }
    progress.finish();
    out.flush().await?;
    out.into_inner().sync_all().await?;
    Ok(())
}
