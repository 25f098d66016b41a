//! `cairn snapshot restore FILE`: a data dir for one member of a NEW cluster holding the
//! snapshot's data, as `etcdutl snapshot restore` makes one: same keys, values and revisions
//! (and leases), the members given by --initial-cluster, a new cluster id, no raft history.
//! Each member of the new cluster restores the same file with its own --name and
//! --initial-advertise-peer-urls, then starts from its data dir.

use anyhow::{bail, Context};
use cairn_api::proto::cairnpb::MemberRecord;
use cairn_node::apply::write_initial_members;
use cairn_node::config::{parse_initial_cluster, split_urls};
use cairn_node::membership::ids;
use cairn_node::membership::PREFIX_MEMBER;
use cairn_node::storage::backend::{Backend, BackendWriter, META_APPLIED_INDEX, META_COMPACT_REVISION, META_REVISION};
use cairn_node::storage::wal::Identity;
use std::path::{Path, PathBuf};

/// The new member and cluster a restore makes a data dir for (etcdutl's flags).
#[derive(clap::Args, Debug, Clone)]
pub struct MemberArgs {
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Path to the data directory to create [default: <name>.cairn].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The new cluster's members [default: <name>=<initial advertise peer urls>].
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// The new cluster's token (member and cluster ids derive from it).
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// This member's peer URLs.
    #[arg(long, default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
    /// Add this many revisions to the restored revision (etcd's flag): clients that saw
    /// revisions past the snapshot's (kube-apiserver's watch cache, resourceVersions) never see
    /// a revision again with other data behind it.
    #[arg(long, default_value_t = 0)]
    pub bump_revision: u64,
    /// Compact at the revision the restore ends at (required with --bump-revision): a watch
    /// from an older revision is told it was compacted instead of waiting for revisions that
    /// were skipped.
    #[arg(long)]
    pub mark_compacted: bool,
}

/// A checked `MemberArgs`: where to write, and what membership.
pub struct NewMember {
    pub data_dir: PathBuf,
    pub records: Vec<MemberRecord>,
    pub id: u64,
    pub bump_revision: u64,
    pub mark_compacted: bool,
    /// Written into the data dir (`RESTORED_BY`) with the rest, so that a restore that ran
    /// to the end is known by its id.
    pub restore_id: Option<String>,
}

/// The file in a restored data dir naming the restore that made it (`cairn restore
/// --restore-id`).
pub const RESTORED_BY: &str = "restored-by";

