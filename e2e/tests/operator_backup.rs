//! Backups, restores and defragmentation by the operator, end to end on kube-sim with real
//! members, a real S3 server (moto 5.2.5) and kubectl: a 3-member CairnCluster with backups
//! and automatic defragmentation takes writes (the operator SIGKILLed and restarted in the
//! middle), defragments itself once fragmented, is deleted, and comes back from S3 as new
//! clusters — to the latest revision and to one in the middle — with every key at its
//! original revisions.

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest};
use cairn_api::proto::mvccpb::KeyValue;
use cairn_e2e::operator::Operator;
use cairn_e2e::s3::{Moto, ACCESS_KEY, SECRET_KEY};
use cairn_e2e::sim::KubeSim;
use serde_json::Value;
use std::time::{Duration, Instant};

const CRD: &str = include_str!("../../crds/cairnclusters.cairn.dev.yaml");
const BACKUP_CRD: &str = include_str!("../../crds/cairnbackups.cairn.dev.yaml");
const RESTORE_CRD: &str = include_str!("../../crds/cairnrestores.cairn.dev.yaml");
/// How far past the newest revision seen a restored cluster goes on (the operator's
/// BUMP_MARGIN).
const BUMP_MARGIN: i64 = 1_000_000;

fn wait_for(sim: &KubeSim, name: &str, within: Duration, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for_object(sim, "cc", name, within, what, check)
}

fn wait_for_object(
    sim: &KubeSim,
    kind: &str,
    name: &str,
    within: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let c = sim.get_json(&[kind, name]);
        if check(&c) {
            return c;
        }
        assert!(Instant::now() < deadline, "{name}: {what}: not within {within:?}; status: {}", c["status"]);
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn condition(c: &Value, kind: &str) -> Value {
    c["status"]["conditions"].as_array().into_iter().flatten().find(|x| x["type"] == kind).cloned().unwrap_or_default()
}

fn settled(c: &Value, n: usize) -> bool {
    let ms = c["status"]["members"].as_array().cloned().unwrap_or_default();
    c["status"]["phase"] == "Running"
        && ms.len() == n
        && ms.iter().all(|m| m["learner"] == false && m["healthy"] == true)
}

fn s3_yaml(moto: &Moto) -> String {
    format!(
        "{{bucket: backups, prefix: default/demo, endpoint: '{}', region: us-east-1, forcePathStyle: true, credentialsSecret: s3-creds}}",
        moto.endpoint
    )
}

struct Client {
    rt: tokio::runtime::Runtime,
    kv: KvClient<tonic::transport::Channel>,
}

impl Client {
    fn to(sim: &KubeSim, pod: &str) -> Client {
        let ip = sim.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]).stdout;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let kv = rt.block_on(async {
            let ch = tonic::transport::Channel::from_shared(format!("http://{ip}:2379")).unwrap();
            KvClient::new(ch.connect().await.expect("connect to the member"))
        });
        Client { rt, kv }
    }

    /// A client of `name`'s first member once the cluster has `n` healthy voters.
    fn to_when_settled(sim: &KubeSim, name: &str, n: usize) -> Client {
        wait_for(sim, name, Duration::from_secs(120), &format!("{n} healthy voters"), |c| settled(c, n));
        Client::to(sim, &format!("{name}-0"))
    }

    /// A put, retried while the cluster is between leaders (the operator's defragmentation
    /// moves leadership): "no leader" is answered before anything is proposed, so a retry
    /// never writes twice.
    fn put(&self, key: &str, value: Vec<u8>) -> i64 {
        let req = PutRequest { key: key.into(), value, ..Default::default() };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match self.rt.block_on(self.kv.clone().put(req.clone())) {
                Ok(r) => return r.into_inner().header.unwrap().revision,
                Err(s) if s.message() == "etcdserver: no leader" && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(s) => panic!("put {key}: {s:?}"),
            }
        }
    }

    fn all(&self, rev: i64) -> (Vec<KeyValue>, i64) {
        let req = RangeRequest { key: vec![0], range_end: vec![0], revision: rev, ..Default::default() };
        let r = self.rt.block_on(self.kv.clone().range(req)).unwrap().into_inner();
        (r.kvs, r.header.unwrap().revision)
    }

    /// Writes that leave most of the database free once deleted and compacted.
    fn fragment(&self) {
        for i in 0..600 {
            self.put(&format!("junk/{i:04}"), vec![b'j'; 20_000]);
        }
        let del = DeleteRangeRequest { key: b"junk/".to_vec(), range_end: b"junk0".to_vec(), ..Default::default() };
        let rev = self.rt.block_on(self.kv.clone().delete_range(del)).unwrap().into_inner().header.unwrap().revision;
        let compact = CompactionRequest { revision: rev, physical: true };
        self.rt.block_on(self.kv.clone().compact(compact)).unwrap();
    }
}

