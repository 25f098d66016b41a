//! Backups to a real S3 server (moto 5.2.5) from a real member, written by the operator's
//! backup writer while a workload runs, and restored by `cairn restore` into a new member:
//! every key, value, create/mod revision, version and lease compared with what the source
//! served at the same revision, to the latest revision and to one in the middle.

use cairn_api::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::lease_client::LeaseClient;
use cairn_api::proto::etcdserverpb::request_op::Request;
use cairn_api::proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use cairn_api::proto::mvccpb::KeyValue;
use cairn_backup::catalog::{full_key, Catalog, DeltaName, Target, CATALOG, DELTA_DIR};
use cairn_backup::s3::Store;
use cairn_e2e::harness::{cairn_bin, Kind, Member};
use cairn_e2e::s3::{Moto, ACCESS_KEY, SECRET_KEY};
use cairn_operator::backup::cron::Schedule;
use cairn_operator::backup::writer::{Progress, Writer, WriterConfig};
use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const BUCKET: &str = "backups";
const PREFIX: &str = "default/demo";

struct Rig {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    moto: Moto,
    source: Member,
    store: Store,
    progress: Arc<Mutex<Progress>>,
    writer: Option<tokio::task::JoinHandle<()>>,
    kv: KvClient<Channel>,
    restores: usize,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let moto = Moto::start(&dir.path().join("moto.log"));
        let source = Member::start(Kind::Cairn, &dir.path().join("source"), &[]);
        let store = rt.block_on(moto.store(BUCKET, PREFIX));
        let kv = rt.block_on(async { KvClient::new(source.channel().await) });
        Rig { dir, rt, moto, source, store, progress: Default::default(), writer: None, kv, restores: 0 }
    }

    fn start_writer(&mut self, delta_interval: Duration) {
        // Never (there is no 30 February): the only fulls are the ones a session needs.
        self.start_writer_with(WriterConfig {
            schedule: Schedule::parse("0 0 30 2 *").unwrap(),
            delta_interval,
            keep: 7,
            max_age: None,
        });
    }

    fn start_writer_with(&mut self, cfg: WriterConfig) {
        let writer = self.writer_of(&self.source.client_addr, cfg, self.progress.clone());
        *self.progress.lock().unwrap() = Progress::default();
        self.writer = Some(self.rt.spawn(writer.run()));
    }

    /// A writer of the rig's backups reading from `endpoint`.
    fn writer_of(&self, endpoint: &str, cfg: WriterConfig, progress: Arc<Mutex<Progress>>) -> Writer {
        let endpoint = endpoint.to_string();
        Writer { store: self.store.clone(), endpoints: Arc::new(move || vec![endpoint.clone()]), cfg, progress }
    }

    /// Stops the writer wherever it is, an upload in flight or not (as a SIGKILL would).
    fn kill_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.abort();
            let _ = self.rt.block_on(w);
        }
    }

    fn progress(&self) -> Progress {
        self.progress.lock().unwrap().clone()
    }

    fn wait_backed_up(&self, rev: i64) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let p = self.progress();
            if p.head.unwrap_or(0) >= rev {
                return;
            }
            assert!(Instant::now() < deadline, "revision {rev} not backed up in 90 s: {p:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn put(&self, key: &str, value: &str, lease: i64) -> i64 {
        let req = PutRequest { key: key.into(), value: value.into(), lease, ..Default::default() };
        let resp = self.rt.block_on(self.kv.clone().put(req)).unwrap().into_inner();
        resp.header.unwrap().revision
    }

    fn delete(&self, key: &str) -> i64 {
        let req = DeleteRangeRequest { key: key.into(), ..Default::default() };
        self.rt.block_on(self.kv.clone().delete_range(req)).unwrap().into_inner().header.unwrap().revision
    }

    /// Several puts in one revision, when `guard` has never been written.
    fn txn(&self, guard: &str, keys: &[&str], value: &str) -> i64 {
        let compare = Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Version as i32,
            key: guard.into(),
            target_union: Some(TargetUnion::Version(0)),
            ..Default::default()
        };
        let success = keys
            .iter()
            .map(|k| RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: (*k).into(),
                    value: value.into(),
                    ..Default::default()
                })),
            })
            .collect();
        let req = TxnRequest { compare: vec![compare], success, failure: vec![] };
        self.rt.block_on(self.kv.clone().txn(req)).unwrap().into_inner().header.unwrap().revision
    }

    fn grant(&self) -> i64 {
        let mut lease = self.rt.block_on(async { LeaseClient::new(self.source.channel().await) });
        let req = LeaseGrantRequest { ttl: 3600, id: 0 };
        self.rt.block_on(lease.lease_grant(req)).unwrap().into_inner().id
    }

    fn compact(&self, rev: i64) {
        let req = CompactionRequest { revision: rev, physical: true };
        self.rt.block_on(self.kv.clone().compact(req)).unwrap();
    }

    /// A workload of `n` changes: overwrites, deletions, multi-key transactions; the revision
    /// after it.
    fn workload(&self, tag: &str, n: usize) -> i64 {
        let mut rev = 0;
        for i in 0..n {
            let key = format!("k{:03}", i % 37);
            rev = match i % 10 {
                3 => self.delete(&format!("k{:03}", (i + 5) % 37)),
                7 => {
                    let keys = [format!("t/{tag}/{i}/a"), format!("t/{tag}/{i}/b"), format!("t/{tag}/{i}/c")];
                    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                    self.txn(&format!("guard/{tag}/{i}"), &keys, &format!("{tag}-{i}"))
                }
                _ => self.put(&key, &format!("{tag}-{i}-{}", "x".repeat(i % 50)), 0),
            };
        }
        rev
    }

    /// Every key the source holds at `rev`.
    fn keys_at(&self, kv: &KvClient<Channel>, rev: i64) -> (Vec<KeyValue>, i64) {
        let req = RangeRequest { key: vec![0], range_end: vec![0], revision: rev, ..Default::default() };
        let resp = self.rt.block_on(kv.clone().range(req)).unwrap().into_inner();
        (resp.kvs, resp.header.unwrap().revision)
    }

    /// Runs `cairn restore` with `args` into a new member; starts it if the restore worked.
    fn restore(&mut self, args: &[&str]) -> Result<Member, String> {
        self.restores += 1;
        let dir = self.dir.path().join(format!("restored-{}", self.restores));
        let mut m = Member::plan_cluster(Kind::Cairn, &dir, &["127.0.0.1"], &[]).remove(0);
        let out = Command::new(cairn_bin())
            .arg("restore")
            .args(["--s3-bucket", BUCKET, "--s3-prefix", PREFIX, "--s3-endpoint", &self.moto.endpoint])
            .arg("--s3-force-path-style")
            .args(["--name", &m.name(), "--data-dir", &m.data_dir.display().to_string()])
            .args(["--initial-cluster", &m.initial_cluster(), "--initial-cluster-token", "e2e-cluster"])
            .args(["--initial-advertise-peer-urls", &m.peer_url])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .output()
            .expect("run cairn restore");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            assert!(!m.data_dir.exists(), "a failed restore left {} behind", m.data_dir.display());
            return Err(stderr);
        }
        Member::start_all(std::slice::from_mut(&mut m));
        Ok(m)
    }

    /// What `cairn restore --list` prints of the backup.
    fn list(&self) -> String {
        let out = Command::new(cairn_bin())
            .args([
                "restore",
                "--list",
                "--s3-bucket",
                BUCKET,
                "--s3-prefix",
                PREFIX,
                "--s3-endpoint",
                &self.moto.endpoint,
            ])
            .arg("--s3-force-path-style")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .output()
            .expect("run cairn restore --list");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a restore that must fail; what it said.
    fn restore_fails(&mut self, args: &[&str]) -> String {
        match self.restore(args) {
            Ok(m) => panic!("the restore {args:?} worked, into {}", m.data_dir.display()),
            Err(e) => e,
        }
    }

    fn catalog(&self) -> (Catalog, Vec<DeltaName>) {
        self.rt.block_on(async {
            let (bytes, _) = self.store.get(CATALOG).await.unwrap().expect("a catalog");
            let names = self.store.list(DELTA_DIR).await.unwrap();
            (serde_json::from_slice(&bytes).unwrap(), names.iter().filter_map(|k| DeltaName::parse(k)).collect())
        })
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.kill_writer();
    }
}

