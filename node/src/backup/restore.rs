//! `cairn restore`: a member's data dir of a NEW cluster from a backup in S3 — the full
//! snapshot a target needs, then its deltas replayed offline at their original revisions (see
//! `replay`), so every key keeps its create and mod revision and version, and clients that
//! remember revisions (kube-apiserver's resourceVersions) find them still valid.
//!
//! Everything is downloaded and checked before the data dir is made: a missing or corrupted
//! object stops the restore with its name, and nothing is left behind.

use super::catalog::{Catalog, DeltaName, Plan, Target, CATALOG, DELTA_DIR};
use super::s3::{S3Config, Store};
use crate::snapshot::progress::Progress;
use crate::snapshot::restore::{build, describe, load, MemberArgs};
use crate::storage::mvcc::MvccStore;
use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The bucket holding the backup.
    #[arg(long)]
    pub s3_bucket: String,
    /// The backup's prefix in the bucket.
    #[arg(long, default_value = "")]
    pub s3_prefix: String,
    /// An S3-compatible store's URL (default: AWS).
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    #[arg(long)]
    pub s3_region: Option<String>,
    /// Address buckets as endpoint/bucket rather than bucket.endpoint.
    #[arg(long)]
    pub s3_force_path_style: bool,
    /// Restore up to this revision [default: the newest backed up].
    #[arg(long, conflicts_with = "time")]
    pub revision: Option<i64>,
    /// Restore what was written up to this time (RFC 3339, e.g. 2026-11-21T10:00:00Z).
    #[arg(long)]
    pub time: Option<String>,
    /// Show what the backup holds (its full snapshots and how far it reaches) and stop.
    #[arg(long)]
    pub list: bool,
    /// Do nothing if the data dir exists (an init container that runs again must not
    /// restore over a member that has run since).
    #[arg(long)]
    pub if_missing: bool,
    #[command(flatten)]
    pub member: MemberArgs,
}