impl MemberArgs {
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.cairn", self.name)))
    }

    pub fn check(&self) -> anyhow::Result<NewMember> {
        let data_dir = self.data_dir();
        if self.bump_revision > 0 && !self.mark_compacted {
            bail!("--mark-compacted required if --bump-revision > 0");
        }
        if data_dir.exists() {
            bail!("data-dir {:?} exists", data_dir.display().to_string());
        }
        let mine =
            split_urls("initial-advertise-peer-urls", &self.initial_advertise_peer_urls).map_err(anyhow::Error::msg)?;
        let default_cluster = format!("{}={}", self.name, self.initial_advertise_peer_urls);
        let cluster = parse_initial_cluster(self.initial_cluster.as_deref().unwrap_or(&default_cluster))
            .map_err(anyhow::Error::msg)?;
        if !cluster.iter().any(|(n, urls)| *n == self.name && cairn_node::membership::same_urls(urls, &mine)) {
            bail!(
                "couldn't find local name {:?} with peer URLs {:?} in the initial cluster configuration",
                self.name,
                mine
            );
        }
        let records = cairn_node::membership::founders(&cluster, &self.initial_cluster_token);
        Ok(NewMember {
            data_dir,
            records,
            id: ids::member_id(&mine, &self.initial_cluster_token),
            bump_revision: self.bump_revision,
            mark_compacted: self.mark_compacted,
            restore_id: None,
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The snapshot file, as `etcdctl snapshot save` wrote it.
    pub file: PathBuf,
    #[command(flatten)]
    pub member: MemberArgs,
    /// Ignore the snapshot's SHA-256 (for a file copied from a data dir).
    #[arg(long)]
    pub skip_hash_check: bool,
}

pub fn run(a: &RestoreArgs) -> anyhow::Result<()> {
    super::verify(&a.file, a.skip_hash_check)?;
    cairn_node::storage::image::check(&a.file)
        .with_context(|| format!("{}: not a Cairn snapshot", a.file.display()))?;
    let member = a.member.check()?;
    let revision = build(&member, |backend| load(backend, &a.file))?;
    eprintln!(
        "restored snapshot {} (revision {revision}{}) into {}: {}",
        a.file.display(),
        bumped(&member),
        member.data_dir.display(),
        describe(&member)
    );
    Ok(())
}

/// "member <id> of new cluster <id>", as the restore commands end.
pub fn describe(m: &NewMember) -> String {
    let voters: Vec<u64> = m.records.iter().map(|r| r.id).collect();
    format!("member {:x} of new cluster {:x}", m.id, ids::cluster_id(&voters))
}

/// ", bumped by N and compacted there" when the restore bumps the revision.
pub fn bumped(m: &NewMember) -> String {
    match m.bump_revision {
        0 => String::new(),
        n => format!(", bumped by {n} and compacted there"),
    }
}

/// Loads a snapshot file into an empty backend, with progress.
pub fn load(writer: &BackendWriter, file: &Path) -> anyhow::Result<()> {
    let size = std::fs::metadata(file)?.len().saturating_sub(super::SHA_LEN);
    let mut progress = super::progress::Progress::new("restoring", Some(size));
    cairn_node::storage::image::load_reporting(writer, file, |n| progress.add(n)).context("loading the snapshot")?;
    progress.finish();
    Ok(())
}

/// Makes the member's data dir: `fill` puts the data in its backend, then the new membership,
/// a new cluster id and no raft history replace the source's, and the revision is bumped if
/// asked. Returns the revision the data was restored at (before any bump). It is
/// made under another name and renamed when complete, so a data dir under its own name is
/// never half-made, even after a SIGKILL; and on failure nothing stays behind, so the same
/// command can be run again.
pub fn build(m: &NewMember, fill: impl FnOnce(&BackendWriter) -> anyhow::Result<()>) -> anyhow::Result<i64> {
    let partial = PathBuf::from(format!("{}.restoring", m.data_dir.display()));
    let _ = std::fs::remove_dir_all(&partial);
    let result = create(m, &partial, fill).and_then(|rev| {
        std::fs::rename(&partial, &m.data_dir).with_context(|| format!("rename to {}", m.data_dir.display()))?;
        Ok(rev)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    result
}

fn create(m: &NewMember, dir: &Path, fill: impl FnOnce(&BackendWriter) -> anyhow::Result<()>) -> anyhow::Result<i64> {
    let member_dir = dir.join("member");
    cairn_node::storage::datadir::claim(dir)?;
    let (backend, writer) = Backend::open(&member_dir.join("db")).context("creating the backend")?;
    fill(&writer)?;
    // A new cluster: its own members, and no raft history (applied index 0, as a new member's).
    let mut batch = sled::Batch::default();
    for item in backend.scan_prefix([PREFIX_MEMBER]) {
        batch.remove(item?.0);
    }
    batch.remove(META_APPLIED_INDEX);
    writer.apply(batch)?;
    write_initial_members(&writer, &m.records)?;
    let revision = backend.get_u64(META_REVISION)?.unwrap_or(1);
    if m.bump_revision > 0 {
        // The compaction itself happens when the member opens its store: everything older
        // than the new revision except each key's latest version becomes garbage then.
        let bumped = revision.saturating_add(m.bump_revision);
        let mut batch = sled::Batch::default();
        cairn_node::storage::backend::put_u64(&mut batch, META_REVISION, bumped);
        if m.mark_compacted {
            cairn_node::storage::backend::put_u64(&mut batch, META_COMPACT_REVISION, bumped);
        }
        writer.apply(batch)?;
    }
    let voters: Vec<u64> = m.records.iter().map(|r| r.id).collect();
    let identity = Identity { member_id: m.id, cluster_id: ids::cluster_id(&voters) };
    cairn_node::storage::private::create_dir_all(&member_dir.join("snap"))?;
    cairn_node::raft::create_log(&member_dir.join("wal"), identity, voters)?;
    writer.flush()?;
    drop((backend, writer));
    if let Some(id) = &m.restore_id {
        let file = dir.join(RESTORED_BY);
        std::fs::write(&file, format!("{id}\n")).with_context(|| format!("write {}", file.display()))?;
        std::fs::File::open(&file)?.sync_all()?;
    }
    Ok(revision as i64)
}
