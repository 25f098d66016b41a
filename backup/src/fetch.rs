//! What a restore takes from a backup: the catalog, the plan for a target (which full
//! snapshot, which deltas), the full snapshot downloaded and checked, and each delta decoded
//! and checked. A missing or corrupted object is an error naming it.

use crate::catalog::{Catalog, DeltaName, Plan, Target, CATALOG, DELTA_DIR};
use crate::s3::Store;
use crate::BackupError;
use cairn_api::proto::cairnpb::DeltaRecord;
use sha2::{Digest, Sha256};
use std::path::Path;

pub async fn catalog(store: &Store) -> Result<Catalog, BackupError> {
    let Some((bytes, _)) = store.get(CATALOG).await? else {
        return Err(BackupError::Object(format!("{}: no backup there", store.url(CATALOG))));
    };
    serde_json::from_slice(&bytes).map_err(|e| BackupError::Object(format!("{}: unreadable: {e}", store.url(CATALOG))))
}

/// Reads the catalog and decides what to download.
pub async fn plan(store: &Store, target: Target) -> Result<Plan, BackupError> {
    let catalog = catalog(store).await?;
    let deltas: Vec<DeltaName> = store.list(DELTA_DIR).await?.iter().filter_map(|k| DeltaName::parse(k)).collect();
    catalog.plan(&deltas, target).map_err(|e| BackupError::Object(format!("{}: {e}", store.url(""))))
}

/// Downloads the plan's full snapshot to `dest`: checks the stored object's SHA-256 against
/// the catalog's, unpacks it and checks the snapshot's own SHA-256. `downloaded` and
/// `verified` hear of the bytes as they go.
pub async fn full_snapshot(
    store: &Store,
    plan: &Plan,
    dest: &Path,
    mut downloaded: impl FnMut(u64),
    verified: impl FnMut(u64),
) -> Result<(), BackupError> {
    let key = &plan.full.key;
    let packed = dest.with_extension("zst");
    let mut file = tokio::fs::File::create(&packed).await.map_err(BackupError::io(packed.display().to_string()))?;
    let mut sum = Sha256::new();
    store
        .download(key, &mut file, |piece| {
            sum.update(piece);
            downloaded(piece.len() as u64);
        })
        .await?;
    file.sync_all().await.map_err(BackupError::io(packed.display().to_string()))?;
    drop(file);
    let got = hex::encode(sum.finalize());
    if got != plan.full.sha256 {
        return Err(BackupError::Object(format!(
            "{}: checksum mismatch (the object is corrupted): sha256 {got}, the catalog has {}",
            store.url(key),
            plan.full.sha256
        )));
    }
    let url = store.url(key);
    let packed = packed.clone();
    let dest = dest.to_path_buf();
    tokio::task::block_in_place(move || -> Result<(), BackupError> {
        let unpacking = BackupError::io(format!("{url}: unpacking"));
        let mut input = std::fs::File::open(&packed).map_err(BackupError::io(packed.display().to_string()))?;
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(&dest).map_err(BackupError::io(dest.display().to_string()))?);
        zstd::stream::copy_decode(&mut input, &mut out)
            .and_then(|()| std::io::Write::flush(&mut out))
            .map_err(unpacking)?;
        std::fs::remove_file(&packed).map_err(BackupError::io(packed.display().to_string()))?;
        cairn_api::snapshot::verify(&dest, false, verified).map_err(|e| BackupError::Object(format!("{url}: {e}")))
    })
}

/// Downloads and decodes one delta of a plan; returns it with its stored size.
pub async fn delta(store: &Store, name: &DeltaName) -> Result<(DeltaRecord, u64), BackupError> {
    let Some((bytes, _)) = store.get(&name.key()).await? else {
        return Err(BackupError::Object(format!("{}: missing (the backup has a hole there)", store.url(&name.key()))));
    };
    let rec = crate::delta::decode(name, &bytes)
        .map_err(|e| BackupError::Object(format!("{}: {e}", store.url(&name.key()))))?;
    Ok((rec, bytes.len() as u64))
}
