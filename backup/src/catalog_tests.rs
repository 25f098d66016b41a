//! The catalog's rules, as tables: which deltas count, what a restore downloads, what
//! retention deletes.

use super::catalog::*;

fn full(revision: i64, unix_ms: i64, generation: u64) -> Full {
    Full {
        revision,
        key: full_key(unix_ms, generation),
        sha256: String::new(),
        bytes: 0,
        stored_bytes: 0,
        unix_ms,
        generation,
        restart: false,
    }
}

fn gen(generation: u64, from_revision: i64) -> Generation {
    Generation { generation, from_revision, unix_ms: 0 }
}

fn d(from: i64, to: i64, generation: u64) -> DeltaName {
    DeltaName { from, to, generation }
}

fn catalog() -> Catalog {
    Catalog {
        generations: vec![gen(1, 11), gen(2, 31)],
        fulls: vec![full(10, 1_000, 1), full(25, 2_000, 1)],
        head: 40,
        head_unix_ms: 0,
    }
}

#[test]
fn names_round_trip() {
    let n = d(12, 345, 7);
    assert_eq!(DeltaName::parse(&n.key()), Some(n));
    assert_eq!(DeltaName::parse("delta/x-1-g1.cdl"), None);
    assert_eq!(DeltaName::parse("delta/00000000000000000009-00000000000000000008-g0000000001.cdl"), None);
    assert_eq!(full_key_generation(&full_key(5, 3)), Some(3));
}

#[test]
fn validity_fences_older_generations_and_uncommitted_deltas() {
    let c = catalog();
    let cases = [
        (d(11, 20, 1), true),
        (d(21, 30, 1), true),
        (d(31, 35, 1), false), // written by generation 1 after generation 2 started at 31
        (d(25, 33, 1), false), // reaches into generation 2's range
        (d(31, 40, 2), true),
        (d(41, 45, 2), false), // past the head: uploaded, never committed
        (d(31, 40, 3), false), // a generation the catalog never recorded
    ];
    for (delta, valid) in cases {
        assert_eq!(c.delta_is_valid(&delta), valid, "{delta:?}");
    }
}

#[test]
fn plans_follow_the_deltas_from_the_chosen_full() {
    let c = catalog();
    let deltas = [d(11, 20, 1), d(21, 30, 1), d(31, 35, 1), d(31, 40, 2), d(41, 45, 2)];
    let latest = c.plan(&deltas, Target::Latest).unwrap();
    assert_eq!(latest.full.revision, 25);
    assert_eq!(latest.deltas, vec![d(21, 30, 1), d(31, 40, 2)]);
    assert_eq!(latest.reaches, 40);
    let middle = c.plan(&deltas, Target::Revision(18)).unwrap();
    assert_eq!((middle.full.revision, middle.deltas.clone()), (10, vec![d(11, 20, 1)]));
    let exact = c.plan(&deltas, Target::Revision(25)).unwrap();
    assert_eq!((exact.full.revision, exact.deltas.len()), (25, 0));
    let by_time = c.plan(&deltas, Target::Time(1_500)).unwrap();
    assert_eq!(by_time.full.revision, 10);
    assert_eq!(by_time.reaches, 40);
}

#[test]
fn plans_refuse_what_is_not_backed_up() {
    // Full 25 was taken after a compaction: 21..=24 were never backed up.
    let mut c = catalog();
    c.fulls[1].restart = true;
    let holed = [d(11, 20, 1), d(31, 40, 2)];
    assert_eq!(c.plan(&holed, Target::Revision(22)), Err(PlanError::NotReached { want: 22, full: 10, reaches: 20 }));
    assert!(matches!(c.plan(&holed, Target::Revision(5)), Err(PlanError::TooOld(_, 10))));
    assert!(matches!(c.plan(&holed, Target::Revision(41)), Err(PlanError::NotReached { reaches: 25, .. })));
    // A time before the hole may stop inside it: the restore checks that it stopped before.
    assert_eq!(c.plan(&holed, Target::Time(1_500)).unwrap().reaches, 20);
    assert_eq!(Catalog::default().plan(&[], Target::Latest), Err(PlanError::Empty));
}

#[test]
fn plans_name_a_lost_delta() {
    let c = catalog();
    let lost = [d(11, 20, 1), d(31, 40, 2)]; // 21-30 gone, and no restart explains it
    assert_eq!(c.plan(&lost, Target::Latest), Err(PlanError::Missing { revision: 26, head: 40 }));
    assert_eq!(c.plan(&lost, Target::Revision(22)), Err(PlanError::Missing { revision: 21, head: 40 }));
    assert_eq!(c.plan(&lost, Target::Time(1_500)), Err(PlanError::Missing { revision: 21, head: 40 }));
    let err = c.plan(&lost, Target::Latest).unwrap_err().to_string();
    assert!(err.contains("delta/00000000000000000026-"), "{err}");
}

#[test]
fn retention_keeps_every_chain_it_keeps() {
    let mut c = catalog();
    c.fulls.push(full(38, 3_000, 2));
    let listed: Vec<String> = [d(11, 20, 1), d(21, 30, 1), d(31, 35, 1), d(31, 40, 2), d(41, 45, 2)]
        .iter()
        .map(DeltaName::key)
        .chain(c.fulls.iter().map(|f| f.key.clone()))
        .chain([full_key(500, 1), full_key(3_500, 2)])
        .collect();
    let gone = c.retain(2, None, 10_000, &listed);
    assert_eq!(c.fulls.iter().map(|f| f.revision).collect::<Vec<_>>(), vec![25, 38]);
    let mut want = vec![
        d(11, 20, 1).key(), // before the oldest kept full
        d(31, 35, 1).key(), // fenced
        full_key(1_000, 1), // the dropped full
        full_key(500, 1),   // an older generation's upload that never committed
    ];
    want.sort();
    let mut gone = gone;
    gone.sort();
    // Kept: 21-30 (full 25 needs it), 31-40, 41-45 (maybe in flight), and 3_500 (the current
    // generation's upload, maybe about to commit).
    assert_eq!(gone, want);
}

#[test]
fn retention_by_age_keeps_the_newest_full() {
    let mut c = catalog();
    let gone = c.retain(10, Some(100), 10_000, &[]);
    assert_eq!(c.fulls.iter().map(|f| f.revision).collect::<Vec<_>>(), vec![25]);
    assert!(gone.is_empty());
}
