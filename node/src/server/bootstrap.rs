//! Opening a member's data dir: a new member (bootstrap flags used) or a restart (they are
//! ignored, as in etcd). Layout: see `storage::datadir`. Nothing is written to the data dir
//! before `datadir::inspect` has found it empty or Cairn's own.

use super::MemberError;
use crate::config::Config;
use crate::membership::{ids, Membership};
use crate::proto::cairnpb::MemberRecord;
use crate::storage::datadir::{self, Found};
use crate::storage::wal::Identity;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Opened {
    pub identity: Identity,
    pub membership: Arc<Membership>,
    pub snap_dir: PathBuf,
    pub log_dir: PathBuf,
    /// The backend and the MVCC store over it, for the applier.
    pub state: crate::apply::State,
}

/// What a member joining a running cluster learned from it.
pub struct Joining {
    pub identity: Identity,
    pub members: Vec<MemberRecord>,
}

fn refuse(why: String) -> MemberError {
    MemberError::Refused(why)
}

/// Opens the data dir `found` describes (`datadir::inspect`; a foreign one never gets
/// here). A new member of a running cluster brings what the cluster told it (`joining`: its
/// id, and the members).
pub fn open(cfg: &Config, found: Found, joining: Option<Joining>) -> Result<Opened, MemberError> {
    let member_dir = cfg.data_dir.join("member");
    let log_dir = member_dir.join("wal");
    let snap_dir = member_dir.join("snap");
    let io = |what: &str, p: &std::path::Path| {
        let what = format!("{what} {}", p.display());
        move |source| MemberError::Io { what, source }
    };
    if cfg.data_dir.exists() {
        crate::storage::private::restrict_dir(&cfg.data_dir).map_err(io("checking", &cfg.data_dir))?;
    }
    if found != Found::Cairn {
        datadir::claim(&cfg.data_dir)?;
    }
    let founders = if found != Found::Empty {
        tracing::info!(data_dir = %cfg.data_dir.display(), "restarting member from its data dir; bootstrap flags are ignored");
        None
    } else if let Some(j) = joining {
        crate::raft::create_joining_log(&log_dir, j.identity)?;
        tracing::info!(member_id = %format!("{:x}", j.identity.member_id), cluster_id = %format!("{:x}", j.identity.cluster_id),
            "joining a running cluster");
        Some(j.members)
    } else {
        Some(create(cfg, &log_dir)?)
    };
    crate::storage::private::create_dir_all(&snap_dir).map_err(io("creating", &snap_dir))?;
    // Read first, changing nothing: a torn write at the log's end is cut (when raft opens
    // the log) only once the backend shows it was never applied.
    let log = crate::raft::read_log(&log_dir)?;
    let image = crate::storage::image::path(&snap_dir, log.snapshot_index);
    let state = crate::apply::open_state(&member_dir.join("db"), founders.as_deref(), log.snapshot_index, &image)?;
    let applied = state.applied;
    if log.snapshot_index > 1 && applied < log.snapshot_index {
        return Err(refuse(format!(
            "backend is at raft index {applied} but the wal starts after {}: the data dir is damaged",
            log.snapshot_index
        )));
    }
    if applied > log.last_index {
        return Err(refuse(format!(
            "the backend has applied raft entries up to index {applied}, but the WAL in {} ends at \
             index {}: entries this member applied are missing from its log (the WAL was \
             damaged, truncated or replaced). Refusing to start; the WAL was left as it is. Remove \
             the member from the cluster (etcdctl member remove) and add it back with an empty data \
             dir, or restore the data dir from a snapshot",
            log_dir.display(),
            log.last_index
        )));
    }
    let membership = Arc::new(Membership::load(&state.backend, log.identity.member_id)?);
    // etcd ignores the flag for a member it bootstraps now: there is nothing to force.
    if cfg.force_new_cluster && found == Found::Cairn {
        force_new_cluster(&log_dir, applied, &membership, log.identity.member_id)?;
    }
    Ok(Opened { identity: log.identity, membership, snap_dir, log_dir, state })
}

/// --force-new-cluster: every other member (learners too) removed by committed entries at
/// the log's end, applied when raft starts. A learner has no say in the cluster's history and
/// may lag it: a new cluster is forced from a voter.
fn force_new_cluster(log_dir: &std::path::Path, applied: u64, m: &Membership, me: u64) -> Result<(), MemberError> {
    if m.get(me).is_some_and(|r| r.is_learner) {
        return Err(refuse(
            "--force-new-cluster: this member is a learner; force a new cluster from a voting member".into(),
        ));
    }
    let others: Vec<u64> = m.list().into_iter().map(|r| r.id).filter(|id| *id != me).collect();
    crate::raft::force_new_cluster(log_dir, applied, &others)?;
    Ok(())
}

/// A new member's log; returns the founding members, to be written to the new backend.
fn create(cfg: &Config, log_dir: &std::path::Path) -> Result<Vec<MemberRecord>, MemberError> {
    let records = crate::membership::founders(&cfg.initial_cluster, &cfg.initial_cluster_token);
    let members: Vec<u64> = records.iter().map(|r| r.id).collect();
    let identity = Identity {
        member_id: ids::member_id(&cfg.initial_advertise_peer_urls, &cfg.initial_cluster_token),
        cluster_id: ids::cluster_id(&members),
    };
    crate::raft::create_log(log_dir, identity, members)?;
    tracing::info!(member_id = %format!("{:x}", identity.member_id), cluster_id = %format!("{:x}", identity.cluster_id),
        "bootstrapped a new cluster");
    Ok(records)
}
