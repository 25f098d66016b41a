//! Membership changes and the rules they must pass, as etcd's. Two kinds of rules:
//! `validate` runs when the change is applied (on every member, against the same records,
//! so all reach the same verdict); the `ready_to_*` checks run on the member that takes the
//! request, before proposing (etcd's --strict-reconfig-check, on by default).

use super::Membership;
use crate::error::EtcdError;
use crate::proto::cairnpb::MemberRecord;

/// etcd 3.4 lets one learner at a time into a cluster.
pub const MAX_LEARNERS: usize = 1;

#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A new member (voter or learner), with its peer URLs.
    Add(MemberRecord),
    Promote(u64),
    Remove(u64),
    /// New peer URLs for a member.
    Update(u64, Vec<String>),
}

impl Membership {
    /// Whether `change` may be applied to the current records.
    pub fn validate(&self, change: &Change) -> Result<(), EtcdError> {
        let records = self.records.read().unwrap_or_else(|e| e.into_inner());
        let member = |id: u64| match records.get(&id) {
            Some(r) if r.removed => Err(EtcdError::MemberNotFound),
            Some(r) => Ok(r),
            None => Err(EtcdError::MemberNotFound),
        };
        let url_taken = |urls: &[String], except: u64| {
            records
                .values()
                .filter(|r| !r.removed && r.id != except)
                .any(|r| r.peer_urls.iter().any(|u| urls.contains(u)))
        };
        match change {
            Change::Add(new) => {
                if records.contains_key(&new.id) {
                    // A removed id stays taken: etcd answers "member not found" for it.
                    return if records[&new.id].removed {
                        Err(EtcdError::MemberNotFound)
                    } else {
                        Err(EtcdError::MemberExists)
                    };
                }
                if url_taken(&new.peer_urls, 0) {
                    return Err(EtcdError::PeerUrlExists);
                }
                let learners = records.values().filter(|r| !r.removed && r.is_learner).count();
                if new.is_learner && learners >= MAX_LEARNERS {
                    return Err(EtcdError::TooManyLearners);
                }
                Ok(())
            }
            Change::Promote(id) => {
                if !member(*id)?.is_learner {
                    return Err(EtcdError::MemberNotLearner);
                }
                Ok(())
            }
            Change::Remove(id) => member(*id).map(|_| ()),
            Change::Update(id, urls) => {
                member(*id)?;
                if url_taken(urls, *id) {
                    return Err(EtcdError::PeerUrlExists);
                }
                Ok(())
            }
        }
    }

    /// The record `change` leaves behind (to be written with the entry that applies it).
    pub fn changed_record(&self, change: &Change) -> Option<MemberRecord> {
        match change {
            Change::Add(new) => Some(new.clone()),
            Change::Promote(id) => self.get(*id).map(|r| MemberRecord { is_learner: false, ..r }),
            Change::Remove(id) => Some(MemberRecord { id: *id, removed: true, ..self.get(*id).unwrap_or_default() }),
            Change::Update(id, urls) => self.get(*id).map(|r| MemberRecord { peer_urls: urls.clone(), ..r }),
        }
    }

    /// Voters, and how many of them have started (published their name): etcd counts a
    /// member as started once its name is known.
    fn started_voters(&self, except: u64) -> (usize, usize) {
        let voters: Vec<MemberRecord> = self.list().into_iter().filter(|r| !r.is_learner && r.id != except).collect();
        (voters.len(), voters.iter().filter(|r| !r.name.is_empty()).count())
    }

    /// Adding a voter must leave a quorum of started voters (the new one is not started).
    pub fn ready_to_add_voter(&self) -> Result<(), EtcdError> {
        let (voters, started) = self.started_voters(0);
        // A one-member cluster getting its second member (how a restored cluster grows).
        if started == 1 && voters == 1 {
            return Ok(());
        }
        enough(started, voters + 1)
    }

    /// Removing a voter must leave a quorum of started voters among the rest.
    pub fn ready_to_remove(&self, id: u64) -> Result<(), EtcdError> {
        let (voters, started) = self.started_voters(id);
        enough(started, voters)
    }

    /// Promoting a learner adds a voter (counted as started: it runs, it caught up): the
    /// started voters must be a quorum of the result.
    pub fn ready_to_promote(&self) -> Result<(), EtcdError> {
        let (voters, started) = self.started_voters(0);
        enough(started + 1, voters + 1)
    }
}

fn enough(started: usize, members: usize) -> Result<(), EtcdError> {
    if started < members / 2 + 1 {
        return Err(EtcdError::NotEnoughStarted);
    }
    Ok(())
}
