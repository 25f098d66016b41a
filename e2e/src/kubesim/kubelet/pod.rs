//! One pod on the simulated node, from start to end: its address, volumes and hosts file,
//! init containers one after the other to completion, then its containers, restarted by the
//! pod's restartPolicy with a doubling back-off, probed, and reported in the pod's status the
//! way kubelet reports them; on deletion SIGTERM, the grace period, SIGKILL, then the pod
//! object goes.

use super::probe::{self, Probe};
use super::process::{self, Spec};
use super::setup::{self, NotYet};
use super::Kubelet;
use crate::kubesim::clock;
use crate::kubesim::objects::{self, Part};
use crate::kubesim::store::Key;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// kube-sim starts back-off at 1 s (kubelet: 10 s) so that tests need not wait; it doubles
/// up to kubelet's 5 minutes.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
const TICK: Duration = Duration::from_millis(100);

#[derive(Clone)]
struct Terminated {
    code: i32,
    started: String,
    finished: String,
}

impl Terminated {
    fn json(&self) -> Value {
        let reason = if self.code == 0 { "Completed" } else { "Error" };
        json!({"exitCode": self.code, "reason": reason, "startedAt": self.started, "finishedAt": self.finished})
    }
}

struct Container {
    spec: Value,
    init: bool,
    child: Option<tokio::process::Child>,
    started: Option<(String, Instant)>,
    restarts: u32,
    /// The last run's end (lastState, or state while it stays ended).
    ended: Option<Terminated>,
    /// Done for good: an init container that succeeded, or one the policy does not restart.
    finished: bool,
    backoff: Duration,
    next_start: Instant,
    waiting: Option<(&'static str, String)>,
    readiness: Option<Probe>,
    liveness: Option<Probe>,
}

impl Container {
    fn new(spec: &Value, init: bool) -> Container {
        Container {
            spec: spec.clone(),
            init,
            child: None,
            started: None,
            restarts: 0,
            ended: None,
            finished: false,
            backoff: FIRST_BACKOFF,
            next_start: Instant::now(),
            waiting: Some(("ContainerCreating", String::new())),
            readiness: Probe::new(&spec["readinessProbe"]),
            liveness: Probe::new(&spec["livenessProbe"]),
        }
    }

    fn name(&self) -> &str {
        self.spec["name"].as_str().unwrap_or_default()
    }

    fn ready(&self) -> bool {
        self.child.is_some() && self.readiness.as_ref().is_none_or(|p| p.passing == Some(true))
    }

    fn status(&self) -> Value {
        let state = match (&self.child, &self.started, &self.waiting) {
            (Some(_), Some((at, _)), _) => json!({"running": {"startedAt": at}}),
            _ if self.finished => self.ended.as_ref().map_or(json!({}), |t| json!({"terminated": t.json()})),
            (_, _, Some((reason, message))) => json!({"waiting": {"reason": reason, "message": message}}),
            _ => json!({"waiting": {"reason": "ContainerCreating"}}),
        };
        let last = match (&self.ended, self.finished) {
            (Some(t), false) => json!({"terminated": t.json()}),
            _ => json!({}),
        };
        let id = self.child.as_ref().and_then(|c| c.id()).map(|pid| format!("kube-sim://{pid}"));
        let mut s = json!({
            "name": self.name(),
            "image": self.spec["image"],
            "imageID": "",
            "ready": if self.init { self.finished && self.ended.as_ref().is_some_and(|t| t.code == 0) } else { self.ready() },
            "started": self.child.is_some(),
            "restartCount": self.restarts,
            "state": state,
            "lastState": last,
        });
        if let Some(id) = id {
            s["containerID"] = json!(id);
        }
        s
    }
}

pub struct PodRun {
    k: Arc<Kubelet>,
    key: Key,
    uid: String,
    ip: String,
    dir: PathBuf,
    hosts: PathBuf,
    hosts_text: String,
    volumes: Option<Vec<(String, PathBuf)>>,
    containers: Vec<Container>,
    start_time: String,
    failed: bool,
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(9))
}

impl PodRun {
    pub fn new(k: Arc<Kubelet>, key: Key, pod: &Value, ip: String) -> PodRun {
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        let dir = k.state.join("pods").join(&uid);
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::create_dir_all(k.log_dir(&key.1, &key.2));
        let mut containers: Vec<Container> =
            pod["spec"]["initContainers"].as_array().into_iter().flatten().map(|c| Container::new(c, true)).collect();
        containers.extend(pod["spec"]["containers"].as_array().into_iter().flatten().map(|c| Container::new(c, false)));
        PodRun {
            k,
            key,
            uid,
            ip,
            hosts: dir.join("hosts"),
            dir,
            hosts_text: String::new(),
            volumes: None,
            containers,
            start_time: clock::now(),
            failed: false,
        }
    }

    fn policy(&self, pod: &Value) -> String {
        pod["spec"]["restartPolicy"].as_str().unwrap_or("Always").to_string()
    }

