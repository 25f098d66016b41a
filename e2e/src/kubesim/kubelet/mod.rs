//! The simulated node: every pod bound to it runs as processes on this machine, on its own
//! loopback address (127.0.0.20 and up: pods share the host's network, so each binds its
//! own), with its volumes under --state-dir. Claims' directories outlive pods and go with
//! their claim. An address is held with a lock file that every kube-sim on the machine
//! honours (tests run several at once), released when its pod goes or its kube-sim dies.

pub mod pod;
pub mod probe;
pub mod process;
pub mod setup;

use super::defaults::NODE;
use super::Sim;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct Kubelet {
    pub sim: Arc<Sim>,
    pub bin_dir: PathBuf,
    pub state: PathBuf,
    /// Last octets of the pod addresses this kube-sim holds, with their locks.
    ips: Mutex<HashMap<u8, std::fs::File>>,
}

const FIRST_IP: u8 = 20;

impl Kubelet {
    pub fn new(sim: Arc<Sim>, bin_dir: PathBuf, state: PathBuf) -> Kubelet {
        Kubelet { sim, bin_dir, state, ips: Mutex::new(HashMap::new()) }
    }

    /// Where `kubectl logs` finds a container's output: per pod name, so it outlives the pod.
    pub fn log_dir(&self, ns: &str, pod: &str) -> PathBuf {
        logs(&self.state, ns, pod)
    }

    fn take_ip(&self) -> Option<String> {
        let mut ips = self.ips.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join("kube-sim-pod-ips");
        std::fs::create_dir_all(&dir).ok()?;
        for n in (FIRST_IP..=250).filter(|n| !ips.contains_key(n)) {
            let Ok(lock) = std::fs::File::create(dir.join(format!("127.0.0.{n}"))) else { continue };
            // Held until the File is dropped (the pod goes) or the process ends.
            use std::os::fd::AsRawFd;
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                ips.insert(n, lock);
                return Some(format!("127.0.0.{n}"));
            }
        }
        None
    }

    fn give_ip(&self, ip: &str) {
        if let Some(n) = ip.rsplit('.').next().and_then(|n| n.parse::<u8>().ok()) {
            self.ips.lock().unwrap_or_else(|e| e.into_inner()).remove(&n);
        }
    }

    /// Deletes the directories of claims that no longer exist.
    fn collect_claims(&self) {
        let (claims, _) = self.sim.store.list("persistentvolumeclaims", None);
        let live: HashSet<PathBuf> = claims
            .iter()
            .map(|c| {
                let m = &c["metadata"];
                let s = |f: &str| m[f].as_str().unwrap_or_default().to_string();
                setup::claim_dir(&self.state, &s("namespace"), &s("name"), &s("uid"))
            })
            .collect();
        let Ok(namespaces) = std::fs::read_dir(self.state.join("volumes")) else { return };
        for ns in namespaces.flatten() {
            for dir in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                if !live.contains(&dir.path()) {
                    let _ = std::fs::remove_dir_all(dir.path());
                }
            }
        }
    }
}

pub fn logs(state: &Path, ns: &str, pod: &str) -> PathBuf {
    state.join("logs").join(ns).join(pod)
}

/// Runs pods until `stop`, then stops them all (SIGTERM, then SIGKILL after their grace
/// period, at most 10 s).
pub async fn run(k: Arc<Kubelet>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let notified = k.sim.changed.notified();
        running.retain(|_, task| !task.is_finished());
        let (pods, _) = k.sim.store.list("pods", None);
        for p in pods.iter().filter(|p| p["spec"]["nodeName"] == Value::String(NODE.into())) {
            let uid = p["metadata"]["uid"].as_str().unwrap_or_default().to_string();
            if running.contains_key(&uid) || finished(p) {
                continue;
            }
            let Some(ip) = k.take_ip() else { continue };
            let key = (
                "pods".to_string(),
                p["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
                p["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            );
            let run = pod::PodRun::new(k.clone(), key, p, ip.clone());
            let (k2, stop2) = (k.clone(), stop.clone());
            running.insert(
                uid,
                tokio::spawn(async move {
                    run.run(stop2).await;
                    k2.give_ip(&ip);
                }),
            );
        }
        k.collect_claims();
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = stop.changed() => break,
        }
    }
    for (_, task) in running {
        let _ = task.await;
    }
}

/// A pod that ran to its end keeps its status; it is not started again.
fn finished(p: &Value) -> bool {
    matches!(p["status"]["phase"].as_str(), Some("Succeeded") | Some("Failed"))
}