/// The CRDs served, and the Secret `s3-creds` with moto's test keys.
fn with_crds_and_keys(sim: &KubeSim) {
    sim.apply(CRD);
    sim.apply(BACKUP_CRD);
    sim.apply(RESTORE_CRD);
    sim.eventually(Duration::from_secs(10), "the CRDs are served", || sim.kubectl(&["get", "cc,cb,crs"]).success);
    let secret = sim.kubectl(&[
        "create",
        "secret",
        "generic",
        "s3-creds",
        &format!("--from-literal=accessKeyId={ACCESS_KEY}"),
        &format!("--from-literal=secretAccessKey={SECRET_KEY}"),
    ]);
    assert!(secret.success, "{}", secret.all());
}

#[test]
fn a_cluster_backed_up_to_s3_is_restored_at_its_revisions_and_stays_defragmented() {
    let sim = KubeSim::start(&[]);
    let moto = Moto::start(&sim.path().join("moto.log"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(moto.store("backups", "default/demo"));
    with_crds_and_keys(&sim);
    let mut operator = Operator::start(&sim, 1);
    sim.apply(&format!(
        "apiVersion: cairn.dev/v1alpha1\nkind: CairnCluster\nmetadata: {{name: demo}}\nspec:\n  replicas: 3\n  \
         backup: {{s3: {}, fullSchedule: '0 0 30 2 *', deltaInterval: 1s}}\n  \
         defrag: {{fragmentationThreshold: 0.5, minDbSize: 4Mi}}\n  storage: {{retentionPolicy: Delete}}\n",
        s3_yaml(&moto)
    ));
    wait_for(&sim, "demo", Duration::from_secs(120), "3 healthy voters, backed up", |c| {
        settled(c, 3) && condition(c, "BackupHealthy")["status"] == "True"
    });

    let client = Client::to(&sim, "demo-0");
    for i in 0..100 {
        client.put(&format!("k/{:02}", i % 40), format!("one-{i}").into());
    }
    let middle = client.put("marker", b"middle".to_vec());
    let backed_up = |rev: i64| move |c: &Value| c["status"]["lastBackup"]["deltaRevision"].as_i64().unwrap_or(0) >= rev;
    wait_for(&sim, "demo", Duration::from_secs(60), "backed up to the middle", backed_up(middle));
    // The operator dies with deltas in flight; a new one takes over the backups (and must
    // follow the watch from where the first stopped before the compaction below, or the
    // revisions in between would be a hole).
    let writes = std::thread::scope(|s| {
        let w = s.spawn(|| (0..100).map(|i| client.put(&format!("k/{:02}", i % 30), format!("two-{i}").into())).last());
        std::thread::sleep(Duration::from_millis(300));
        drop(operator);
        w.join().unwrap().unwrap()
    });
    operator = Operator::start(&sim, 2);
    wait_for(&sim, "demo", Duration::from_secs(60), "backed up again after the takeover", backed_up(writes));
    let want_middle = client.all(middle).0;
    client.fragment();
    let end = client.put("marker", b"end".to_vec());

    // Fragmented past the threshold: defragmented without anyone asking.
    let c = wait_for(&sim, "demo", Duration::from_secs(120), "defragmented", |c| !c["status"]["lastDefrag"].is_null());
    assert!(c["status"]["lastDefrag"]["reclaimedBytes"].as_i64().unwrap() > 4 << 20, "{}", c["status"]);
    // The operator records events.k8s.io/v1 Events (kube-sim keeps them apart from core/v1 ones).
    let events = sim.kubectl(&["get", "events.events.k8s.io", "-o", "json"]).stdout;
    assert!(events.contains("Defragmented"), "{events}");

    let c = wait_for(&sim, "demo", Duration::from_secs(120), "backed up to the end", backed_up(end));
    assert_eq!(condition(&c, "BackupHealthy")["status"], "True", "{}", c["status"]);
    assert!(c["status"]["lastBackup"]["fullRevision"].as_i64().unwrap() < middle);
    let want_end = client.all(end).0;
    drop(client);

    // The cluster goes; it comes back from S3, twice.
    assert!(sim.kubectl(&["delete", "cc", "demo", "--wait", "--timeout=60s"]).success);
    sim.eventually(Duration::from_secs(60), "demo's pods and claims are gone", || {
        sim.kubectl(&["get", "pods,pvc", "-o", "name"]).stdout.lines().all(|l| !l.contains("demo"))
    });
    let restores = [
        ("latest", 3, String::new(), end, &want_end),
        ("middle", 1, format!(", revision: {middle}"), middle, &want_middle),
    ];
    for (name, replicas, target, revision, want) in restores {
        sim.apply(&format!(
            "apiVersion: cairn.dev/v1alpha1\nkind: CairnCluster\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  \
             bootstrap: {{restore: {{s3: {}{target}}}}}\n",
            s3_yaml(&moto)
        ));
        wait_for(&sim, name, Duration::from_secs(120), "restored and healthy", |c| settled(c, replicas));
        for i in 0..replicas {
            let client = Client::to(&sim, &format!("{name}-{i}"));
            let (got, rev) = client.all(0);
            assert_eq!(rev, revision, "{name}-{i}'s revision");
            assert_eq!(&got, want, "{name}-{i} restored");
        }
    }
    drop(operator);
}

/// EKS's IRSA, played by moto's STS: the operator (its environment) and the restore init
/// container (the member pod's, through spec.pod.env) hold a web identity token and a role,
/// no key; moto refuses every S3 call not signed with credentials STS issued for that role.
#[test]
fn without_a_secret_backups_and_restores_use_the_default_credential_chain() {
    let sim = KubeSim::start(&[]);
    let moto = Moto::start(&sim.path().join("moto.log"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keyed = rt.block_on(moto.store("backups", "default/irsa"));
    let role = moto.web_identity_role("cairn-backups", "backups");
    let refused = rt.block_on(keyed.list("")).expect_err("moto checks credentials now");
    assert!(refused.to_string().contains("InvalidAccessKeyId"), "{refused}");

    let token = sim.path().join("token");
    std::fs::write(&token, "a-projected-service-account-token").unwrap();
    let token = token.to_str().unwrap();
    let aws = [
        ("AWS_ROLE_ARN", role.as_str()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token),
        ("AWS_ENDPOINT_URL_STS", moto.endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
    ];
    sim.apply(CRD);
    sim.eventually(Duration::from_secs(10), "the CRD is served", || sim.kubectl(&["get", "cc"]).success);
    let operator = Operator::start_with_env(&sim, 1, &aws);
    let s3 = format!("{{bucket: backups, prefix: default/irsa, endpoint: '{}', forcePathStyle: true}}", moto.endpoint);
    sim.apply(&format!(
        "apiVersion: cairn.dev/v1alpha1\nkind: CairnCluster\nmetadata: {{name: irsa}}\nspec:\n  replicas: 1\n  \
         backup: {{s3: {s3}, fullSchedule: '0 0 30 2 *', deltaInterval: 1s}}\n"
    ));
    let client = Client::to_when_settled(&sim, "irsa", 1);
    let last = (0..20).map(|i| client.put(&format!("k/{i:02}"), format!("v{i}").into())).last().unwrap();
    let c = wait_for(&sim, "irsa", Duration::from_secs(60), "backed up", |c| {
        c["status"]["lastBackup"]["deltaRevision"].as_i64().unwrap_or(0) >= last
    });
    assert_eq!(condition(&c, "BackupHealthy")["status"], "True", "{}", c["status"]);
    let want = client.all(last).0;
    drop(client);

    assert!(sim.kubectl(&["delete", "cc", "irsa", "--wait", "--timeout=60s"]).success);
    let env: Vec<String> = aws.iter().map(|(k, v)| format!("{{name: {k}, value: '{v}'}}")).collect();
    sim.apply(&format!(
        "apiVersion: cairn.dev/v1alpha1\nkind: CairnCluster\nmetadata: {{name: back}}\nspec:\n  replicas: 1\n  \
         bootstrap: {{restore: {{s3: {s3}}}}}\n  pod: {{env: [{}]}}\n",
        env.join(", ")
    ));
    let client = Client::to_when_settled(&sim, "back", 1);
    let (got, rev) = client.all(0);
    assert_eq!((rev, &got), (last, &want), "restored through the chain");
    drop(operator);
}

/// A CairnBackup: one full snapshot of a cluster without continuous backups, taken now, into
/// a location of its own; refused where nothing says where, or where a backup exists; kept
/// when the resource is deleted; restored into a new cluster at its revisions.
#[test]
fn a_cairn_backup_takes_a_full_snapshot_now_and_outlives_its_resource() {
    let sim = KubeSim::start(&[]);
    let moto = Moto::start(&sim.path().join("moto.log"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(moto.store("backups", "adhoc"));
    with_crds_and_keys(&sim);
    let _operator = Operator::start(&sim, 1);
    sim.apply("apiVersion: cairn.dev/v1alpha1\nkind: CairnCluster\nmetadata: {name: one}\nspec: {replicas: 1}\n");
    let client = Client::to_when_settled(&sim, "one", 1);
    let last = (0..30).map(|i| client.put(&format!("k/{:02}", i % 12), format!("v{i}").into())).last().unwrap();
    let want = client.all(last).0;

    let backup = |name: &str, s3: &str| {
        sim.apply(&format!(
            "apiVersion: cairn.dev/v1alpha1\nkind: CairnBackup\nmetadata: {{name: {name}}}\nspec: {{clusterName: one{s3}}}\n"
        ))
    };
    let done = |b: &Value| ["Completed", "Failed"].contains(&b["status"]["phase"].as_str().unwrap_or_default());
    backup("nowhere", "");
    let b = wait_for_object(&sim, "cb", "nowhere", Duration::from_secs(60), "refused", done);
    assert_eq!(b["status"]["phase"], "Failed", "{}", b["status"]);
    assert!(b["status"]["message"].as_str().unwrap().contains("no location"), "{}", b["status"]);

    let s3 = format!(
        ", s3: {{bucket: backups, prefix: adhoc/now, endpoint: '{}', forcePathStyle: true, credentialsSecret: s3-creds}}",
        moto.endpoint
    );
    backup("now", &s3);
    let b = wait_for_object(&sim, "cb", "now", Duration::from_secs(60), "taken", done);
    assert_eq!(b["status"]["phase"], "Completed", "{}", b["status"]);
    assert_eq!(b["status"]["revision"], last, "{}", b["status"]);
    assert!(b["status"]["size"].as_i64().unwrap() > 0, "{}", b["status"]);
    assert_eq!(b["status"]["location"], "s3://backups/adhoc/now", "{}", b["status"]);
    let table = sim.kubectl(&["get", "cb", "now"]).stdout;
    assert!(table.contains("Completed") && table.contains(&last.to_string()), "{table}");

    backup("again", &s3);
    let b = wait_for_object(&sim, "cb", "again", Duration::from_secs(60), "refused", done);
    assert_eq!(b["status"]["phase"], "Failed", "{}", b["status"]);
    assert!(b["status"]["message"].as_str().unwrap().contains("exists at s3://backups/adhoc/now"), "{}", b["status"]);

    assert!(sim.kubectl(&["delete", "cb", "now", "again", "--wait", "--timeout=30s"]).success);
    let kept = rt.block_on(store.list("now/")).unwrap();
    assert!(
        kept.iter().any(|k| k == "now/catalog.json") && kept.iter().any(|k| k.starts_with("now/full/")),
        "{kept:?}"
    );

    sim.apply(&format!(
        "apiVersion: cairn.dev/v1alpha1\nkind: CairnCluster\nmetadata: {{name: back}}\nspec:\n  replicas: 1\n  \
         bootstrap: {{restore: {{s3: {{bucket: backups, prefix: adhoc/now, endpoint: '{}', forcePathStyle: true, credentialsSecret: s3-creds}}}}}}\n",
        moto.endpoint
    ));
    let back = Client::to_when_settled(&sim, "back", 1);
    assert_eq!(back.all(0), (want, last), "restored from the on-demand backup");
}

/// kube-sim with the CRDs and `s3-creds` in a namespace enforcing the restricted Pod Security
/// level, moto with the bucket `backups`, and an operator.
fn with_bucket_and_operator() -> (KubeSim, Moto, Operator) {
    let sim = KubeSim::start(&[]);
    // Restore init containers too must pass the restricted Pod Security level.
    let out = sim.kubectl(&["label", "namespace", "default", "pod-security.kubernetes.io/enforce=restricted"]);
    assert!(out.success, "{}", out.all());
    let moto = Moto::start(&sim.path().join("moto.log"));
    tokio::runtime::Runtime::new().unwrap().block_on(moto.store("backups", ""));
    with_crds_and_keys(&sim);
    let operator = Operator::start(&sim, 1);
    (sim, moto, operator)
}

fn events(sim: &KubeSim) -> String {
    sim.kubectl(&["get", "events.events.k8s.io", "-o", "json"]).stdout
}

fn pod_uids(sim: &KubeSim) -> String {
    sim.kubectl(&["get", "pods", "-o", "jsonpath={.items[*].metadata.uid}"]).stdout
}

/// Every member of a backed-up cluster deleted with its claim: nothing is left to recover
/// from but S3. The operator rebuilds every member from the newest backup, keys at their
/// revisions, the revision counter moved past everything seen, and backups go on.
#[test]
fn every_member_lost_with_its_data_is_rebuilt_from_the_backup() {
    let (sim, moto, _operator) = with_bucket_and_operator();
    sim.apply(&format!(
        "apiVersion: cairn.dev/v1alpha1\nkind: CairnCluster\nmetadata: {{name: demo}}\nspec:\n  replicas: 3\n  \
         backup: {{s3: {}, fullSchedule: '@daily', deltaInterval: 1s}}\n",
        s3_yaml(&moto)
    ));
    let client = Client::to_when_settled(&sim, "demo", 3);
    for i in 0..40 {
        client.put(&format!("k/{:02}", i % 15), format!("v{i}").into());
    }
    let del = DeleteRangeRequest { key: b"k/03".to_vec(), ..Default::default() };
    client.rt.block_on(client.kv.clone().delete_range(del)).unwrap();
    let last = client.put("k/last", b"x".to_vec());
    let want = client.all(last).0;
    let backed_up = |c: &Value| {
        let b = &c["status"]["lastBackup"];
        b["deltaRevision"].as_i64().max(b["fullRevision"].as_i64()).unwrap_or(0) >= last
    };
    wait_for(&sim, "demo", Duration::from_secs(60), "the writes backed up", backed_up);
    drop(client);

    assert!(sim.kubectl(&["delete", "pod,pvc", "demo-0", "demo-1", "demo-2", "--wait=false"]).success);
    let c = wait_for(&sim, "demo", Duration::from_secs(300), "rebuilt to 3 members", |c| {
        settled(c, 3) && c["status"]["lastRestore"]["completed"].is_string()
    });
    let restored = &c["status"]["lastRestore"];
    assert!(restored["requestedBy"].is_null(), "{restored}");
    assert_eq!(restored["revision"], last, "{restored}");
    assert!(c["status"]["restore"].is_null(), "{}", c["status"]);
    let client = Client::to(&sim, "demo-0");
    let (got, rev) = client.all(0);
    assert_eq!(got, want, "every key at its revisions");
    assert!(rev >= last + BUMP_MARGIN, "the revision goes on past every one seen: {rev}");
    let events = events(&sim);
    assert!(events.contains("QuorumLost") && events.contains("rebuilt from the newest backup"), "{events}");
    assert!(events.contains("RestoreCompleted"), "{events}");

    // Backups go on from the rebuilt cluster (a new full snapshot: the revisions skipped are
    // compacted).
    let after = client.put("k/after", b"y".to_vec());
    wait_for(&sim, "demo", Duration::from_secs(60), "backups resumed", |c| {
        c["status"]["lastBackup"]["deltaRevision"].as_i64().max(c["status"]["lastBackup"]["fullRevision"].as_i64())
            >= Some(after)
    });
}

/// A CairnRestore takes a running cluster back to what a CairnBackup took: every member
/// stopped, restored and started, every key as at the backup's revision. A revision the
/// backup does not hold is refused before anything is stopped.
#[test]
fn a_cairn_restore_takes_a_cluster_back_to_a_backup_and_refuses_what_it_lacks() {
    let (sim, moto, _operator) = with_bucket_and_operator();
    sim.apply("apiVersion: cairn.dev/v1alpha1\nkind: CairnCluster\nmetadata: {name: one}\nspec: {replicas: 3}\n");
    let client = Client::to_when_settled(&sim, "one", 3);
    let taken = (0..30).map(|i| client.put(&format!("k/{:02}", i % 12), format!("v{i}").into())).last().unwrap();
    let want = client.all(taken).0;
    sim.apply(&format!(
        "apiVersion: cairn.dev/v1alpha1\nkind: CairnBackup\nmetadata: {{name: snap}}\nspec: {{clusterName: one, \
         s3: {{bucket: backups, prefix: one/snap, endpoint: '{}', forcePathStyle: true, credentialsSecret: s3-creds}}}}\n",
        moto.endpoint
    ));
    let done = |b: &Value| ["Completed", "Failed"].contains(&b["status"]["phase"].as_str().unwrap_or_default());
    let b = wait_for_object(&sim, "cb", "snap", Duration::from_secs(60), "taken", done);
    assert_eq!((b["status"]["phase"].as_str(), b["status"]["revision"].as_i64()), (Some("Completed"), Some(taken)));
    // What comes after the backup: changed, deleted and new keys.
    for i in 0..10 {
        client.put(&format!("k/{:02}", i), b"later".to_vec());
    }
    let del = DeleteRangeRequest { key: b"k/11".to_vec(), ..Default::default() };
    client.rt.block_on(client.kv.clone().delete_range(del)).unwrap();
    let now = client.put("new", b"later".to_vec());

    let restore = |name: &str, more: &str| {
        sim.apply(&format!(
            "apiVersion: cairn.dev/v1alpha1\nkind: CairnRestore\nmetadata: {{name: {name}}}\n\
             spec: {{clusterName: one, backupName: snap{more}}}\n"
        ))
    };
    let uids = pod_uids(&sim);
    restore("too-far", &format!(", revision: {}", taken + 5));
    let r = wait_for_object(&sim, "crs", "too-far", Duration::from_secs(60), "refused", done);
    assert_eq!(r["status"]["phase"], "Failed", "{}", r["status"]);
    let message = r["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("refused before anything was stopped") && message.contains("is not backed up"),
        "{message}"
    );
    assert_eq!(pod_uids(&sim), uids, "no member was stopped");
    assert_eq!(client.all(0).1, now, "the cluster serves on, untouched");

    restore("back", "");
    let r = wait_for_object(&sim, "crs", "back", Duration::from_secs(300), "restored", done);
    assert_eq!(r["status"]["phase"], "Completed", "{}", r["status"]);
    assert_eq!(r["status"]["revision"], taken, "{}", r["status"]);
    let table = sim.kubectl(&["get", "crs", "back"]).stdout;
    assert!(table.contains("Completed") && table.contains(&taken.to_string()), "{table}");
    assert_ne!(pod_uids(&sim), uids, "every member was restarted");
    let c = wait_for(&sim, "one", Duration::from_secs(60), "3 healthy voters", |c| settled(c, 3));
    assert_eq!(c["status"]["lastRestore"]["requestedBy"], "back", "{}", c["status"]);
    for m in ["one-0", "one-1", "one-2"] {
        let (got, rev) = Client::to(&sim, m).all(0);
        assert_eq!(got, want, "{m}: every key as at revision {taken}");
        assert!(rev >= now + BUMP_MARGIN, "{m}: revisions go on past {now}: {rev}");
    }
    let events = events(&sim);
    assert!(events.contains("RestoreStarted") && events.contains("RestoreCompleted"), "{events}");
}