    /// Runs the pod until it is deleted (or kube-sim stops).
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let pod =
                self.k.sim.store.get(&self.key).filter(|p| p["metadata"]["uid"].as_str() == Some(self.uid.as_str()));
            let Some(pod) = pod else {
                self.kill_all(Duration::ZERO).await;
                break;
            };
            if !pod["metadata"]["deletionTimestamp"].is_null() {
                let grace = pod["metadata"]["deletionGracePeriodSeconds"].as_u64().unwrap_or(30);
                self.kill_all(Duration::from_secs(grace)).await;
                let (key, uid) = (self.key.clone(), self.uid.clone());
                let _ = self.k.sim.store.write(|t| {
                    if t.get(&key).is_some_and(|p| p["metadata"]["uid"].as_str() == Some(uid.as_str())) {
                        t.delete(key.clone());
                    }
                    Ok::<_, ()>(())
                });
                self.k.sim.after_write();
                break;
            }
            if *stop.borrow() {
                let grace = pod["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap_or(30).min(10);
                self.kill_all(Duration::from_secs(grace)).await;
                break;
            }
            self.step(&pod).await;
            self.report(&pod);
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => {}
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    async fn kill_all(&mut self, grace: Duration) {
        for c in self.containers.iter().filter(|c| c.child.is_some()) {
            process::signal(c.child.as_ref().expect("running"), libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        for c in self.containers.iter_mut() {
            let Some(child) = c.child.as_mut() else { continue };
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, child.wait()).await.is_err() {
                process::signal(child, libc::SIGKILL);
                let _ = child.wait().await;
            }
            c.child = None;
        }
    }

    fn spec_for(&self, pod: &Value, c: &Container, argv_override: Option<Vec<String>>) -> Result<Spec, NotYet> {
        // The address is the pod's before its status says so.
        let mut pod = pod.clone();
        pod["status"]["podIP"] = json!(self.ip);
        pod["status"]["hostIP"] = json!("127.0.0.1");
        let env = setup::env(&self.k.sim.store, &pod, &c.spec)?;
        let words = |v: &Value| -> Vec<String> {
            v.as_array().into_iter().flatten().filter_map(Value::as_str).map(|s| process::expand(s, &env)).collect()
        };
        let mut argv = words(&c.spec["command"]);
        argv.extend(words(&c.spec["args"]));
        if argv.is_empty() {
            return Err(NotYet {
                reason: "CreateContainerError",
                message: "kube-sim runs no images: the container needs a command".into(),
            });
        }
        let volumes = self.volumes.as_deref().unwrap_or_default();
        Ok(Spec {
            argv: argv_override.unwrap_or(argv),
            env,
            workdir: c.spec["workingDir"].as_str().map(PathBuf::from),
            mounts: setup::mounts(&c.spec, volumes, &self.hosts),
            log: if c.spec.is_null() {
                PathBuf::from("/dev/null")
            } else {
                self.k.log_dir(&self.key.1, &self.key.2).join(format!("{}.log", c.name()))
            },
        })
    }

    async fn step(&mut self, pod: &Value) {
        let text = setup::hosts(&self.k.sim.store, pod);
        if text != self.hosts_text {
            // In place: the containers see this file through a bind mount of this inode.
            if std::fs::write(&self.hosts, &text).is_ok() {
                self.hosts_text = text;
            }
        }
        if self.volumes.is_none() {
            match setup::volumes(&self.k.sim.store, &self.k.state, &self.dir, pod) {
                Ok(v) => self.volumes = Some(v),
                Err(e) => {
                    for c in &mut self.containers {
                        c.waiting = Some((e.reason, e.message.clone()));
                    }
                    return;
                }
            }
        }
        if self.failed {
            return;
        }
        let policy = self.policy(pod);
        let inits_done = self.containers.iter().filter(|c| c.init).all(|c| c.finished);
        for i in 0..self.containers.len() {
            if self.containers[i].init && i > 0 && self.containers[..i].iter().any(|c| c.init && !c.finished) {
                break;
            }
            if !self.containers[i].init && !inits_done {
                break;
            }
            self.tend(i, pod, &policy).await;
            if self.failed {
                return;
            }
        }
    }

    /// Starts, reaps, restarts and probes container `i`.
    async fn tend(&mut self, i: usize, pod: &Value, policy: &str) {
        let c = &mut self.containers[i];
        if let Some(child) = c.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let code = exit_code(status);
                let (started, ran) = match &c.started {
                    Some((at, when)) => (at.clone(), when.elapsed()),
                    None => (clock::now(), Duration::ZERO),
                };
                c.child = None;
                c.ended = Some(Terminated { code, started, finished: clock::now() });
                if ran > Duration::from_secs(60) {
                    c.backoff = FIRST_BACKOFF;
                }
                let again = match (c.init, policy) {
                    (true, _) => code != 0 && policy != "Never",
                    (false, "Always") => true,
                    (false, "OnFailure") => code != 0,
                    _ => false,
                };
                if again {
                    c.next_start = Instant::now() + c.backoff;
                    c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
                    c.waiting =
                        Some(("CrashLoopBackOff", format!("back-off restarting failed container {}", c.name())));
                    c.restarts += 1;
                } else {
                    c.finished = true;
                    // An init container that failed for good fails the pod.
                    if code != 0 && c.init {
                        self.failed = true;
                    }
                }
                return;
            }
        }
        let c = &self.containers[i];
        if c.child.is_none() && !c.finished && Instant::now() >= c.next_start {
            let spec = self.spec_for(pod, c, None);
            let c = &mut self.containers[i];
            match spec.and_then(|s| {
                process::spawn(&self.k.bin_dir, &s)
                    .map_err(|e| NotYet { reason: "RunContainerError", message: e.to_string() })
            }) {
                Ok(child) => {
                    c.child = Some(child);
                    c.started = Some((clock::now(), Instant::now()));
                    c.waiting = None;
                    if let Some(p) = c.readiness.as_mut() {
                        p.restart();
                    }
                    if let Some(p) = c.liveness.as_mut() {
                        p.restart();
                    }
                }
                Err(e) => {
                    c.waiting = Some((e.reason, e.message));
                    c.next_start = Instant::now() + c.backoff;
                    c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
                }
            }
            return;
        }
        if self.containers[i].child.is_none() {
            return;
        }
        for liveness in [false, true] {
            let c = &self.containers[i];
            let probe = if liveness { c.liveness.as_ref() } else { c.readiness.as_ref() };
            let Some(p) = probe.filter(|p| p.due()) else { continue };
            let exec = p.spec()["exec"]["command"]
                .as_array()
                .map(|cmd| cmd.iter().filter_map(Value::as_str).map(str::to_string).collect::<Vec<_>>());
            let exec_spec = match exec {
                Some(argv) => self.spec_for(pod, c, Some(argv)).ok().map(|mut s| {
                    s.log = PathBuf::from("/dev/null");
                    s
                }),
                None => None,
            };
            let spec = p.spec().clone();
            let ok = probe::check(&spec, &c.spec, &self.ip, &self.k.bin_dir, exec_spec).await;
            let c = &mut self.containers[i];
            let p = if liveness { c.liveness.as_mut() } else { c.readiness.as_mut() };
            if let Some(p) = p {
                p.record(ok);
                if liveness && p.passing == Some(false) {
                    // Failed liveness: the container is killed and restarted by its policy.
                    if let Some(child) = c.child.as_ref() {
                        process::signal(child, libc::SIGKILL);
                    }
                }
            }
        }
    }

