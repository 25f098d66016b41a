//! A member whose disk fills up: while a reserve is left it raises NOSPACE and keeps serving
//! reads; when a write finally cannot be made it exits with status 1 and a message (never an
//! abort); once space is freed it starts again with every acknowledged write.

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};
use cairn_e2e::harness::{Kind, Member};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes a file until the file system has no room left.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0xa5u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    // The last partial block: byte by byte until nothing more fits.
    while f.write_all(&[0xa5]).is_ok() {}
    let _ = f.sync_all();
}

fn value(i: usize) -> Vec<u8> {
    (0..64 * 1024).map(|j| (i * 7 + j * 13) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_raises_nospace_then_stops_cleanly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("disk"), "160m");
    // Room to free later: without it the restarted member would be as short of space.
    let ballast = fs.0.join("ballast");
    std::fs::write(&ballast, vec![1u8; 60 << 20]).unwrap();
    let member_dir = fs.0.join("member");
    let mut m = Member::start(Kind::Cairn, &member_dir, &[]);
    let mut kv = KvClient::new(m.channel().await);

    // 1. Puts until the member refuses them: the reserve is reached.
    let mut acked = BTreeMap::new();
    let refusal = loop {
        let i = acked.len();
        let key = format!("key-{i:05}");
        let put = PutRequest { key: key.clone().into(), value: value(i), ..Default::default() };
        match kv.put(put).await {
            Ok(r) => {
                acked.insert(key, r.into_inner().header.unwrap().revision);
            }
            Err(e) => break e,
        }
        assert!(acked.len() < 5000, "160 MiB never filled up");
    };
    assert_eq!(refusal.code(), tonic::Code::ResourceExhausted, "{refusal:?}");
    assert_eq!(refusal.message(), "etcdserver: mvcc: database space exceeded");
    assert!(acked.len() > 100, "only {} puts went in", acked.len());
    assert!(m.ctl(&["alarm", "list"]).contains("alarm:NOSPACE"), "{}", m.log_tail());
    // Reads go on.
    let got = kv.range(RangeRequest { key: b"key-00007".to_vec(), ..Default::default() }).await.unwrap();
    assert_eq!(got.into_inner().kvs[0].value, value(7));

    // 2. The disk fills up for good: the next write the member must make stops it.
    fill(&fs.0.join("filler"));
    let mut deleted = Vec::new();
    let mut exited = None;
    for key in acked.keys().take(200) {
        deleted.push(key.clone());
        let del = DeleteRangeRequest { key: key.clone().into(), ..Default::default() };
        let answered = tokio::time::timeout(Duration::from_secs(10), kv.delete_range(del)).await;
        exited = m.exit_status(Duration::from_millis(1));
        if exited.is_some() || answered.is_err() {
            break;
        }
    }
    let status = exited
        .or_else(|| m.exit_status(Duration::from_secs(30)))
        .unwrap_or_else(|| panic!("still running:\n{}", m.log_tail()));
    let log = m.log_text();
    assert_eq!(status.code(), Some(1), "exit {status:?} (signal {:?}):\n{log}", status.signal());
    assert!(log.contains("No space left on device") && log.contains("The disk is full"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    // 3. Space freed, the member starts again with every acknowledged put (a key it was
    // asked to delete may be gone: the delete may have reached the log before the stop).
    std::fs::remove_file(fs.0.join("filler")).unwrap();
    std::fs::remove_file(&ballast).unwrap();
    m.relaunch();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let all = loop {
        assert!(std::time::Instant::now() < deadline, "no answer after the restart:\n{}", m.log_tail());
        assert!(m.exit_status(Duration::from_millis(100)).is_none(), "exited:\n{}", m.log_tail());
        let endpoint = tonic::transport::Channel::from_shared(format!("http://{}", m.client_addr)).unwrap();
        let Ok(channel) = endpoint.connect().await else { continue };
        let mut kv = KvClient::new(channel).max_decoding_message_size(1 << 30);
        let r = kv.range(RangeRequest { key: b"key-".to_vec(), range_end: b"key.".to_vec(), ..Default::default() });
        match tokio::time::timeout(Duration::from_secs(5), r).await {
            Ok(Ok(r)) => break r.into_inner(),
            Ok(Err(e)) => eprintln!("range after the restart: {e}"),
            Err(_) => eprintln!("range after the restart: timed out"),
        }
    };
    let stored: BTreeMap<String, (i64, Vec<u8>)> =
        all.kvs.into_iter().map(|kv| (String::from_utf8(kv.key).unwrap(), (kv.mod_revision, kv.value))).collect();
    for (i, (key, rev)) in acked.iter().enumerate() {
        match stored.get(key) {
            Some((r, v)) => {
                assert_eq!(r, rev, "{key}");
                assert!(*v == value(i), "{key} has another value");
            }
            None => assert!(deleted.contains(key), "acknowledged {key} (revision {rev}) is lost"),
        }
    }
    // The alarm outlived the stop; with space back, disarming it lets writes in again.
    assert!(m.ctl(&["alarm", "list"]).contains("alarm:NOSPACE"));
    m.ctl(&["alarm", "disarm"]);
    assert_eq!(m.ctl(&["put", "after", "ok"]).trim(), "OK", "{}", m.log_tail());
    m.kill9();
}
