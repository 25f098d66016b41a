//! kube-sim's node: pods as real processes on their own loopback addresses, as a controller
//! would see them through the API and kubectl.

use cairn_e2e::harness::etcdctl;
use cairn_e2e::sim::KubeSim;
use std::time::Duration;

const MEMBER: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: m0}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: cairn
    image: cairn:dev
    command: [cairn]
    args: ["--name=$(POD_NAME)", "--data-dir=/var/lib/cairn/data",
      "--listen-client-urls=http://$(POD_IP):2379", "--advertise-client-urls=http://$(POD_IP):2379",
      "--listen-peer-urls=http://$(POD_IP):2380", "--initial-advertise-peer-urls=http://$(POD_IP):2380",
      "--initial-cluster=$(POD_NAME)=http://$(POD_IP):2380"]
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    readinessProbe: {httpGet: {path: /health, port: 2379}, periodSeconds: 1}
    volumeMounts: [{name: data, mountPath: /var/lib/cairn}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
"#;

fn ctl(ip: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let o = etcdctl(&format!("{ip}:2379"), &args, None);
    format!("{}{}", o.stdout, o.errors)
}

fn ready(sim: &KubeSim, pod: &str) -> String {
    let out = sim.kubectl(&["wait", "--for=condition=Ready", &format!("pod/{pod}"), "--timeout=60s"]);
    assert!(out.success, "{pod} not ready: {}\n{}", out.all(), sim.log());
    sim.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]).stdout
}

/// Tests run side by side, each with its own kube-sim: their pods must not share addresses.
#[test]
fn pods_of_two_kube_sims_get_different_addresses() {
    let (a, b) = (KubeSim::start(&[]), KubeSim::start(&[]));
    a.apply(MEMBER);
    b.apply(MEMBER);
    let (ia, ib) = (ready(&a, "m0"), ready(&b, "m0"));
    assert_ne!(ia, ib);
    assert_eq!(ctl(&ia, &["put", "k", "a"]), "OK\n");
    assert_eq!(ctl(&ib, &["get", "k", "--print-value-only"]), "", "b's member is its own");
}

#[test]
fn a_pod_running_cairn_serves_at_its_ip_and_keeps_its_claim_across_pods() {
    let sim = KubeSim::start(&[]);
    sim.apply(MEMBER);
    let ip = ready(&sim, "m0");
    assert!(ip.starts_with("127.0.0."), "{ip}");
    assert_eq!(ctl(&ip, &["put", "k", "kept"]), "OK\n");
    let logs = sim.kubectl(&["logs", "m0"]).stdout;
    assert!(logs.contains("ready to serve"), "{logs}");
    let pod = sim.get_json(&["pod", "m0"]);
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["status"]["containerStatuses"][0]["ready"], true);
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    // Deleting the pod stops the process (SIGTERM: cairn exits at once).
    assert!(sim.kubectl(&["delete", "pod", "m0", "--wait", "--timeout=30s"]).success);
    assert!(std::net::TcpStream::connect((ip.as_str(), 2379)).is_err(), "nothing listens after the pod is gone");
    // A new pod on the same claim finds the data.
    sim.apply(MEMBER);
    let ip = ready(&sim, "m0");
    assert_eq!(ctl(&ip, &["get", "k", "--print-value-only"]), "kept\n");
    // The claim's directory goes with the claim.
    assert!(sim.kubectl(&["delete", "pod", "m0", "--wait", "--timeout=30s"]).success);
    assert!(sim.kubectl(&["delete", "pvc", "data", "--wait", "--timeout=30s"]).success);
    let volumes = sim.state_dir().join("volumes").join("default");
    sim.eventually(Duration::from_secs(10), "the claim's directory is deleted", || {
        std::fs::read_dir(&volumes).map(|d| d.count() == 0).unwrap_or(true)
    });
}

#[test]
fn containers_get_env_volumes_hosts_init_order_and_restarts() {
    let sim = KubeSim::start(&[]);
    assert!(sim.kubectl(&["create", "secret", "generic", "s", "--from-literal=password=hunter2"]).success);
    assert!(sim.kubectl(&["create", "configmap", "c", "--from-literal=mode=fast"]).success);
    sim.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: peers}
