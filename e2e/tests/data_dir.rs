//! Cairn never destroys a data dir it cannot vouch for: an etcd 3.4 member's data dir (the
//! "swap the binary" case) and a Cairn WAL damaged by a flipped byte are refused with a
//! message and left byte for byte as they were; a torn write at the log's end is cut and
//! nothing acknowledged is lost; everything a member makes is private (0700 dirs, 0600 files).

use cairn_e2e::files::{copy_tree, differences, tree};
use cairn_e2e::harness::{Kind, Member};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Starts cairn on `dir/data` expecting it to refuse: returns its log after checking that it
/// exited with status 1 (not a signal, not a panic).
fn refused(dir: &Path) -> String {
    let mut m = Member::launch(Kind::Cairn, dir, &[]);
    let status = m.exit_status(Duration::from_secs(30)).unwrap_or_else(|| panic!("still running:\n{}", m.log_tail()));
    let log = m.log_text();
    assert_eq!(status.code(), Some(1), "exit {status:?} (signal {:?}):\n{log}", status.signal());
    assert!(!log.contains("panicked"), "{log}");
    log
}

fn wal_segments(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("member/wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

#[test]
fn an_etcd_data_dir_is_refused_and_left_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = Member::start(Kind::Etcd, dir.path(), &[]);
    for i in 0..20 {
        assert_eq!(etcd.ctl(&["put", &format!("k{i}"), "v"]).trim(), "OK");
    }
    // Killed, as a node dies: its WAL, preallocated files and all are as etcd left them.
    etcd.kill9();
    let data = dir.path().join("data");
    let before = tree(&data);
    assert!(before.keys().any(|p| p.ends_with("member/snap/db")), "{:?}", before.keys());
    let log = refused(dir.path());
    assert!(log.contains("is an etcd member's data dir") && log.contains("nothing in it was changed"), "{log}");
    assert_eq!(differences(&before, &tree(&data)), Vec::<String>::new());

    // Without etcd's database, its WAL alone (same segment names as Cairn's) is refused too.
    let wal_only = tempfile::tempdir().unwrap();
    copy_tree(&data, &wal_only.path().join("data"));
    std::fs::remove_file(wal_only.path().join("data/member/snap/db")).unwrap();
    let before = tree(&wal_only.path().join("data"));
    let log = refused(wal_only.path());
    assert!(log.contains("holds a WAL Cairn did not write"), "{log}");
    assert_eq!(differences(&before, &tree(&wal_only.path().join("data"))), Vec::<String>::new());

    // And etcd still starts on its data dir, with its keys.
    etcd.restart();
    assert_eq!(etcd.ctl(&["get", "k19", "--print-value-only"]).trim(), "v");
}

#[test]
fn a_format_marker_of_another_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(Kind::Cairn, dir.path(), &[]);
    m.ctl(&["put", "a", "1"]);
    assert!(m.terminate(Duration::from_secs(30)).is_some());
    let data = dir.path().join("data");
    std::fs::write(data.join("member/cairn-format"), "cairn data dir 99\n").unwrap();
    let before = tree(&data);
    let log = refused(dir.path());
    assert!(log.contains("\"cairn data dir 99\"") && log.contains("a newer Cairn made it"), "{log}");
    assert_eq!(differences(&before, &tree(&data)), Vec::<String>::new());
}

