use super::*;
use crate::proto::mvccpb::KeyValue;

fn put(key: &str, lease: i64) -> Event {
    Event {
        r#type: EventType::Put as i32,
        kv: Some(KeyValue { key: key.into(), lease, ..Default::default() }),
        prev_kv: None,
    }
}

fn del(key: &str) -> Event {
    Event {
        r#type: EventType::Delete as i32,
        kv: Some(KeyValue { key: key.into(), ..Default::default() }),
        prev_kv: None,
    }
}

#[test]
fn keys_follow_their_latest_put() {
    let l = Lessor::new(2);
    assert_eq!(l.grant(1, 10), Ok(10));
    assert_eq!(l.grant(2, 1), Ok(2), "raised to the minimum TTL");
    assert_eq!(l.grant(1, 5), Err(EtcdError::LeaseExists));
    assert_eq!(l.grant(3, MAX_LEASE_TTL + 1), Err(EtcdError::LeaseTtlTooLarge));
    l.on_event(&put("a", 1));
    l.on_event(&put("b", 1));
    l.on_event(&put("b", 2));
    l.on_event(&put("c", 1));
    l.on_event(&put("c", 0));
    l.on_event(&put("d", 1));
    l.on_event(&del("d"));
    assert_eq!(l.keys_of(1), Some(vec![b"a".to_vec()]));
    assert_eq!(l.keys_of(2), Some(vec![b"b".to_vec()]));
    l.remove(1);
    assert_eq!(l.keys_of(1), None);
    assert_eq!(l.ids(), vec![2]);
}

#[test]
fn only_a_primary_expires_leases_and_promotion_restarts_deadlines() {
    let l = Lessor::new(1);
    l.grant(7, 1).unwrap();
    assert_eq!(l.time_to_live(7, false).unwrap().remaining, 1, "no deadline before promotion");
    assert!(l.expired().is_empty());
    l.promote(Duration::ZERO);
    assert!(l.time_to_live(7, false).unwrap().remaining <= 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while l.expired().is_empty() {
        assert!(Instant::now() < deadline, "a 1s lease never expired");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Reported once, then held back while its revoke is in flight.
    assert!(l.expired().is_empty());
    l.demote();
    assert_eq!(l.renew(7), Some(1));
}

#[test]
fn generated_ids_are_positive_and_distinct() {
    let g = LeaseIdGenerator::new(u64::MAX);
    let a = g.next();
    let b = g.next();
    assert!(a > 0 && b > 0 && a != b);
}