/// What a restore must serve: the source's keys, where a lease granted after the full
/// snapshot is dropped (it is in no backup: leases are not keys).
fn expected(kvs: &[KeyValue], leases_in_snapshot: &HashSet<i64>) -> Vec<KeyValue> {
    kvs.iter()
        .map(|kv| KeyValue { lease: if leases_in_snapshot.contains(&kv.lease) { kv.lease } else { 0 }, ..kv.clone() })
        .collect()
}

fn assert_contiguous(deltas: &[DeltaName], from: i64) {
    let mut next = from;
    for d in deltas {
        assert!(d.from <= next && d.to >= next, "a hole or overlap at revision {next}: {deltas:?}");
        next = d.to + 1;
    }
}

#[test]
fn restores_the_latest_and_a_middle_revision_with_every_revision_kept() {
    let mut rig = Rig::new();
    let early_lease = rig.grant();
    rig.put("leased/early", "1", early_lease);
    let before = rig.workload("before", 30);
    rig.start_writer(Duration::from_millis(300));
    rig.wait_backed_up(before);

    let late_lease = rig.grant();
    rig.put("leased/late", "2", late_lease);
    rig.put("leased/early-again", "3", early_lease);
    let middle = rig.workload("one", 150);
    // Everything up to `middle` arrived before this time; everything after, after it.
    rig.wait_backed_up(middle);
    let at = cairn_backup::time::now_ms();
    // The next change must arrive in a later millisecond than the one named.
    while cairn_backup::time::now_ms() <= at {
        std::thread::yield_now();
    }
    let middle_time = cairn_backup::time::format_ms(at);
    rig.delete("leased/early");
    let end = rig.workload("two", 150);
    rig.wait_backed_up(end);

    let (catalog, deltas) = rig.catalog();
    assert_eq!(catalog.fulls.len(), 1, "{catalog:?}");
    let full = catalog.fulls[0].revision;
    assert!(full >= before && full < middle, "the full snapshot's own revision {full}");
    let plan = catalog.plan(&deltas, Target::Latest).unwrap();
    assert_eq!(plan.reaches, end);
    assert_contiguous(&plan.deltas, full + 1);

    let leases: HashSet<i64> = [0, early_lease].into();
    let source = rig.kv.clone();
    let targets = [
        (middle, vec!["--revision".to_string(), middle.to_string()]),
        (middle, vec!["--time".to_string(), middle_time]),
        (end, vec![]),
    ];
    for (target, args) in targets {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let restored = rig.restore(&args).unwrap_or_else(|e| panic!("restore to {target}: {e}"));
        let kv = rig.rt.block_on(async { KvClient::new(restored.channel().await) });
        let (want, _) = rig.keys_at(&source, target);
        let (got, rev) = rig.keys_at(&kv, 0);
        assert_eq!(rev, target, "the restored member's revision");
        assert_eq!(got.len(), want.len());
        assert_eq!(got, expected(&want, &leases), "restored to {target}");
        // The replayed history is there too.
        let (want_past, _) = rig.keys_at(&source, target - 7);
        assert_eq!(rig.keys_at(&kv, target - 7).0, expected(&want_past, &leases), "history at {}", target - 7);
        // And it goes on from where the source was.
        let req = PutRequest { key: b"after".to_vec(), value: b"restore".to_vec(), ..Default::default() };
        let rev_after = rig.rt.block_on(kv.clone().put(req)).unwrap().into_inner().header.unwrap().revision;
        assert_eq!(rev_after, target + 1);
    }

    // A revision before the full snapshot, or past the newest backed up, is refused.
    let err = rig.restore_fails(&["--revision", &(full - 1).to_string()]);
    assert!(err.contains(&format!("no full snapshot at or before revision {}", full - 1)), "{err}");
    let err = rig.restore_fails(&["--revision", &(end + 5).to_string()]);
    assert!(err.contains(&format!("revision {} is not backed up", end + 5)), "{err}");

    // A cluster restored to the middle, pointed at the same backups, is refused: its next
    // revisions would be other changes than the ones backed up under those numbers.
    rig.kill_writer();
    let behind = rig.restore(&["--revision", &middle.to_string()]).unwrap();
    let progress = Arc::new(Mutex::new(Progress::default()));
    let cfg = WriterConfig {
        schedule: Schedule::parse("0 0 30 2 *").unwrap(),
        delta_interval: Duration::from_millis(300),
        keep: 7,
        max_age: None,
    };
    let writer = rig.rt.spawn(rig.writer_of(&behind.client_addr, cfg, progress.clone()).run());
    let deadline = Instant::now() + Duration::from_secs(30);
    while progress.lock().unwrap().last_error.is_none() {
        assert!(Instant::now() < deadline, "the writer of a cluster behind the backups went on");
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.abort();
    let err = progress.lock().unwrap().last_error.clone().unwrap();
    assert!(err.contains(&format!("the cluster is at revision {middle}, behind revision {end}")), "{err}");
    assert_eq!(rig.catalog().0.generation(), 1, "it recorded no generation");

    // A corrupted delta, then a missing one: the restore stops and names it.
    let victim = plan.deltas[plan.deltas.len() / 2].key();
    let (mut bytes, _) = rig.rt.block_on(rig.store.get(&victim)).unwrap().unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x40;
    rig.rt.block_on(rig.store.put(&victim, bytes)).unwrap();
    let err = rig.restore_fails(&[]);
    assert!(err.contains(&victim) && err.contains("checksum mismatch"), "{err}");
    rig.rt.block_on(rig.store.delete(&victim)).unwrap();
    let err = rig.restore_fails(&[]);
    let lost = DeltaName::parse(&victim).unwrap();
    assert!(err.contains(&format!("no delta object holds revision {}", lost.from)), "{err}");
}

/// The writer stopped dead again and again while writes go on and deltas are in flight
/// (every 50 ms): each new writer resumes from the catalog's head, under a new generation,
/// and what the killed ones uploaded without committing never counts.
#[test]
fn a_writer_killed_mid_upload_leaves_no_gap_and_no_duplicate() {
    let mut rig = Rig::new();
    rig.workload("before", 20);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writes = {
        let (kv, stop) = (rig.kv.clone(), stop.clone());
        let handle = rig.rt.handle().clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let req = PutRequest {
                    key: format!("w{}", n % 50).into(),
                    value: format!("{n}").into(),
                    ..Default::default()
                };
                handle.block_on(kv.clone().put(req)).unwrap();
                n += 1;
            }
            n
        })
    };
    let mut kills = 0;
    while kills < 8 {
        rig.start_writer(Duration::from_millis(50));
        // Let it get going (its first delta committed), then kill it at a random moment.
        let deadline = Instant::now() + Duration::from_secs(60);
        while rig.progress().deltas == 0 {
            assert!(Instant::now() < deadline, "no delta from writer {kills}: {:?}", rig.progress());
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(rand::random::<u64>() % 300));
        rig.kill_writer();
        kills += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writes.join().unwrap();
    let (_, end) = rig.keys_at(&rig.kv, 0);
    // An unfinished upload of a fenced generation: the next writer gives its parts back.
    let stale = full_key(1, 1);
    let mut upload = rig.rt.block_on(rig.store.multipart(&stale)).unwrap();
    rig.rt.block_on(upload.part(vec![7; 1024])).unwrap();
    rig.start_writer(Duration::from_millis(50));
    rig.wait_backed_up(end);
    let unfinished = rig.rt.block_on(rig.store.uploads("full/")).unwrap();
    assert!(unfinished.iter().all(|(name, _)| name != &stale), "{unfinished:?}");

    let (catalog, deltas) = rig.catalog();
    assert_eq!(catalog.generation(), 9, "a generation per writer");
    assert_eq!(catalog.fulls.len(), 1, "only the first writer needed a full snapshot");
    let plan = catalog.plan(&deltas, Target::Latest).unwrap();
    assert_eq!(plan.reaches, end);
    assert_contiguous(&plan.deltas, catalog.fulls[0].revision + 1);
    let overlapping = plan.deltas.windows(2).filter(|w| w[1].from != w[0].to + 1).count();
    assert_eq!(overlapping, 0, "{:?}", plan.deltas);

    let restored = rig.restore(&[]).unwrap();
    let kv = rig.rt.block_on(async { KvClient::new(restored.channel().await) });
    let (want, _) = rig.keys_at(&rig.kv, end);
    let (got, rev) = rig.keys_at(&kv, 0);
    assert_eq!(rev, end);
    assert_eq!(got, want, "after {written} writes and {kills} kills");
}

