//! The operator end to end on kube-sim, with the real `cairn-operator`, real `cairn` members
//! and kubectl: a 1-member cluster comes up; data written survives everything that follows;
//! it scales 1 → 3 → 5 (each new member seen as a learner before its promotion) → 3; 4 replicas
//! are refused; a member whose pod and claim are deleted is replaced; two operators run, one
//! acts (it holds the Lease), and when it is killed in the middle of a scale-up the other
//! finishes it; metrics report the cluster; deleting the cluster deletes all it owns.

use cairn_e2e::harness::etcdctl;
use cairn_e2e::operator::Operator;
use cairn_e2e::sim::KubeSim;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

const CRD: &str = include_str!("../../crds/cairnclusters.cairn.dev.yaml");

fn cluster(sim: &KubeSim) -> Value {
    sim.get_json(&["cc", "demo"])
}

/// (name, learner, healthy) of each member, sorted by name.
fn members(c: &Value) -> Vec<(String, bool, bool)> {
    let mut m: Vec<(String, bool, bool)> = c["status"]["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| (m["name"].as_str().unwrap_or_default().to_string(), m["learner"] == true, m["healthy"] == true))
        .collect();
    m.sort();
    m
}

fn settled(c: &Value, n: usize) -> bool {
    let m = members(c);
    c["status"]["phase"] == "Running" && m.len() == n && m.iter().all(|(_, learner, healthy)| !learner && *healthy)
}

fn wait_for(sim: &KubeSim, within: Duration, what: &str, mut check: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let c = cluster(sim);
        if check(&c) {
            return c;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}; status: {}", c["status"]);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pod_ip(sim: &KubeSim, pod: &str) -> String {
    sim.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]).stdout
}

fn ctl(endpoint: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let o = etcdctl(endpoint, &args, None);
    format!("{}{}", o.stdout, o.errors)
}

/// The member list at a member's pod IP: (name, learner) sorted.
fn member_list(sim: &KubeSim, via: &str) -> Vec<(String, bool)> {
    let out = ctl(&format!("{}:2379", pod_ip(sim, via)), &["member", "list"]);
    let mut v: Vec<(String, bool)> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            (f[2].to_string(), f[5].trim() == "true")
        })
        .collect();
    v.sort();
    v
}

fn data_intact(sim: &KubeSim, via: &str) {
    let got = ctl(&format!("{}:2379", pod_ip(sim, via)), &["get", "survivor", "--print-value-only"]);
    assert_eq!(got, "kept\n", "the data written at the start");
}

