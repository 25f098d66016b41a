use super::*;
use crate::error::EtcdError;

fn rec(id: u64, name: &str, url: &str, learner: bool) -> MemberRecord {
    MemberRecord { id, name: name.into(), peer_urls: vec![url.into()], is_learner: learner, ..Default::default() }
}

fn three() -> (tempfile::TempDir, Membership) {
    let dir = tempfile::tempdir().unwrap();
    let (backend, _writer) = Backend::open(dir.path()).unwrap();
    let m = Membership::load(&backend, 1).unwrap();
    m.set(rec(1, "a", "http://a:2380", false));
    m.set(rec(2, "b", "http://b:2380", false));
    m.set(rec(3, "c", "http://c:2380", false));
    (dir, m)
}

#[test]
fn adds_are_refused_as_etcd_refuses_them() {
    let (_d, m) = three();
    assert_eq!(m.validate(&Change::Add(rec(2, "", "http://x:2380", false))), Err(EtcdError::MemberExists));
    assert_eq!(m.validate(&Change::Add(rec(4, "", "http://b:2380", false))), Err(EtcdError::PeerUrlExists));
    assert_eq!(m.validate(&Change::Add(rec(4, "", "http://d:2380", true))), Ok(()));
    m.set(rec(4, "", "http://d:2380", true));
    assert_eq!(
        m.validate(&Change::Add(rec(5, "", "http://e:2380", true))),
        Err(EtcdError::TooManyLearners),
        "one learner at a time"
    );
    assert_eq!(m.voters(), vec![1, 2, 3]);
    assert_eq!(m.learners(), vec![4]);
}

#[test]
fn a_removed_member_stays_out() {
    let (_d, m) = three();
    let removed = m.changed_record(&Change::Remove(3)).unwrap();
    assert!(removed.removed);
    m.set(removed);
    assert!(m.is_removed(3));
    assert_eq!(m.get(3), None);
    assert_eq!(m.voters(), vec![1, 2]);
    assert_eq!(m.validate(&Change::Remove(3)), Err(EtcdError::MemberNotFound));
    assert_eq!(m.validate(&Change::Add(rec(3, "", "http://z:2380", false))), Err(EtcdError::MemberNotFound));
    // Its URL is free again for a new member.
    assert_eq!(m.validate(&Change::Add(rec(9, "", "http://c:2380", false))), Ok(()));
}

#[test]
fn promotion_and_update_rules() {
    let (_d, m) = three();
    assert_eq!(m.validate(&Change::Promote(2)), Err(EtcdError::MemberNotLearner));
    assert_eq!(m.validate(&Change::Promote(7)), Err(EtcdError::MemberNotFound));
    m.set(rec(4, "", "http://d:2380", true));
    assert_eq!(m.validate(&Change::Promote(4)), Ok(()));
    assert!(!m.changed_record(&Change::Promote(4)).unwrap().is_learner);
    assert_eq!(m.validate(&Change::Update(2, vec!["http://a:2380".into()])), Err(EtcdError::PeerUrlExists));
    assert_eq!(m.validate(&Change::Update(2, vec!["http://b:2380".into()])), Ok(()), "its own URLs are fine");
}

#[test]
fn strict_reconfiguration_counts_started_voters() {
    let (_d, m) = three();
    assert_eq!(m.ready_to_add_voter(), Ok(()), "3 started of 4 is a quorum");
    m.set(rec(4, "", "http://d:2380", false));
    assert_eq!(m.ready_to_add_voter(), Ok(()), "3 started of 5 is a quorum");
    m.set(rec(5, "", "http://e:2380", false));
    assert_eq!(m.ready_to_add_voter(), Err(EtcdError::NotEnoughStarted), "3 started of 6 is not");
    assert_eq!(m.ready_to_remove(1), Err(EtcdError::NotEnoughStarted), "2 started of 4 is not");
    assert_eq!(m.ready_to_remove(5), Ok(()), "3 started of 4 is");
}