/// The source compacted past what the writer had backed up while no writer ran: the next
/// writer cannot watch from its head, so it takes a full snapshot and goes on from there. The
/// revisions in between are not in the backup, and a restore into them says so.
#[test]
fn a_compacted_start_takes_a_new_full_snapshot() {
    let mut rig = Rig::new();
    rig.start_writer(Duration::from_millis(200));
    let backed = rig.workload("one", 40);
    rig.wait_backed_up(backed);
    rig.kill_writer();
    let unseen = rig.workload("two", 40);
    rig.compact(unseen);
    let end = rig.workload("three", 40);
    rig.start_writer(Duration::from_millis(200));
    rig.wait_backed_up(end);

    let (catalog, deltas) = rig.catalog();
    assert_eq!(catalog.fulls.len(), 2, "{catalog:?}");
    let second = &catalog.fulls[1];
    assert!(second.restart && second.revision >= unseen && second.revision <= end, "{second:?}");
    let notes = rig.progress().notes;
    assert!(notes.iter().any(|(reason, _)| *reason == "BackupCompacted"), "{notes:?}");
    // What a restore by hand can be given: both fulls, the second after a hole, and the head.
    let listed = rig.list();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 4, "{listed}");
    assert!(
        lines[1].trim_start().starts_with(&catalog.fulls[0].revision.to_string()) && !lines[1].contains("hole"),
        "{listed}"
    );
    assert!(lines[2].trim_start().starts_with(&second.revision.to_string()) && lines[2].contains("a hole"), "{listed}");
    assert!(lines[3].starts_with(&format!("backed up through revision {end} ")), "{listed}");

    let restored = rig.restore(&[]).unwrap();
    let kv = rig.rt.block_on(async { KvClient::new(restored.channel().await) });
    assert_eq!(rig.keys_at(&kv, 0), rig.keys_at(&rig.kv, end));
    // Before the hole: fine. In it: refused, not restored around.
    let restored = rig.restore(&["--revision", &backed.to_string()]).unwrap();
    let kv = rig.rt.block_on(async { KvClient::new(restored.channel().await) });
    assert_eq!(rig.keys_at(&kv, 0).1, backed);
    let err = rig.restore_fails(&["--revision", &(backed + 3).to_string()]);
    assert!(err.contains(&format!("revision {} is not backed up", backed + 3)), "{err}");
    assert_eq!(deltas.iter().filter(|d| catalog.delta_is_valid(d) && d.from <= unseen && d.to > backed).count(), 0);
}

