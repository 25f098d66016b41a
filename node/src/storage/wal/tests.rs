use super::*;

fn ident() -> Identity {
    Identity { member_id: 7, cluster_id: 9 }
}

/// A new log holding one hard state record, as a member's starts.
fn create(dir: &Path) -> Wal {
    Wal::create(dir, ident(), 2, &[(Kind::HardState, b"hs".to_vec())]).unwrap()
}

fn entry(w: &mut Wal, body: &[u8]) {
    w.append(Kind::Entry, body).unwrap();
}

/// The bodies of the entry records replay found.
fn entries(scan: &Scan) -> Vec<Vec<u8>> {
    scan.records.iter().filter(|r| r.kind == Kind::Entry).map(|r| r.body.clone()).collect()
}

fn only_segment(dir: &Path) -> PathBuf {
    let names = segment::list(dir).unwrap();
    assert_eq!(names.len(), 1);
    dir.join(names[0].file_name())
}

#[test]
fn replays_what_was_synced_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = create(dir.path());
    entry(&mut w, b"a");
    entry(&mut w, b"b");
    w.append(Kind::HardState, b"hs2").unwrap();
    w.sync().unwrap();
    drop(w);
    let (_, scan) = Wal::open(dir.path()).unwrap();
    assert_eq!(scan.identity, ident());
    let kinds: Vec<Kind> = scan.records.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [Kind::HardState, Kind::Entry, Kind::Entry, Kind::HardState]);
    assert_eq!(entries(&scan), [b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(scan.torn, None);
}

#[test]
fn torn_tail_is_cut_and_earlier_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = create(dir.path());
    entry(&mut w, b"kept");
    w.sync().unwrap();
    entry(&mut w, &[0xAB; 100]);
    w.sync().unwrap();
    drop(w);
    let path = only_segment(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    // A crash in the middle of writing the last record.
    OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 40).unwrap();
    // Reading reports it and changes nothing; opening cuts it.
    let before = std::fs::read(&path).unwrap();
    let torn = Wal::read(dir.path()).unwrap().torn.expect("a torn tail");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!((torn.segment.clone(), torn.offset + torn.bytes), (path.clone(), before.len() as u64));
    let (mut w, scan) = Wal::open(dir.path()).unwrap();
    assert_eq!(scan.torn, Some(torn.clone()));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), torn.offset);
    assert_eq!(entries(&scan), [b"kept".to_vec()]);
    // The repaired log takes new appends and replays them.
    entry(&mut w, b"again");
    w.sync().unwrap();
    drop(w);
    let (_, scan) = Wal::open(dir.path()).unwrap();
    assert_eq!(entries(&scan), [b"kept".to_vec(), b"again".to_vec()]);
}

/// A flipped byte in the last record is not a torn write (all its bytes were written, and
/// synced: it may have been acknowledged), so it is refused, as etcd refuses it.
#[test]
fn a_flipped_byte_in_the_last_record_refuses_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = create(dir.path());
    entry(&mut w, b"kept");
    entry(&mut w, b"flipped");
    w.sync().unwrap();
    drop(w);
    let path = only_segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
    for result in [Wal::read(dir.path()).err(), Wal::open(dir.path()).err()] {
        match result {
            Some(WalError::Corrupt { path: p, why, .. }) => assert_eq!((p, why), (path.clone(), "crc mismatch")),
            other => panic!("expected a crc mismatch, got {other:?}"),
        }
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file is untouched");
}

/// Zeros where records should be are what a file system leaves when a crash interrupts an
/// append after the file grew: etcd's rule counts them as torn.
#[test]
fn a_tail_of_zeros_is_torn() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = create(dir.path());
    entry(&mut w, b"kept");
    w.sync().unwrap();
    drop(w);
    let path = only_segment(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new().write(true).open(&path).unwrap().set_len(len + 4096).unwrap();
    let (_, scan) = Wal::open(dir.path()).unwrap();
    assert_eq!(scan.torn.map(|t| (t.offset, t.bytes)), Some((len, 4096)));
    assert_eq!(entries(&Wal::read(dir.path()).unwrap()).len(), 1);
}

