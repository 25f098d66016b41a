//! The real `cairn-operator` as a process against a kube-sim: its log in the sim's dir,
//! metrics on a free port, SIGKILLed on drop.

use crate::harness::{built_bin, free_port};
use crate::sim::KubeSim;
use std::process::{Child, Command, Stdio};

pub struct Operator {
    child: Child,
    metrics: String,
}

impl Operator {
    /// Starts the `run`th operator of the test (log `operator-<run>.log`), with a short Lease.
    pub fn start(sim: &KubeSim, run: usize) -> Operator {
        Operator::start_with_env(sim, run, &[])
    }

    /// The same, with these environment variables (and none of the test's AWS_ ones).
    pub fn start_with_env(sim: &KubeSim, run: usize, env: &[(&str, &str)]) -> Operator {
        let log = std::fs::File::create(sim.path().join(format!("operator-{run}.log"))).expect("a log");
        let metrics = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(built_bin("cairn-operator"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
            cmd.env_remove(k);
        }
        let child = cmd
            .args(["--lease-duration-seconds", "4", "--metrics-addr", &metrics])
            .env("KUBECONFIG", &sim.kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the operator");
        Operator { child, metrics }
    }

    /// The identity it holds the leader Lease under.
    pub fn identity(&self) -> String {
        format!("cairn-operator-{}", self.child.id())
    }

    /// What its /metrics says (empty if it does not answer).
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(&self.metrics) else { return String::new() };
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill9();
    }
}