fn scale(sim: &KubeSim, n: usize) {
    let out =
        sim.kubectl(&["patch", "cc", "demo", "--type", "merge", "-p", &format!(r#"{{"spec":{{"replicas":{n}}}}}"#)]);
    assert!(out.success, "{}", out.all());
}

#[test]
fn a_cluster_comes_up_scales_through_learners_recovers_members_and_survives_the_operators_crash() {
    let sim = KubeSim::start(&[]);
    sim.apply(CRD);
    sim.eventually(Duration::from_secs(10), "the CRD is served", || sim.kubectl(&["get", "cc"]).success);
    let mut operators = [Operator::start(&sim, 1), Operator::start(&sim, 2)];
    sim.apply(
        "apiVersion: cairn.dev/v1alpha1\nkind: CairnCluster\nmetadata: {name: demo}\n\
         spec: {replicas: 1, storage: {retentionPolicy: Delete}}\n",
    );
    let c = wait_for(&sim, Duration::from_secs(90), "1 healthy voter", |c| settled(c, 1));
    let available =
        c["status"]["conditions"].as_array().unwrap().iter().find(|x| x["type"] == "Available").unwrap().clone();
    assert_eq!(available["status"], "True");
    assert_eq!(ctl(&format!("{}:2379", pod_ip(&sim, "demo-0")), &["put", "survivor", "kept"]), "OK\n");

    // 1 -> 3 -> 5: each new member is a learner before it is a voter.
    for (n, new) in [(3, ["demo-1", "demo-2"]), (5, ["demo-3", "demo-4"])] {
        scale(&sim, n);
        let mut learners = std::collections::BTreeSet::new();
        wait_for(&sim, Duration::from_secs(120), &format!("{n} healthy voters"), |c| {
            for (name, learner, _) in members(c) {
                if learner {
                    learners.insert(name);
                }
            }
            settled(c, n)
        });
        assert_eq!(learners.into_iter().collect::<Vec<_>>(), new, "the new members joined as learners");
        assert_eq!(member_list(&sim, "demo-0").len(), n);
        data_intact(&sim, new[1]);
    }

    // 4 is refused by the API server, and nothing changes.
    let out = sim.kubectl(&["patch", "cc", "demo", "--type", "merge", "-p", r#"{"spec":{"replicas":4}}"#]);
    assert!(!out.success && out.stderr.contains("replicas must be odd"), "{}", out.all());

    // 5 -> 3: the highest members go, with their pods and claims.
    scale(&sim, 3);
    wait_for(&sim, Duration::from_secs(90), "3 healthy voters again", |c| settled(c, 3));
    sim.eventually(Duration::from_secs(30), "the removed members' pods and claims are gone", || {
        let pods = sim.kubectl(&["get", "pods,pvc", "-o", "name"]).stdout;
        !pods.contains("demo-3") && !pods.contains("demo-4")
    });
    assert_eq!(member_list(&sim, "demo-0").len(), 3);
    data_intact(&sim, "demo-2");

    // A member that loses its pod and its claim is replaced: a new member under its name.
    let old_id = members_by_id(&cluster(&sim), "demo-1");
    assert!(sim.kubectl(&["delete", "pod", "demo-1", "--wait=false"]).success);
    assert!(sim.kubectl(&["delete", "pvc", "demo-1", "--wait=false"]).success);
    let c = wait_for(&sim, Duration::from_secs(120), "demo-1 replaced", |c| {
        settled(c, 3) && members_by_id(c, "demo-1").is_some_and(|id| Some(id.clone()) != old_id)
    });
    assert_eq!(members(&c).len(), 3);
    data_intact(&sim, "demo-1");

    // One operator holds the Lease and reports the cluster.
    let holder = sim.kubectl(&["get", "lease", "cairn-operator", "-o", "jsonpath={.spec.holderIdentity}"]).stdout;
    let leading = operators.iter().position(|o| o.identity() == holder).expect("one of the two holds the lease");
    let text = operators[leading].metrics();
    assert!(text.contains(r#"cairn_cluster_available{namespace="default",cluster="demo"} 1"#), "{text}");
    assert!(text.contains(r#"cairn_operator_membership_changes_total{reason="MemberPromoted"}"#), "{text}");
    let other = operators[1 - leading].metrics();
    assert!(other.contains("\ncairn_operator_reconciles_total 0\n"), "the other one never acted:\n{other}");

    // The acting operator dies in the middle of a scale-up; the other takes the Lease over and
    // finishes it.
    scale(&sim, 5);
    wait_for(&sim, Duration::from_secs(60), "a scale-up under way", |c| !c["status"]["change"].is_null());
    operators[leading].kill9();
    wait_for(&sim, Duration::from_secs(120), "5 healthy voters after the takeover", |c| settled(c, 5));
    let holder = sim.kubectl(&["get", "lease", "cairn-operator", "-o", "jsonpath={.spec.holderIdentity}"]).stdout;
    assert_eq!(holder, operators[1 - leading].identity());
    assert_eq!(member_list(&sim, "demo-0").len(), 5);
    data_intact(&sim, "demo-3");

    // Deleting the cluster deletes everything it owns.
    assert!(sim.kubectl(&["delete", "cc", "demo", "--wait", "--timeout=60s"]).success);
    sim.eventually(Duration::from_secs(60), "every owned object is gone", || {
        sim.kubectl(&["get", "pods,pvc,svc,pdb", "-o", "name"]).stdout.lines().all(|l| !l.contains("demo"))
    });
}

fn members_by_id(c: &Value, name: &str) -> Option<String> {
    c["status"]["members"].as_array()?.iter().find(|m| m["name"] == name)?["id"].as_str().map(str::to_string)
}

/// The keys under k and their revisions and versions as etcdctl shows them at a member (the
/// header, which names the member and term, left out).
fn keys_at(sim: &KubeSim, via: &str) -> Vec<String> {
    let out = ctl(&format!("{}:2379", pod_ip(sim, via)), &["get", "k", "--prefix", "-w", "fields"]);
    let kept = ["\"Key\"", "\"CreateRevision\"", "\"ModRevision\"", "\"Version\"", "\"Value\""];
    out.lines().filter(|l| kept.iter().any(|k| l.starts_with(k))).map(str::to_string).collect()
}

fn condition(c: &Value, kind: &str) -> Value {
    c["status"]["conditions"].as_array().into_iter().flatten().find(|x| x["type"] == kind).cloned().unwrap_or_default()
}

/// A 3-member cluster `demo` with this `spec.recovery`, healthy, and its operator, in a
/// namespace that enforces the `restricted` Pod Security level (so every pod the operator
/// makes, forced and updated ones included, must pass it).
fn three_members(recovery: &str) -> (KubeSim, Operator, Value) {
    let sim = KubeSim::start(&[]);
    let out = sim.kubectl(&["label", "namespace", "default", "pod-security.kubernetes.io/enforce=restricted"]);
    assert!(out.success, "{}", out.all());
    let out = sim.kubectl(&["run", "plain", "--image=busybox", "--command", "--", "sleep", "1"]);
    assert!(!out.success && out.stderr.contains("violates PodSecurity \"restricted:latest\""), "{}", out.all());
    sim.apply(CRD);
    sim.eventually(Duration::from_secs(10), "the CRD is served", || sim.kubectl(&["get", "cc"]).success);
    let operator = Operator::start(&sim, 1);
    sim.apply(&format!(
        "apiVersion: cairn.dev/v1alpha1\nkind: CairnCluster\nmetadata: {{name: demo}}\n\
         spec: {{replicas: 3, recovery: {recovery}}}\n"
    ));
    let c = wait_for(&sim, Duration::from_secs(120), "3 healthy voters", |c| settled(c, 3));
    (sim, operator, c)
}

/// Two of three members lost with their claims: quorum is gone for good. Under Manual the
/// operator only says what it would do; switched to Automatic it restarts the member left
/// with --force-new-cluster, drops the lost ones and grows back through learners, every key
/// at its revisions.
#[test]
fn a_majority_lost_for_good_is_recovered_from_the_member_left() {
    let (sim, _operator, _) = three_members("{mode: Manual}");
    let ep = format!("{}:2379", pod_ip(&sim, "demo-0"));
    for i in 0..20 {
        assert_eq!(ctl(&ep, &["put", &format!("k{}", i % 7), &format!("v{i}")]), "OK\n");
    }
    // Every member has applied them before the majority goes (so that the one left has all).
    for m in ["demo-1", "demo-2"] {
        let at = format!("{}:2379", pod_ip(&sim, m));
        sim.eventually(Duration::from_secs(30), "the writes applied everywhere", || {
            ctl(&at, &["get", "k6", "--consistency=s", "--print-value-only"]) == "v13\n"
        });
    }
    let before = keys_at(&sim, "demo-0");
    assert_eq!(before.iter().filter(|l| l.starts_with("\"Key\"")).count(), 7);

    // Writes through demo-0 go on while the majority goes: each one acknowledged there was
    // applied there, so the recovery from demo-0 must keep it.
    let (c, acked) = during_writes(
        |stop| {
            let mut acked = Vec::new();
            for i in 0.. {
                if stop.load(Relaxed) {
                    break;
                }
                let key = format!("w/{i:04}");
                if ctl(&ep, &["put", &key, "x", "--command-timeout=2s"]) == "OK\n" {
                    acked.push(key);
                }
            }
            acked
        },
        || {
            assert!(sim.kubectl(&["delete", "pod,pvc", "demo-1", "demo-2", "--wait=false"]).success);
            wait_for(&sim, Duration::from_secs(120), "quorum loss reported", |c| {
                condition(c, "Degraded")["message"].as_str().unwrap_or_default().contains("recovery is Manual")
            })
        },
    );
    assert!(!acked.is_empty(), "no write went through before the majority went");
    let message = condition(&c, "Degraded")["message"].as_str().unwrap().to_string();
    assert!(message.contains("Automatic would restart demo-0"), "{message}");
    assert!(c["status"]["recovery"].is_null() && c["status"]["lastRecovery"].is_null(), "{}", c["status"]);
    let args = sim.kubectl(&["get", "pod", "demo-0", "-o", "jsonpath={.spec.containers[0].args}"]).stdout;
    assert!(!args.contains("--force-new-cluster"), "Manual changes nothing: {args}");

    let out =
        sim.kubectl(&["patch", "cc", "demo", "--type", "merge", "-p", r#"{"spec":{"recovery":{"mode":"Automatic"}}}"#]);
    assert!(out.success, "{}", out.all());
    let c = wait_for(&sim, Duration::from_secs(240), "recovered and grown back to 3", |c| {
        settled(c, 3) && c["status"]["lastRecovery"]["completed"].is_string()
    });
    let last = &c["status"]["lastRecovery"];
    assert_eq!(last["survivor"], "demo-0", "{last}");
    let lost: Vec<&str> = last["lost"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(!lost.is_empty() && lost.iter().all(|m| ["demo-1", "demo-2"].contains(m)), "{last}");
    assert!(c["status"]["recovery"].is_null(), "{}", c["status"]);
    assert_eq!(member_list(&sim, "demo-0").len(), 3);
    let args = sim.kubectl(&["get", "pod", "demo-0", "-o", "jsonpath={.spec.containers[0].args}"]).stdout;
    assert!(!args.contains("--force-new-cluster"), "the survivor runs without the flag again: {args}");
    for m in ["demo-0", "demo-1", "demo-2"] {
        assert_eq!(keys_at(&sim, m), before, "{m}'s keys and revisions");
    }
    let at = format!("{}:2379", pod_ip(&sim, "demo-1"));
    let written: Vec<String> = ctl(&at, &["get", "w/", "--prefix", "--keys-only"])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|k| !written.contains(k)).collect();
    assert!(lost.is_empty(), "acknowledged by the survivor, then lost: {lost:?}");
    let ep = format!("{}:2379", pod_ip(&sim, "demo-2"));
    assert_eq!(ctl(&ep, &["put", "after", "recovery"]), "OK\n");
    let events = sim.kubectl(&["get", "events.events.k8s.io", "-o", "json"]).stdout;
    assert!(events.contains("QuorumLost") && events.contains("QuorumRecovered"), "{events}");
    assert!(events.contains("restarts from its data (revision"), "{events}");
}

/// Runs `body` while `write` runs on another thread until told to stop. The writer is
/// stopped even when `body` panics: the scope would otherwise wait for it forever.
fn during_writes<T, W: Send>(write: impl FnOnce(&AtomicBool) -> W + Send, body: impl FnOnce() -> T) -> (T, W) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| write(&stop));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
        stop.store(true, Relaxed);
        let written = writer.join().expect("the writer");
        match result {
            Ok(t) => (t, written),
            Err(e) => std::panic::resume_unwind(e),
        }
    })
}

/// The process of a member's container, as kube-sim reports it (`kube-sim://<pid>`).
fn member_pid(sim: &KubeSim, pod: &str) -> String {
    let id = sim.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].containerID}"]).stdout;
    id.strip_prefix("kube-sim://").unwrap_or_else(|| panic!("{pod}: no container process in {id:?}")).to_string()
}

fn signal(pid: &str, sig: &str) {
    let ok = std::process::Command::new("kill").args([sig, pid]).status().is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

/// Two of three members unreachable (frozen with SIGSTOP: pods and claims intact) for less
/// than spec.recovery.unreachableFor, as in a network partition: the operator reports the lost
/// quorum and waits; when they answer again the cluster is as it was, nothing recovered or
/// replaced.
#[test]
fn an_outage_shorter_than_unreachable_for_is_waited_out() {
    let (sim, _operator, c) = three_members("{unreachableFor: 3m}");
    let ids: Vec<Option<String>> = ["demo-0", "demo-1", "demo-2"].iter().map(|m| members_by_id(&c, m)).collect();
    assert_eq!(ctl(&format!("{}:2379", pod_ip(&sim, "demo-0")), &["put", "survivor", "kept"]), "OK\n");
    let uids = sim.kubectl(&["get", "pods,pvc", "-o", "jsonpath={.items[*].metadata.uid}"]).stdout;
    let frozen = [member_pid(&sim, "demo-1"), member_pid(&sim, "demo-2")];
    for pid in &frozen {
        signal(pid, "-STOP");
    }
    wait_for(&sim, Duration::from_secs(60), "the lost quorum reported", |c| {
        condition(c, "Available")["status"] == "False"
    });
    // Well into the outage, though shorter than unreachableFor: nothing is recovered.
    let until = Instant::now() + Duration::from_secs(40);
    while Instant::now() < until {
        let c = cluster(&sim);
        assert!(c["status"]["recovery"].is_null() && c["status"]["lastRecovery"].is_null(), "{}", c["status"]);
        std::thread::sleep(Duration::from_millis(500));
    }
    for pid in &frozen {
        signal(pid, "-CONT");
    }
    let c = wait_for(&sim, Duration::from_secs(120), "3 healthy voters again", |c| settled(c, 3));
    let after: Vec<Option<String>> = ["demo-0", "demo-1", "demo-2"].iter().map(|m| members_by_id(&c, m)).collect();
    assert_eq!(after, ids, "the same members");
    assert!(c["status"]["lastRecovery"].is_null(), "{}", c["status"]);
    assert_eq!(sim.kubectl(&["get", "pods,pvc", "-o", "jsonpath={.items[*].metadata.uid}"]).stdout, uids);
    data_intact(&sim, "demo-2");
    let events = sim.kubectl(&["get", "events.events.k8s.io", "-o", "json"]).stdout;
    assert!(!events.contains("QuorumLost"), "{events}");

    // Deleted with the default retention policy (Retain), the claims stay, released; the
    // cluster made again under the same name starts its members from them.
    assert!(sim.kubectl(&["delete", "cc", "demo", "--wait", "--timeout=60s"]).success);
    let owners = sim.kubectl(&["get", "pvc", "-o", "jsonpath={.items[*].metadata.ownerReferences}"]);
    assert!(owners.success && owners.stdout.trim().is_empty(), "released: {}", owners.all());
    assert_eq!(sim.kubectl(&["get", "pvc", "-o", "name"]).stdout.lines().count(), 3);
    sim.apply("apiVersion: cairn.dev/v1alpha1\nkind: CairnCluster\nmetadata: {name: demo}\nspec: {replicas: 3}\n");
    wait_for(&sim, Duration::from_secs(120), "3 healthy voters on the kept claims", |c| settled(c, 3));
    data_intact(&sim, "demo-1");
}

/// The pod uid of each of demo's three members.
fn pod_uids(sim: &KubeSim) -> Vec<String> {
    let uid = |m: &str| sim.kubectl(&["get", "pod", m, "-o", "jsonpath={.metadata.uid}"]).stdout;
    ["demo-0", "demo-1", "demo-2"].iter().map(|m| uid(m)).collect()
}

fn patch_spec(sim: &KubeSim, spec: &str) {
    let out = sim.kubectl(&["patch", "cc", "demo", "--type", "merge", "-p", &format!(r#"{{"spec":{spec}}}"#)]);
    assert!(out.success, "{}", out.all());
}

/// Puts through whichever member answers (pod IPs change as pods are made again), until
/// stopped; returns the keys acknowledged and the puts refused.
fn write_through_the_roll(sim: &KubeSim, stop: &AtomicBool) -> (Vec<String>, usize) {
    let endpoints = || {
        let ips = sim.kubectl(&["get", "pods", "-o", "jsonpath={.items[*].status.podIP}"]).stdout;
        ips.split_whitespace().map(|ip| format!("{ip}:2379")).collect::<Vec<_>>().join(",")
    };
    let (mut acked, mut refused, mut eps) = (Vec::new(), 0, endpoints());
    for i in 0.. {
        if stop.load(Relaxed) {
            break;
        }
        let key = format!("w/{i:05}");
        if ctl(&eps, &["put", &key, "x", "--command-timeout=2s"]) == "OK\n" {
            acked.push(key);
        } else {
            refused += 1;
            eps = endpoints();
        }
    }
    (acked, refused)
}

/// A change of spec.etcd rolls through a 3-member cluster under writes: one member at a
/// time, the leader last, `updatedMembers` counting up, every member then running with the
/// new settings and every acknowledged write kept. A change whose member cannot start stops
/// the roll (UpdateStalled) with the other members untouched; fixing the spec resumes it.
#[test]
fn a_settings_change_rolls_through_the_members_leader_last() {
    let (sim, _operator, c) = three_members("{}");
    let leader = c["status"]["leader"].as_str().unwrap().to_string();
    assert_eq!(ctl(&format!("{}:2379", pod_ip(&sim, "demo-0")), &["put", "survivor", "kept"]), "OK\n");
    let before = pod_uids(&sim);
    let (order, (acked, refused)) = during_writes(
        |stop| write_through_the_roll(&sim, stop),
        || {
            patch_spec(&sim, r#"{"etcd":{"quotaBackendBytes":"3Gi","snapshotCount":5000}}"#);
            // The order in which members' pods are made again, and updatedMembers over time.
            let (mut order, mut counts) = (Vec::<String>::new(), Vec::<i64>::new());
            let deadline = Instant::now() + Duration::from_secs(600);
            loop {
                let c = cluster(&sim);
                let n = c["status"]["updatedMembers"].as_i64().unwrap_or(-1);
                if counts.last() != Some(&n) {
                    counts.push(n);
                }
                for (m, uid) in ["demo-0", "demo-1", "demo-2"].iter().zip(&before) {
                    let now = sim.kubectl(&["get", "pod", m, "-o", "jsonpath={.metadata.uid}"]).stdout;
                    if !now.is_empty() && now != *uid && !order.iter().any(|o| o == m) {
                        order.push(m.to_string());
                    }
                }
                if n == 3 && settled(&c, 3) && order.len() == 3 {
                    break;
                }
                assert!(Instant::now() < deadline, "the roll did not end within 10 minutes: {}", c["status"]);
                std::thread::sleep(Duration::from_millis(200));
            }
            // Before the patch is seen all three count as updated; from then on the count only grows.
            let rolled: Vec<i64> = counts.iter().copied().skip_while(|n| *n == 3).collect();
            assert!(
                rolled.windows(2).all(|w| w[0] <= w[1]) && rolled.iter().any(|n| (1..3).contains(n)),
                "updatedMembers: {counts:?}"
            );
            order
        },
    );
    assert_eq!(order.last(), Some(&leader), "the leader last: {order:?}");
    assert!(acked.len() > 10, "writes went on through the roll ({} acknowledged, {refused} refused)", acked.len());
    for m in ["demo-0", "demo-1", "demo-2"] {
        let (_, metrics) = cairn_e2e::harness::http_get(&format!("{}:2379", pod_ip(&sim, m)), "/metrics").unwrap();
        assert!(metrics.contains("etcd_server_quota_backend_bytes 3221225472"), "{m} runs with the new quota");
    }
    let keys = ctl(&format!("{}:2379", pod_ip(&sim, "demo-1")), &["get", "w/", "--prefix", "--keys-only"]);
    let lost: Vec<&String> = acked.iter().filter(|k| !keys.lines().any(|l| l == k.as_str())).collect();
    assert!(lost.is_empty(), "acknowledged, then lost in the roll: {lost:?}");
    data_intact(&sim, "demo-0");

    // A flag no member accepts: the first member updated never comes back; the roll stops.
    let before = pod_uids(&sim);
    patch_spec(&sim, r#"{"progressDeadline":"20s","etcd":{"extraFlags":["--no-such-flag"]}}"#);
    let c = wait_for(&sim, Duration::from_secs(180), "the roll stalled", |c| {
        condition(c, "Progressing")["reason"] == "UpdateStalled"
    });
    assert_eq!(condition(&c, "Progressing")["status"], "False", "{}", c["status"]);
    let touched: Vec<bool> = pod_uids(&sim).iter().zip(&before).map(|(a, b)| a != b).collect();
    assert_eq!(touched.iter().filter(|t| **t).count(), 1, "only the member in its update: {touched:?}");
    let events = sim.kubectl(&["get", "events.events.k8s.io", "-o", "json"]).stdout;
    assert!(events.contains("UpdateStalled"), "{events}");
    patch_spec(&sim, r#"{"etcd":{"extraFlags":null}}"#);
    wait_for(&sim, Duration::from_secs(300), "resumed and done", |c| {
        settled(c, 3) && c["status"]["updatedMembers"] == 3 && condition(c, "Progressing")["status"] == "False"
    });
    data_intact(&sim, "demo-2");

    // A larger storage.size grows the claims only where their StorageClass allows it; no pod
    // is made again for it.
    let before = pod_uids(&sim);
    let sizes = || sim.kubectl(&["get", "pvc", "-o", "jsonpath={.items[*].spec.resources.requests.storage}"]).stdout;
    patch_spec(&sim, r#"{"storage":{"size":"20Gi"}}"#);
    sim.eventually(Duration::from_secs(60), "the claims reported as not expandable", || {
        sim.kubectl(&["get", "events.events.k8s.io", "-o", "json"]).stdout.contains("StorageNotExpandable")
    });
    assert_eq!(sizes(), "10Gi 10Gi 10Gi");
    // kube-sim gives claims the class `kube-sim`, as a default class's admission would.
    sim.apply(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: kube-sim\n  annotations: \
         {storageclass.kubernetes.io/is-default-class: 'true'}\nprovisioner: kube-sim\nallowVolumeExpansion: true\n",
    );
    sim.eventually(Duration::from_secs(60), "the claims grown", || sizes() == "20Gi 20Gi 20Gi");
    assert_eq!(pod_uids(&sim), before, "no member restarted for it");
}