/// A damaged length that points past the end of the file looks like a torn write, but the
/// records after it are still chained to it: corruption, refused.
#[test]
fn a_damaged_length_followed_by_valid_records_is_not_torn() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = create(dir.path());
    for body in [&b"first"[..], b"second", b"third"] {
        entry(&mut w, body);
    }
    w.sync().unwrap();
    drop(w);
    let path = only_segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // The record of the second entry: find its length field by decoding from the start.
    let (mut off, mut seed, mut starts) = (0, 0, Vec::new());
    while off < bytes.len() {
        let d = record::decode(&bytes[off..], seed).unwrap();
        starts.push((off, d.kind));
        seed = d.crc;
        off += d.len;
    }
    let entry_starts: Vec<usize> = starts.iter().filter(|(_, k)| *k == Kind::Entry).map(|(o, _)| *o).collect();
    bytes[entry_starts[1] + 1] ^= 0x10; // +4096 bytes: past the end of this small file
    std::fs::write(&path, &bytes).unwrap();
    match Wal::open(dir.path()) {
        Err(WalError::Corrupt { offset, .. }) => assert_eq!(offset, entry_starts[1]),
        other => panic!("expected corruption, got {:?}", other.map(|(_, s)| s.records.len())),
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn corruption_before_the_last_segment_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = create(dir.path());
    entry(&mut w, b"x");
    w.sync().unwrap();
    w.cut(3, &[]).unwrap();
    entry(&mut w, b"y");
    w.sync().unwrap();
    drop(w);
    let names = segment::list(dir.path()).unwrap();
    assert_eq!(names.len(), 2);
    let first = dir.path().join(names[0].file_name());
    let mut bytes = std::fs::read(&first).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x01;
    std::fs::write(&first, &bytes).unwrap();
    match Wal::open(dir.path()) {
        Err(WalError::Corrupt { path, .. }) => assert_eq!(path, first),
        other => panic!("expected corruption error, got {:?}", other.map(|(_, s)| s)),
    }
}

#[test]
fn segments_are_cut_chained_restated_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = create(dir.path());
    for i in 2..=4u64 {
        entry(&mut w, &i.to_be_bytes());
        w.sync().unwrap();
        w.cut(i + 1, &[(Kind::Snapshot, format!("snap {i}").into_bytes())]).unwrap();
    }
    entry(&mut w, &5u64.to_be_bytes());
    w.sync().unwrap();
    assert_eq!(w.segment_count(), 4);
    w.release_to(3).unwrap();
    // Segments holding only entries <= 3 are gone; 4 and 5 remain replayable, after the
    // marker the segment of 4 restated.
    assert_eq!(w.segment_count(), 2);
    drop(w);
    let (_, scan) = Wal::open(dir.path()).unwrap();
    assert_eq!(scan.records[0], Record { kind: Kind::Snapshot, body: b"snap 3".to_vec() });
    assert_eq!(entries(&scan), [4u64.to_be_bytes().to_vec(), 5u64.to_be_bytes().to_vec()]);
}

