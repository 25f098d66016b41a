//! Opening a member's data dir: a new member (bootstrap flags used) or a restart (they are
//! ignored, as in etcd). Layout: see `storage::datadir`. Nothing is written to the data dir
//! before `datadir::inspect` has found it empty or Cairn's own.

use super::ids;
use crate::config::Config;
use crate::membership::Membership;
use crate::proto::cairnpb::MemberRecord;
use crate::raft::{bootstrap_state, restore_storage};
use crate::storage::backend::Backend;
use crate::storage::datadir::{self, Found};
use crate::storage::mvcc::MvccStore;
use crate::storage::wal::{Identity, Wal};
use anyhow::{bail, Context};
use raft::storage::MemStorage;
use std::sync::Arc;

pub struct Opened {
    pub identity: Identity,
    pub membership: Arc<Membership>,
    pub snap_dir: std::path::PathBuf,
    pub wal: Wal,
    pub storage: MemStorage,
    pub backend: Arc<Backend>,
    pub mvcc: Arc<MvccStore>,
    pub applied: u64,
}

pub fn wal_dir(cfg: &Config) -> std::path::PathBuf {
    cfg.data_dir.join("member").join("wal")
}

/// Opens the data dir `found` describes (`datadir::inspect`; a foreign one never gets
/// here). A new member of a running cluster brings what the cluster told it (`joining`: its
/// id, and the members).
pub fn open(cfg: &Config, found: Found, joining: Option<Joining>) -> anyhow::Result<Opened> {
    let member_dir = cfg.data_dir.join("member");
    let wal_dir = wal_dir(cfg);
    let snap_dir = member_dir.join("snap");
    if cfg.data_dir.exists() {
        crate::storage::private::restrict_dir(&cfg.data_dir)
            .with_context(|| format!("checking {}", cfg.data_dir.display()))?;
    }
    if found != Found::Cairn {
        datadir::claim(&cfg.data_dir)?;
    }
    let founders = if found != Found::Empty {
        tracing::info!(data_dir = %cfg.data_dir.display(), "restarting member from its data dir; bootstrap flags are ignored");
        None
    } else if let Some(j) = joining {
        Some(join(j, &wal_dir)?)
    } else {
        Some(create(cfg, &wal_dir)?)
    };
    crate::storage::private::create_dir_all(&snap_dir)
        .with_context(|| format!("cannot create {}", snap_dir.display()))?;
    // Read first, changing nothing: a torn write at the log's end is cut (by `Wal::open`,
    // below) only once the backend shows it was never applied.
    let replayed = Wal::read(&wal_dir).with_context(|| format!("reading {}", wal_dir.display()))?;
    let backend = Arc::new(Backend::open(&member_dir.join("db")).context("opening the backend")?);
    if let Some(members) = founders {
        crate::apply::write_initial_members(&backend, &members)?;
    }
    let mut applied = backend.applied_index()?;
    let image = crate::storage::image::path(&snap_dir, replayed.snapshot.index);
    if applied < replayed.snapshot.index && image.exists() {
        tracing::info!(index = replayed.snapshot.index, "loading the snapshot a crash interrupted");
        // Before the applier exists: finishing what it had started, nothing else writes yet.
        crate::storage::image::load(&backend, &image).context("loading a snapshot image")?;
        applied = backend.applied_index()?;
    }
    if replayed.snapshot.index > 1 && applied < replayed.snapshot.index {
        bail!(
            "backend is at raft index {applied} but the wal starts after {}: the data dir is damaged",
            replayed.snapshot.index
        );
    }
    let wal_last = replayed.entries.last().map_or(replayed.snapshot.index, |e| e.index);
    if applied > wal_last {
        bail!(
            "the backend has applied raft entries up to index {applied}, but the WAL in {} ends at \
             index {wal_last}: entries this member applied are missing from its log (the WAL was \
             damaged, truncated or replaced). Refusing to start; the WAL was left as it is. Remove \
             the member from the cluster (etcdctl member remove) and add it back with an empty data \
             dir, or restore the data dir from a snapshot",
            wal_dir.display()
        );
    }
    let (wal, replayed) = Wal::open(&wal_dir).with_context(|| format!("opening {}", wal_dir.display()))?;
    let mvcc = Arc::new(MvccStore::open(backend.clone()).context("loading the key index")?);
    let membership = Arc::new(Membership::load(&backend, replayed.identity.member_id)?);
    let storage = restore_storage(&replayed, applied, &membership)?;
    Ok(Opened { identity: replayed.identity, membership, snap_dir, wal, storage, backend, mvcc, applied })
}

/// What a member joining a running cluster learned from it.
pub struct Joining {
    pub identity: Identity,
    pub members: Vec<MemberRecord>,
}

/// A joining member's WAL: its ids, and no raft state at all. Raft's configuration comes
/// with the first snapshot the leader sends; the member list written now only lets the
/// transport reach the others until then.
fn join(j: Joining, wal_dir: &std::path::Path) -> anyhow::Result<Vec<MemberRecord>> {
    Wal::create(wal_dir, j.identity, Default::default(), Default::default())?;
    tracing::info!(member_id = %format!("{:x}", j.identity.member_id), cluster_id = %format!("{:x}", j.identity.cluster_id),
        "joining a running cluster");
    Ok(j.members)
}

/// A new member's WAL; returns the founding members, to be written to the new backend.
fn create(cfg: &Config, wal_dir: &std::path::Path) -> anyhow::Result<Vec<MemberRecord>> {
    let records = crate::membership::founders(&cfg.initial_cluster, &cfg.initial_cluster_token);
    let members: Vec<u64> = records.iter().map(|r| r.id).collect();
    let identity = Identity {
        member_id: ids::member_id(&cfg.initial_advertise_peer_urls, &cfg.initial_cluster_token),
        cluster_id: ids::cluster_id(&members),
    };
    let (snapshot, hard_state) = bootstrap_state(members);
    Wal::create(wal_dir, identity, snapshot, hard_state)?;
    tracing::info!(member_id = %format!("{:x}", identity.member_id), cluster_id = %format!("{:x}", identity.cluster_id),
        "bootstrapped a new cluster");
    Ok(records)
}