/// A byte flipped anywhere in the WAL of a cleanly stopped member: all of it was synced and
/// may have been acknowledged, so none of it is a torn write.
#[test]
fn a_flipped_byte_anywhere_in_the_wal_refuses_to_start_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(Kind::Cairn, dir.path(), &[]);
    for i in 0..200 {
        m.ctl(&["put", &format!("key-{i:03}"), &format!("value-{i}")]);
    }
    assert_eq!(m.terminate(Duration::from_secs(30)), Some(0), "{}", m.log_tail());
    let clean = dir.path().join("data");
    let segments = wal_segments(&clean);
    assert_eq!(segments.len(), 1);
    let len = std::fs::metadata(&segments[0]).unwrap().len() as usize;
    assert!(len > 10_000, "a WAL of {len} bytes");
    // Across the file, and in the very last record.
    let offsets = [len / 10, len * 3 / 10, len / 2, len * 7 / 10, len * 9 / 10, len - 2];
    for at in offsets {
        let case = tempfile::tempdir().unwrap();
        let data = case.path().join("data");
        copy_tree(&clean, &data);
        let seg = wal_segments(&data).remove(0);
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[at] ^= 0x5a;
        std::fs::write(&seg, &bytes).unwrap();
        let before = tree(&data);
        let log = refused(case.path());
        assert!(
            log.contains("nothing was changed on disk") || log.contains("the WAL was left as it is"),
            "a flip at {at} of {len}:\n{log}"
        );
        assert_eq!(differences(&before, &tree(&data)), Vec::<String>::new(), "a flip at {at} of {len}");
    }
    // The undamaged copy still starts, with every key.
    m.restart();
    assert_eq!(m.ctl(&["get", "key-199", "--print-value-only"]).trim(), "value-199");
}

/// The WAL cut short at its end, as if its last records were lost: the backend has applied
/// entries the log no longer holds. Refused with a message (raft-rs would panic on it), the
/// WAL as it was (sled, opened to learn the applied index, keeps its own files as it likes).
#[test]
fn a_wal_shorter_than_what_was_applied_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(Kind::Cairn, dir.path(), &[]);
    for i in 0..100 {
        m.ctl(&["put", &format!("key-{i:03}"), "v"]);
    }
    assert_eq!(m.terminate(Duration::from_secs(30)), Some(0), "{}", m.log_tail());
    let data = dir.path().join("data");
    let seg = wal_segments(&data).remove(0);
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len * 2 / 3 + 3).unwrap();
    let before = tree(&data.join("member/wal"));
    let log = refused(dir.path());
    assert!(log.contains("entries this member applied are missing from its log"), "{log}");
    assert_eq!(differences(&before, &tree(&data.join("member/wal"))), Vec::<String>::new());
}

/// A write a crash interrupted (part of a record at the end of the last segment) is cut, and
/// every acknowledged write is still there.
#[test]
fn a_torn_write_at_the_end_is_cut_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(Kind::Cairn, dir.path(), &[]);
    for i in 0..50 {
        m.ctl(&["put", &format!("key-{i:03}"), "v"]);
    }
    m.kill9();
    let data = dir.path().join("data");
    let seg = wal_segments(&data).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    // A record header announcing 300 bytes, and only 40 of them.
    let mut torn = vec![0u8; 48];
    torn[..4].copy_from_slice(&301u32.to_le_bytes());
    torn[4..8].copy_from_slice(&0xdead_beefu32.to_le_bytes());
    torn[8] = 2;
    torn[9..].fill(0x61);
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &torn).unwrap();
    drop(f);
    m.restart();
    // Exactly the torn bytes went (the member has appended since).
    let log = m.log_text();
    assert!(log.contains("cutting off a torn write"), "{log}");
    assert!(log.contains(&format!("offset={len}")) && log.contains("bytes=48"), "{log}");
    let keys = m.ctl(&["get", "key-", "--prefix", "--keys-only"]);
    assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), 50, "{keys}");
}

#[test]
fn everything_a_member_makes_is_private_and_an_open_data_dir_is_closed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut m = Member::start(Kind::Cairn, dir.path(), &["--snapshot-count", "100"]);
    for i in 0..300 {
        m.ctl(&["put", &format!("key-{i:03}"), "v"]);
    }
    m.ctl(&["defrag"]);
    let saved = dir.path().join("snap.db");
    let out = std::process::Command::new(cairn_e2e::harness::cairn_bin())
        .args(["snapshot", "save", &saved.display().to_string(), "--endpoints", &m.client_addr])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(m.log_text().contains("check file permission"), "{}", m.log_tail());
    let entries = tree(&data);
    assert!(entries.len() > 5, "{:?}", entries.keys());
    for (path, e) in &entries {
        let want = if e.dir { 0o700 } else { 0o600 };
        assert_eq!(e.mode, want, "{} is {:o}", path.display(), e.mode);
    }
    assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o600);
    m.kill9();
}
