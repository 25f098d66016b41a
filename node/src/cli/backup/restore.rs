//! `cairn restore`: a member's data dir of a NEW cluster from a backup in S3 — the full
//! snapshot a target needs, then its deltas replayed offline at their original revisions (see
//! `replay`), so every key keeps its create and mod revision and version, and clients that
//! remember revisions (kube-apiserver's resourceVersions) find them still valid.
//!
//! Everything is downloaded and checked before the data dir is made: a missing or corrupted
//! object stops the restore with its name, and nothing is left behind.

use crate::cli::snapshot::progress::Progress;
use crate::cli::snapshot::restore::{build, bumped, describe, load, MemberArgs, RESTORED_BY};
use anyhow::{bail, Context};
use cairn_backup::catalog::{Catalog, Plan, Target};
use cairn_backup::credentials::Credentials;
use cairn_backup::s3::{S3Config, Store};
use cairn_backup::time::format_ms;
use cairn_node::storage::mvcc::MvccStore;
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
    #[arg(long, conflicts_with = "replace")]
    pub if_missing: bool,
    /// Replace the data dir if it exists (an in-place restore of a stopped member): the old
    /// one is kept beside it as <data-dir>.replaced until the next replace.
    #[arg(long, requires = "restore_id")]
    pub replace: bool,
    /// Names this restore in the data dir it makes: run again with the same id (an init
    /// container restarted), a restore that completed does nothing.
    #[arg(long)]
    pub restore_id: Option<String>,
    #[command(flatten)]
    pub member: MemberArgs,
}

impl RestoreArgs {
    /// The credentials are the AWS SDK's default chain: AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE with
    /// AWS_ROLE_ARN, as EKS's IRSA sets), the shared files, container or instance metadata.
    fn s3(&self) -> S3Config {
        S3Config {
            bucket: self.s3_bucket.clone(),
            prefix: self.s3_prefix.clone(),
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            force_path_style: self.s3_force_path_style,
            credentials: Credentials::DefaultChain,
        }
    }

    fn target(&self) -> anyhow::Result<Target> {
        Ok(match (self.revision, &self.time) {
            (Some(r), _) if r <= 0 => bail!("--revision must be positive"),
            (Some(r), _) => Target::Revision(r),
            (None, Some(t)) => Target::Time(cairn_backup::time::parse_time(t)?),
            (None, None) => Target::Latest,
        })
    }
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
        let store = Store::new(&a.s3());
        print!("{}", describe_backup(&cairn_backup::fetch::catalog(&store).await?));
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
    if a.replace && !set_aside(&a.member.data_dir(), a.restore_id.as_deref().unwrap_or_default())? {
        return Ok(());
    }
    let mut member = a.member.check()?;
    member.restore_id = a.restore_id.clone();
    let store = Store::new(&a.s3());
    let done = restore(&store, target, &member).await?;
    eprintln!(
        "restored revision {}{} (full snapshot at revision {} and {} deltas, {} changes replayed) into {}: {}",
        done.revision,
        bumped(&member),
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

/// For `--replace`: whether to restore. A data dir this restore made already stays (an init
/// container run again); any other is moved aside to `<data-dir>.replaced` (the previous
/// one there removed), to be looked at or removed by hand.
fn set_aside(dir: &Path, id: &str) -> anyhow::Result<bool> {
    let made_by = std::fs::read_to_string(dir.join(RESTORED_BY)).unwrap_or_default();
    if made_by.trim_end() == id {
        eprintln!("data dir {} was restored by {id} already: nothing to do", dir.display());
        return Ok(false);
    }
    if dir.exists() {
        let aside = PathBuf::from(format!("{}.replaced", dir.display()));
        match std::fs::remove_dir_all(&aside) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("remove {}", aside.display()))
            }
            _ => {}
        }
        std::fs::rename(dir, &aside).with_context(|| format!("move {} to {}", dir.display(), aside.display()))?;
        eprintln!("the data dir it replaces is kept as {}", aside.display());
    }
    Ok(true)
}

/// What `--list` prints: the targets a restore can be given.
pub fn describe_backup(c: &Catalog) -> String {
    let mut out = String::from("full snapshots (revision, taken at, stored):\n");
    for f in &c.fulls {
        let size = crate::cli::snapshot::human_bytes(f.stored_bytes);
        let hole = f.restart && Some(f) != c.fulls.first();
        let note = if hole { "  (the deltas before it stop short of it: a hole)" } else { "" };
        out += &format!("  {:>12}  {}  {size}{note}\n", f.revision, format_ms(f.unix_ms));
    }
    out += &format!("backed up through revision {} (at {})\n", c.head, format_ms(c.head_unix_ms));
    out
}

pub async fn restore(
    store: &Store,
    target: Target,
    member: &crate::cli::snapshot::restore::NewMember,
) -> anyhow::Result<Restored> {
    let plan = cairn_backup::fetch::plan(store, target).await?;
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
    member: &crate::cli::snapshot::restore::NewMember,
    work: &Path,
) -> anyhow::Result<Restored> {
    let snapshot = work.join("full.snapshot");
    let mut downloading = Progress::new("downloading the full snapshot", Some(plan.full.stored_bytes));
    let mut verifying = Progress::new("verifying", None);
    cairn_backup::fetch::full_snapshot(store, plan, &snapshot, |n| downloading.add(n), |n| verifying.add(n)).await?;
    downloading.finish();
    verifying.finish();
    let mut records = Vec::with_capacity(plan.deltas.len());
    let mut progress = Progress::new("downloading deltas", None);
    for name in &plan.deltas {
        let (rec, bytes) = cairn_backup::fetch::delta(store, name).await?;
        progress.add(bytes);
        records.push((name.clone(), rec));
    }
    progress.finish();
    let mut done =
        Restored { revision: 0, full_revision: plan.full.revision, deltas: 0, changes: 0, dropped_leases: 0 };
    done.revision = tokio::task::block_in_place(|| {
        build(member, |writer| {
            load(writer, &snapshot)?;
            let mvcc = MvccStore::open(writer.backend().clone())?;
            let mut progress = Progress::new("replaying deltas", Some(records.len() as u64));
            let mut reached = false;
            for (name, rec) in &records {
                let r = super::replay::replay(&mvcc, writer, name, rec, target)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replace_sets_the_old_dir_aside_once_and_leaves_its_own_restore_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let aside = tmp.path().join("data.replaced");
        assert!(set_aside(&dir, "r1").unwrap(), "nothing there: restore");
        std::fs::create_dir_all(&aside).unwrap();
        std::fs::write(aside.join("older"), "x").unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("member-data"), "old").unwrap();
        assert!(set_aside(&dir, "r1").unwrap());
        assert!(!dir.exists(), "moved aside");
        assert_eq!(std::fs::read_to_string(aside.join("member-data")).unwrap(), "old");
        assert!(!aside.join("older").exists(), "the previous one set aside is gone");
        // What restore r1 made stays, run again; another restore replaces it.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(RESTORED_BY), "r1\n").unwrap();
        assert!(!set_aside(&dir, "r1").unwrap());
        assert!(dir.join(RESTORED_BY).exists());
        assert!(set_aside(&dir, "r2").unwrap());
        assert_eq!(std::fs::read_to_string(aside.join(RESTORED_BY)).unwrap(), "r1\n");
    }
}