    fn conditions(&self, pod: &Value) -> Value {
        let inits = self
            .containers
            .iter()
            .filter(|c| c.init)
            .all(|c| c.finished && c.ended.as_ref().is_some_and(|t| t.code == 0));
        let ready = self.containers.iter().filter(|c| !c.init).all(Container::ready);
        let old = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let cond = |kind: &str, ok: bool| {
            let status = if ok { "True" } else { "False" };
            let since = old
                .iter()
                .find(|c| c["type"] == json!(kind) && c["status"] == json!(status))
                .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_string))
                .unwrap_or_else(clock::now);
            json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since})
        };
        json!([
            cond("PodScheduled", true),
            cond("Initialized", inits),
            cond("ContainersReady", ready),
            cond("Ready", ready)
        ])
    }

    fn phase(&self, pod: &Value) -> &'static str {
        let mains: Vec<&Container> = self.containers.iter().filter(|c| !c.init).collect();
        if self.failed {
            return "Failed";
        }
        if mains.iter().all(|c| c.finished) && !mains.is_empty() {
            let ok = mains.iter().all(|c| c.ended.as_ref().is_some_and(|t| t.code == 0));
            return if ok {
                "Succeeded"
            } else if self.policy(pod) == "Never" {
                "Failed"
            } else {
                "Running"
            };
        }
        if mains.iter().any(|c| c.started.is_some()) {
            "Running"
        } else {
            "Pending"
        }
    }

    fn report(&self, pod: &Value) {
        let status = |init: bool| -> Vec<Value> {
            self.containers.iter().filter(|c| c.init == init).map(Container::status).collect()
        };
        let mut s = json!({
            "phase": self.phase(pod),
            "conditions": self.conditions(pod),
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self.start_time,
            "containerStatuses": status(false),
            "qosClass": "BestEffort",
        });
        let inits = status(true);
        if !inits.is_empty() {
            s["initContainerStatuses"] = Value::Array(inits);
        }
        if pod["status"] == s {
            return;
        }
        let Some(r) = self.k.sim.registry.find("", "v1", "pods") else { return };
        let (key, uid) = (self.key.clone(), self.uid.clone());
        let written = self.k.sim.store.write(|t| {
            let Some(mut p) = t.get(&key).filter(|p| p["metadata"]["uid"].as_str() == Some(uid.as_str())) else {
                return Ok(Value::Null);
            };
            p["status"] = s;
            p["metadata"].as_object_mut().map(|m| m.remove("resourceVersion"));
            objects::update(t, &r, &key, p, Part::Status)
        });
        if written.is_ok() {
            self.k.sim.after_write();
        }
    }
}