spec: {clusterIP: None, selector: {app: t}, ports: [{port: 2380}]}
---
apiVersion: v1
kind: Pod
metadata: {name: t0, labels: {app: t}}
spec:
  hostname: t0
  subdomain: peers
  initContainers:
  - {name: first, image: busybox, command: [sh, -c, "echo from-init > /work/init.txt"], volumeMounts: [{name: work, mountPath: /work}]}
  containers:
  - name: main
    image: busybox
    command: [sh, -c]
    args: ["echo PW=$PW MODE=$MODE ME=$(ME) NS=$NS; cat /work/init.txt; cat /etc/hosts; cat /cfg/mode; echo; sleep 3600"]
    env:
    - {name: PW, valueFrom: {secretKeyRef: {name: s, key: password}}}
    - {name: MODE, valueFrom: {configMapKeyRef: {name: c, key: mode}}}
    - {name: ME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    volumeMounts: [{name: work, mountPath: /work}, {name: cfg, mountPath: /cfg}]
  volumes:
  - {name: work, emptyDir: {}}
  - {name: cfg, configMap: {name: c}}
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
  - {name: c, image: busybox, command: [sh, -c, "exit 3"]}
"#,
    );
    let ip = ready(&sim, "t0");
    let logs = sim.kubectl(&["logs", "t0", "-c", "main"]).stdout;
    assert!(logs.contains("PW=hunter2 MODE=fast ME=t0 NS=default"), "{logs}");
    assert!(logs.contains("from-init"), "the init container ran first, to completion: {logs}");
    assert!(logs.contains(&format!("{ip}\tt0.peers.default.svc.cluster.local")), "{logs}");
    assert!(logs.contains("fast"), "{logs}");
    let pod = sim.get_json(&["pod", "t0"]);
    assert_eq!(pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 0);
    // A container that fails is restarted, with its last exit code reported.
    sim.eventually(Duration::from_secs(30), "the crashing container restarts", || {
        let p = sim.get_json(&["pod", "crasher"]);
        let s = &p["status"]["containerStatuses"][0];
        s["restartCount"].as_i64().unwrap_or(0) >= 2 && s["lastState"]["terminated"]["exitCode"] == 3
    });
    // Stopping kube-sim stops every process it started.
    let id =
        sim.get_json(&["pod", "t0"])["status"]["containerStatuses"][0]["containerID"].as_str().unwrap().to_string();
    let pid: u32 = id.strip_prefix("kube-sim://").and_then(|p| p.parse().ok()).expect("a pid");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(sim);
    let gone = std::time::Instant::now() + Duration::from_secs(20);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(std::time::Instant::now() < gone, "the container outlived kube-sim");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn exec_probes_gate_readiness_and_deletion_waits_out_the_grace_period() {
    let sim = KubeSim::start(&[]);
    let flag = sim.path().join("ready");
    let pod = r#"
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "trap '' TERM; while true; do sleep 0.2; done"]
    readinessProbe: {exec: {command: [test, -e, FLAG]}, periodSeconds: 1}
"#;
    sim.apply(&pod.replace("FLAG", flag.to_str().unwrap()));
    sim.eventually(Duration::from_secs(20), "the container runs", || {
        sim.get_json(&["pod", "stubborn"])["status"]["containerStatuses"][0]["started"] == true
    });
    let not_ready = sim.kubectl(&["wait", "--for=condition=Ready", "pod/stubborn", "--timeout=2s"]);
    assert!(!not_ready.success, "ready before its probe passed");
    std::fs::write(&flag, b"").unwrap();
    ready(&sim, "stubborn");
    let id = sim.get_json(&["pod", "stubborn"])["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap()
        .to_string();
    let pid: u32 = id.strip_prefix("kube-sim://").and_then(|p| p.parse().ok()).expect("a pid");
    let t = std::time::Instant::now();
    assert!(sim.kubectl(&["delete", "pod", "stubborn", "--wait", "--timeout=30s"]).success);
    // It ignores SIGTERM: only SIGKILL, after the grace period, ends it.
    assert!(t.elapsed() >= Duration::from_secs(2), "deleted after {:?}", t.elapsed());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the process is gone with its pod");
}