/// A file of etcd's WAL format, under a name Cairn's would have, is never changed.
#[test]
fn a_segment_without_a_cairn_header_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0000000000000000-0000000000000000.wal");
    let mut bytes = vec![0u8; 64 * 1024];
    bytes[..16].copy_from_slice(&[0x10, 0, 0, 0, 0, 0, 0, 0x84, 0x08, 0x04, 0x10, 0, 0, 0, 0, 0]);
    std::fs::write(&path, &bytes).unwrap();
    std::fs::write(dir.path().join("0.tmp"), b"etcd's preallocated next segment").unwrap();
    assert!(matches!(Wal::open(dir.path()), Err(WalError::Corrupt { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert!(dir.path().join("0.tmp").exists());
}

mod property {
    use super::*;
    use proptest::prelude::*;

    /// How a log is damaged: a flipped bit, a cut, a run of zeros or of other bytes, junk
    /// appended. Positions are fractions of the chosen segment's length.
    #[derive(Clone, Debug)]
    enum Damage {
        Flip { at: f64, bit: u8 },
        Truncate { at: f64 },
        Zero { at: f64, len: usize },
        Overwrite { at: f64, bytes: Vec<u8> },
        Append { bytes: Vec<u8> },
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            (0.0..1.0, 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
            (0.0..1.0).prop_map(|at| Damage::Truncate { at }),
            (0.0..1.0, 1usize..2000).prop_map(|(at, len)| Damage::Zero { at, len }),
            (0.0..1.0, proptest::collection::vec(any::<u8>(), 1..64))
                .prop_map(|(at, bytes)| Damage::Overwrite { at, bytes }),
            proptest::collection::vec(any::<u8>(), 1..600).prop_map(|bytes| Damage::Append { bytes }),
        ]
    }

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
            .collect();
        out.sort();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Whatever the damage, reading either yields a prefix of the records written or refuses,
        /// and never writes; opening changes at most the end of the last segment, cutting
        /// only what reading reported as torn.
        #[test]
        fn a_damaged_log_reads_as_a_prefix_or_is_refused(
            sizes in proptest::collection::vec(1usize..1500, 1..30),
            cuts in proptest::collection::vec(any::<bool>(), 30),
            segment_pick in 0.0f64..1.0,
            damage in damage(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut w = create(dir.path());
            let mut written = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                let index = i as u64 + 2;
                // Varied bytes: a payload of zeros would hold zero sectors, which etcd's rule
                // (rightly) counts as torn.
                let data: Vec<u8> = (0..*size).map(|j| (index as usize * 131 + j * 7919) as u8 | 1).collect();
                entry(&mut w, &data);
                w.sync().unwrap();
                written.push(data);
                if cuts[i] {
                    w.cut(index + 1, &[(Kind::HardState, b"hs".to_vec())]).unwrap();
                }
            }
            drop(w);
            let names = segment::list(dir.path()).unwrap();
            let seg = names[((names.len() as f64) * segment_pick) as usize % names.len()];
            let is_last = seg == *names.last().unwrap();
            let path = dir.path().join(seg.file_name());
            let mut bytes = std::fs::read(&path).unwrap();
            let pos = |at: f64| ((bytes.len() as f64) * at) as usize % bytes.len();
            // Where bytes were changed in place (not cut or appended), and whether by a flip.
            let mut changed_at = None;
            match &damage {
                Damage::Flip { at, bit } => { let p = pos(*at); bytes[p] ^= 1 << bit; changed_at = Some(p); }
                Damage::Truncate { at } => { let p = pos(*at); bytes.truncate(p); }
                Damage::Zero { at, len } => {
                    let p = pos(*at);
                    let end = (p + len).min(bytes.len());
                    // Zeros written over zeros change nothing: the first byte that was not one is
                    // where the damage begins.
                    changed_at = bytes[p..end].iter().position(|b| *b != 0).map(|i| p + i);
                    bytes[p..end].fill(0);
                }
                Damage::Overwrite { at, bytes: b } => {
                    let p = pos(*at);
                    for (i, v) in b.iter().enumerate() {
                        if p + i < bytes.len() && bytes[p + i] != *v {
                            changed_at.get_or_insert(p + i);
                            bytes[p + i] = *v;
                        }
                    }
                }
                Damage::Append { bytes: b } => bytes.extend_from_slice(b),
            }
            let flip = matches!(damage, Damage::Flip { .. });
            std::fs::write(&path, &bytes).unwrap();
            let before = files(dir.path());
            let read = Wal::read(dir.path());
            prop_assert_eq!(&files(dir.path()), &before, "reading wrote");
            let Ok(r) = read else {
                prop_assert!(Wal::open(dir.path()).is_err(), "open accepted what read refused");
                prop_assert_eq!(&files(dir.path()), &before, "a refused open wrote");
                return Ok(());
            };
            let got = entries(&r);
            prop_assert!(got.len() <= written.len() && got[..] == written[..got.len()], "not a prefix");
            if let Some(t) = &r.torn {
                prop_assert!(is_last && t.segment == path, "a torn write outside the last segment");
                // Damage passes as torn only from the damaged record on; a flipped bit only in
                // the last record (a damaged length there cannot be told from a write the
                // crash cut short).
                if let Some(p) = changed_at {
                    prop_assert!(p as u64 >= t.offset, "bytes changed before the torn record");
                    prop_assert!(!flip || written.len() - got.len() <= 1, "more than one record lost to a flip");
                }
            } else if changed_at.is_some() {
                prop_assert!(false, "changed bytes went unnoticed");
            }
            let (_, opened) = Wal::open(dir.path()).unwrap();
            prop_assert_eq!(opened.records.len(), r.records.len());
            let after = files(dir.path());
            for ((name_a, a), (name_b, b)) in before.iter().zip(&after) {
                prop_assert_eq!(name_a, name_b);
                match &r.torn {
                    Some(t) if t.segment.file_name().unwrap().to_string_lossy() == *name_a => {
                        prop_assert_eq!(&a[..t.offset as usize], &b[..]);
                    }
                    _ => prop_assert_eq!(a, b),
                }
            }
        }
    }
}