/// Full snapshots on the schedule (every minute here) while deltas keep flowing, and
/// retention keeping one: the older fulls and the deltas only they needed go, what the kept
/// one needs stays, and a restore before the kept full is refused.
#[test]
fn scheduled_fulls_and_retention() {
    let mut rig = Rig::new();
    rig.start_writer_with(WriterConfig {
        schedule: Schedule::parse("* * * * *").unwrap(),
        delta_interval: Duration::from_millis(200),
        keep: 1,
        max_age: None,
    });
    let first = rig.workload("one", 30);
    rig.wait_backed_up(first);
    let backed_at = cairn_backup::time::now_ms();
    let deadline = Instant::now() + Duration::from_secs(200);
    let mut n = 0;
    // Writes go on until a scheduled full taken after `first` was in S3 is in (the next
    // minute or the one after).
    while rig.progress().full_unix_ms.unwrap_or(0) <= backed_at {
        assert!(Instant::now() < deadline, "no scheduled full: {:?}", rig.progress());
        rig.put(&format!("steady/{}", n % 10), &n.to_string(), 0);
        n += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let end = rig.workload("two", 30);
    rig.wait_backed_up(end);

    let (catalog, deltas) = rig.catalog();
    assert_eq!(catalog.fulls.len(), 1, "retention keeps one full: {catalog:?}");
    let kept = &catalog.fulls[0];
    assert!(!kept.restart && kept.revision >= first && kept.unix_ms > backed_at, "{kept:?}");
    let listed = rig.rt.block_on(rig.store.list("full/")).unwrap();
    assert_eq!(listed, vec![kept.key.clone()], "the dropped full's object is gone");
    // Every delta committed before the kept full was taken, and needed only by the dropped
    // ones, is gone (one committed while it uploaded goes at the next full's retention).
    assert!(deltas.iter().all(|d| d.to > first), "deltas only the dropped full needed are gone: {deltas:?}");
    assert_contiguous(&catalog.plan(&deltas, Target::Latest).unwrap().deltas, kept.revision + 1);

    let restored = rig.restore(&[]).unwrap();
    let kv = rig.rt.block_on(async { KvClient::new(restored.channel().await) });
    assert_eq!(rig.keys_at(&kv, 0), rig.keys_at(&rig.kv, end));
    let err = rig.restore_fails(&["--revision", &first.to_string()]);
    assert!(err.contains("no full snapshot at or before revision"), "{err}");
}