impl RestoreArgs {
    fn s3(&self) -> anyhow::Result<S3Config> {
        let env = |name: &str| {
            std::env::var(name).with_context(|| {
                format!("{name} is not set (the S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
            })
        };
        Ok(S3Config {
            bucket: self.s3_bucket.clone(),
            prefix: self.s3_prefix.clone(),
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            force_path_style: self.s3_force_path_style,
            access_key_id: env("AWS_ACCESS_KEY_ID")?,
            secret_access_key: env("AWS_SECRET_ACCESS_KEY")?,
        })
    }

    fn target(&self) -> anyhow::Result<Target> {
        Ok(match (self.revision, &self.time) {
            (Some(r), _) if r <= 0 => bail!("--revision must be positive"),
            (Some(r), _) => Target::Revision(r),
            (None, Some(t)) => Target::Time(parse_time(t)?),
            (None, None) => Target::Latest,
        })
    }
}

pub fn parse_time(t: &str) -> anyhow::Result<i64> {
    let at = chrono::DateTime::parse_from_rfc3339(t).with_context(|| format!("--time {t:?}: not an RFC 3339 time"))?;
    Ok(at.timestamp_millis())
}

pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// What a restore found and did, for its last line.
pub struct Restored {
    pub revision: i64,
    pub full_revision: i64,
    pub deltas: usize,
    pub changes: u64,
    pub dropped_leases: u64,
}

pub async fn run(a: &RestoreArgs) -> anyhow::Result<()> {
    if a.list {
        let store = Store::new(&a.s3()?);
        print!("{}", describe_backup(&catalog(&store).await?));
        return Ok(());
    }
    let target = a.target()?;
    if a.if_missing {
        let dir = a.member.data_dir();
        if dir.exists() {
            eprintln!("data dir {} exists: nothing to restore", dir.display());
            return Ok(());
        }
    }
    let member = a.member.check()?;
    let store = Store::new(&a.s3()?);
    let done = restore(&store, target, &member).await?;
    eprintln!(
        "restored revision {} (full snapshot at revision {} and {} deltas, {} changes replayed) into {}: {}",
        done.revision,
        done.full_revision,
        done.deltas,
        done.changes,
        member.data_dir.display(),
        describe(&member)
    );
    if done.dropped_leases > 0 {
        eprintln!(
            "{} keys were attached to leases granted after the full snapshot: restored without a lease",
            done.dropped_leases
        );
    }
    Ok(())
}

async fn catalog(store: &Store) -> anyhow::Result<Catalog> {
    let Some((bytes, _)) = store.get(CATALOG).await? else {
        bail!("{}: no backup there", store.url(CATALOG));
    };
    serde_json::from_slice(&bytes).with_context(|| format!("{}: unreadable", store.url(CATALOG)))
}

/// What `--list` prints: the targets a restore can be given.
pub fn describe_backup(c: &Catalog) -> String {
    let mut out = String::from("full snapshots (revision, taken at, stored):\n");
    for f in &c.fulls {
        let size = crate::snapshot::human_bytes(f.stored_bytes);
        let hole = f.restart && Some(f) != c.fulls.first();
        let note = if hole { "  (the deltas before it stop short of it: a hole)" } else { "" };
        out += &format!("  {:>12}  {}  {size}{note}\n", f.revision, format_ms(f.unix_ms));
    }
    out += &format!("backed up through revision {} (at {})\n", c.head, format_ms(c.head_unix_ms));
    out
}

/// Reads the catalog and decides what to download.
pub async fn plan(store: &Store, target: Target) -> anyhow::Result<Plan> {
    let catalog = catalog(store).await?;
    let deltas: Vec<DeltaName> = store.list(DELTA_DIR).await?.iter().filter_map(|k| DeltaName::parse(k)).collect();
    catalog.plan(&deltas, target).with_context(|| store.url(""))
}

pub async fn restore(
    store: &Store,
    target: Target,
    member: &crate::snapshot::restore::NewMember,
) -> anyhow::Result<Restored> {
    let plan = plan(store, target).await?;
    let work = PathBuf::from(format!("{}.download", member.data_dir.display()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let result = fetch_and_build(store, &plan, target, member, &work).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn fetch_and_build(
    store: &Store,
    plan: &Plan,
    target: Target,
    member: &crate::snapshot::restore::NewMember,
    work: &Path,
) -> anyhow::Result<Restored> {
    let snapshot = work.join("full.snapshot");
    fetch_full(store, plan, &snapshot).await?;
    let mut records = Vec::with_capacity(plan.deltas.len());
    let mut progress = Progress::new("downloading deltas", None);
    for name in &plan.deltas {
        let Some((bytes, _)) = store.get(&name.key()).await? else {
            bail!("{}: missing (the backup has a hole there)", store.url(&name.key()));
        };
        progress.add(bytes.len() as u64);
        let rec = super::delta::decode(name, &bytes).with_context(|| store.url(&name.key()))?;
        records.push((name.clone(), rec));
    }
    progress.finish();
    let mut done =
        Restored { revision: 0, full_revision: plan.full.revision, deltas: 0, changes: 0, dropped_leases: 0 };
    done.revision = tokio::task::block_in_place(|| {
        build(member, |backend| {
            load(backend, &snapshot)?;
            let mvcc = MvccStore::open(backend.clone())?;
            let mut progress = Progress::new("replaying deltas", Some(records.len() as u64));
            let mut reached = false;
            for (name, rec) in &records {
                let r = super::replay::replay(&mvcc, name, rec, target)?;
                done.deltas += 1;
                done.changes += r.changes;
                done.dropped_leases += r.dropped_leases;
                progress.add(1);
                if r.reached {
                    reached = true;
                    break;
                }
            }
            progress.finish();
            if let Target::Time(ms) = target {
                if !reached && plan.reaches < plan.head {
                    bail!(
                        "time {} is not backed up: the deltas stop at revision {}, before it, and the backup goes on only from a later full snapshot (the source was compacted before they were backed up)",
                        format_ms(ms),
                        plan.reaches
                    );
                }
            }
            Ok(())
        })
    })?;
    Ok(done)
}

/// Downloads the full snapshot, checks the stored object's SHA-256 against the catalog's,
/// unpacks it and checks the snapshot's own SHA-256.
async fn fetch_full(store: &Store, plan: &Plan, dest: &Path) -> anyhow::Result<()> {
    let packed = dest.with_extension("zst");
    let mut file = tokio::fs::File::create(&packed).await?;
    let mut sum = Sha256::new();
    let mut progress = Progress::new("downloading the full snapshot", Some(plan.full.stored_bytes));
    store
        .download(&plan.full.key, &mut file, |piece| {
            sum.update(piece);
            progress.add(piece.len() as u64);
        })
        .await?;
    progress.finish();
    file.sync_all().await?;
    drop(file);
    let got = hex::encode(sum.finalize());
    if got != plan.full.sha256 {
        bail!(
            "{}: checksum mismatch (the object is corrupted): sha256 {got}, the catalog has {}",
            store.url(&plan.full.key),
            plan.full.sha256
        );
    }
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        let mut input = std::fs::File::open(&packed)?;
        let mut out = std::io::BufWriter::new(std::fs::File::create(dest)?);
        zstd::stream::copy_decode(&mut input, &mut out)
            .with_context(|| format!("{}: unpacking", store.url(&plan.full.key)))?;
        std::io::Write::flush(&mut out)?;
        std::fs::remove_file(&packed)?;
        crate::snapshot::verify(dest, false).with_context(|| store.url(&plan.full.key))
    })
}
