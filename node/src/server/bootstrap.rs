//! Opening a member's data dir: a new member (bootstrap flags used) or a restart (they are
//! ignored, as in etcd). Layout: `<data-dir>/member/wal` and `<data-dir>/member/db`.

use super::ids;
use crate::config::{ClusterState, Config};
use crate::raft::{bootstrap_state, restore_storage};
use crate::storage::backend::Backend;
use crate::storage::mvcc::MvccStore;
use crate::storage::wal::{Identity, Wal};
use anyhow::{bail, Context};
use raft::storage::MemStorage;
use std::sync::Arc;

pub struct Opened {
    pub identity: Identity,
    pub wal: Wal,
    pub storage: MemStorage,
    pub backend: Arc<Backend>,
    pub mvcc: Arc<MvccStore>,
    pub applied: u64,
}

pub fn open(cfg: &Config) -> anyhow::Result<Opened> {
    let member_dir = cfg.data_dir.join("member");
    let wal_dir = member_dir.join("wal");
    if Wal::exists(&wal_dir) {
        tracing::info!(data_dir = %cfg.data_dir.display(), "restarting member from its data dir; bootstrap flags are ignored");
    } else {
        create(cfg, &wal_dir)?;
    }
    let (wal, replayed) = Wal::open(&wal_dir).with_context(|| format!("opening {}", wal_dir.display()))?;
    if replayed.repaired_bytes > 0 {
        tracing::warn!(bytes = replayed.repaired_bytes, "repaired a torn wal tail");
    }
    let backend = Arc::new(Backend::open(&member_dir.join("db")).context("opening the backend")?);
    let applied = backend.applied_index()?;
    if replayed.snapshot.index > 1 && applied < replayed.snapshot.index {
        bail!(
            "backend is at raft index {applied} but the wal starts after {}: the data dir is damaged",
            replayed.snapshot.index
        );
    }
    let mvcc = Arc::new(MvccStore::open(backend.clone()).context("loading the key index")?);
    let storage = restore_storage(&replayed, applied)?;
    Ok(Opened { identity: replayed.identity, wal, storage, backend, mvcc, applied })
}

fn create(cfg: &Config, wal_dir: &std::path::Path) -> anyhow::Result<()> {
    if cfg.initial_cluster_state == ClusterState::Existing {
        bail!("--initial-cluster-state=existing: joining a running cluster is not supported yet");
    }
    if cfg.initial_cluster.len() > 1 {
        bail!(
            "--initial-cluster lists {} members: multi-member clusters are not supported yet",
            cfg.initial_cluster.len()
        );
    }
    let members: Vec<u64> =
        cfg.initial_cluster.iter().map(|(_, urls)| ids::member_id(urls, &cfg.initial_cluster_token)).collect();
    let identity = Identity {
        member_id: ids::member_id(&cfg.initial_advertise_peer_urls, &cfg.initial_cluster_token),
        cluster_id: ids::cluster_id(&members),
    };
    let (snapshot, hard_state) = bootstrap_state(members);
    std::fs::create_dir_all(wal_dir).with_context(|| format!("cannot create data dir {}", wal_dir.display()))?;
    Wal::create(wal_dir, identity, snapshot, hard_state)?;
    tracing::info!(member_id = %format!("{:x}", identity.member_id), cluster_id = %format!("{:x}", identity.cluster_id),
        "bootstrapped a new cluster");
    Ok(())
}
