//! `cairn snapshot restore FILE`: a data dir for one member of a NEW cluster holding the
//! snapshot's data, as `etcdutl snapshot restore` makes one: same keys, values and revisions
//! (and leases), the members given by --initial-cluster, a new cluster id, no raft history.
//! Each member of the new cluster restores the same file with its own --name and
//! --initial-advertise-peer-urls, then starts from its data dir.

use crate::apply::write_initial_members;
use crate::config::{parse_initial_cluster, split_urls};
use crate::membership::PREFIX_MEMBER;
use crate::proto::cairnpb::MemberRecord;
use crate::raft::bootstrap_state;
use crate::server::ids;
use crate::storage::backend::{Backend, META_APPLIED_INDEX, META_REVISION};
use crate::storage::wal::{Identity, Wal};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The snapshot file, as `etcdctl snapshot save` wrote it.
    pub file: PathBuf,
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
    /// Ignore the snapshot's SHA-256 (for a file copied from a data dir).
    #[arg(long)]
    pub skip_hash_check: bool,
}

pub fn run(a: &RestoreArgs) -> anyhow::Result<()> {
    super::verify(&a.file, a.skip_hash_check)?;
    crate::storage::image::check(&a.file).with_context(|| format!("{}: not a Cairn snapshot", a.file.display()))?;
    let data_dir = a.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.cairn", a.name)));
    if data_dir.exists() {
        bail!("data-dir {:?} exists", data_dir.display().to_string());
    }
    let mine = split_urls("initial-advertise-peer-urls", &a.initial_advertise_peer_urls).map_err(anyhow::Error::msg)?;
    let default_cluster = format!("{}={}", a.name, a.initial_advertise_peer_urls);
    let cluster =
        parse_initial_cluster(a.initial_cluster.as_deref().unwrap_or(&default_cluster)).map_err(anyhow::Error::msg)?;
    if !cluster.iter().any(|(n, urls)| *n == a.name && crate::membership::same_urls(urls, &mine)) {
        bail!("couldn't find local name {:?} with peer URLs {:?} in the initial cluster configuration", a.name, mine);
    }
    let records = crate::membership::founders(&cluster, &a.initial_cluster_token);
    let result = create(&a.file, &data_dir, &records, ids::member_id(&mine, &a.initial_cluster_token));
    if result.is_err() {
        // Nothing half-made stays behind: the same command can be run again.
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    result
}

fn create(file: &Path, data_dir: &Path, records: &[MemberRecord], me: u64) -> anyhow::Result<()> {
    let member_dir = data_dir.join("member");
    let backend = Backend::open(&member_dir.join("db")).context("creating the backend")?;
    let size = std::fs::metadata(file)?.len().saturating_sub(super::SHA_LEN);
    let mut progress = super::progress::Progress::new("restoring", Some(size));
    crate::storage::image::load_reporting(&backend, file, |n| progress.add(n)).context("loading the snapshot")?;
    progress.finish();
    // A new cluster: its own members, and no raft history (applied index 0, as a new member's).
    let mut batch = sled::Batch::default();
    for item in backend.tree().scan_prefix([PREFIX_MEMBER]) {
        batch.remove(item?.0);
    }
    batch.remove(META_APPLIED_INDEX);
    backend.apply(batch)?;
    write_initial_members(&backend, records)?;
    let revision = backend.get_u64(META_REVISION)?.unwrap_or(1);
    let voters: Vec<u64> = records.iter().map(|r| r.id).collect();
    let identity = Identity { member_id: me, cluster_id: ids::cluster_id(&voters) };
    let (snapshot, hard_state) = bootstrap_state(voters);
    let wal_dir = member_dir.join("wal");
    std::fs::create_dir_all(&wal_dir)?;
    std::fs::create_dir_all(member_dir.join("snap"))?;
    Wal::create(&wal_dir, identity, snapshot, hard_state)?;
    eprintln!(
        "restored snapshot {} (revision {revision}) into {}: member {:x} of new cluster {:x}",
        file.display(),
        data_dir.display(),
        identity.member_id,
        identity.cluster_id
    );
    Ok(())
}
