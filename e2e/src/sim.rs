//! kube-sim for tests: started on a free port with its own state dir, kubectl pointed at it,
//! stopped with SIGTERM (and its processes with it) when dropped.

use crate::harness::{built_bin, free_port};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct KubeSim {
    child: Child,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    /// host:port of the API.
    pub address: String,
}

pub struct Kubectl {
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

impl Kubectl {
    /// Both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl KubeSim {
    pub fn start(extra: &[&str]) -> KubeSim {
        let dir = tempfile::tempdir().expect("a temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        let address = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("kube-sim.log")).expect("a log file");
        let bin_dir = built_bin("cairn").parent().expect("a dir").to_path_buf();
        let child = Command::new(built_bin("kube-sim"))
            .args(["--listen", &address, "--kubeconfig-out"])
            .arg(&kubeconfig)
            .arg("--bin-dir")
            .arg(&bin_dir)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kube-sim");
        let sim = KubeSim { child, dir, kubeconfig, address };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(sim.kubeconfig.exists() && sim.kubectl(&["get", "--raw", "/readyz"]).success) {
            assert!(Instant::now() < deadline, "kube-sim did not start:\n{}", sim.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        sim
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kube-sim.log")).unwrap_or_default()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn kubectl(&self, args: &[&str]) -> Kubectl {
        self.kubectl_with_input(args, None)
    }

    /// kubectl with `input` on its standard input (`apply -f -`).
    pub fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> Kubectl {
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl is on every machine");
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes()).expect("write kubectl's input");
        }
        let out = child.wait_with_output().expect("kubectl ran");
        Kubectl {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            success: out.status.success(),
        }
    }

    /// `kubectl apply -f -` of `yaml`, which must succeed.
    pub fn apply(&self, yaml: &str) -> String {
        let out = self.kubectl_with_input(&["apply", "-f", "-"], Some(yaml));
        assert!(out.success, "apply failed: {}", out.all());
        out.stdout
    }

    /// A JSON object by `kubectl get -o json`.
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&a);
        assert!(out.success, "get failed: {}", out.all());
        serde_json::from_str(&out.stdout).expect("JSON from kubectl")
    }

    /// Polls `check` until it holds or `within` passes.
    pub fn eventually(&self, within: Duration, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        while !check() {
            assert!(Instant::now() < deadline, "{what}: not within {within:?}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        // A failed test's logs (kube-sim's, the operator's, the pods') are what explains it.
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!("kube-sim's dir kept after the failure: {}", self.dir.path().display());
        }
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
