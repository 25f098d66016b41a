//! Readiness and liveness probes: httpGet (a plain HTTP/1.1 GET to the pod's address, 2xx or
//! 3xx passes), tcpSocket (a connection opens) and exec (the command exits 0), each with its
//! own timing and thresholds as kubelet counts them.

use super::process::{spawn, Spec};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Probe {
    spec: Value,
    started: Instant,
    next: Instant,
    successes: u32,
    failures: u32,
    /// The verdict the thresholds reached so far (None: not yet).
    pub passing: Option<bool>,
}

fn secs(v: &Value, default: u64) -> Duration {
    Duration::from_secs(v.as_u64().unwrap_or(default))
}

impl Probe {
    pub fn new(spec: &Value) -> Option<Probe> {
        if !spec.is_object() {
            return None;
        }
        let now = Instant::now();
        Some(Probe {
            spec: spec.clone(),
            started: now,
            next: now + secs(&spec["initialDelaySeconds"], 0),
            successes: 0,
            failures: 0,
            passing: None,
        })
    }

    pub fn restart(&mut self) {
        if let Some(p) = Probe::new(&self.spec) {
            *self = p;
        }
    }

    pub fn due(&self) -> bool {
        Instant::now() >= self.next && self.started.elapsed() >= secs(&self.spec["initialDelaySeconds"], 0)
    }

    /// Records one result; returns whether the verdict changed.
    pub fn record(&mut self, ok: bool) -> bool {
        self.next = Instant::now() + secs(&self.spec["periodSeconds"], 10);
        let before = self.passing;
        if ok {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= self.spec["successThreshold"].as_u64().unwrap_or(1) as u32 {
                self.passing = Some(true);
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= self.spec["failureThreshold"].as_u64().unwrap_or(3) as u32 {
                self.passing = Some(false);
            }
        }
        before != self.passing
    }

    pub fn spec(&self) -> &Value {
        &self.spec
    }
}

fn port(container: &Value, p: &Value) -> Option<u16> {
    match p {
        Value::Number(n) => n.as_u64().map(|n| n as u16),
        Value::String(name) => container["ports"]
            .as_array()?
            .iter()
            .find(|cp| cp["name"].as_str() == Some(name))
            .and_then(|cp| cp["containerPort"].as_u64())
            .map(|n| n as u16),
        _ => None,
    }
}

/// Runs the probe once against a container of the pod at `ip`.
pub async fn check(spec: &Value, container: &Value, ip: &str, bin_dir: &Path, exec: Option<Spec>) -> bool {
    let timeout = secs(&spec["timeoutSeconds"], 1);
    let attempt = async {
        if let Some(get) = spec.get("httpGet").filter(|g| g.is_object()) {
            let host = get["host"].as_str().unwrap_or(ip);
            let port = port(container, &get["port"])?;
            let path = get["path"].as_str().unwrap_or("/");
            let mut s = tokio::net::TcpStream::connect((host, port)).await.ok()?;
            let req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.32\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.ok()?;
            let mut head = [0u8; 12];
            s.read_exact(&mut head).await.ok()?;
            let code: u16 = std::str::from_utf8(&head[9..12]).ok()?.parse().ok()?;
            Some((200..400).contains(&code))
        } else if let Some(tcp) = spec.get("tcpSocket").filter(|t| t.is_object()) {
            let host = tcp["host"].as_str().unwrap_or(ip);
            let port = port(container, &tcp["port"])?;
            Some(tokio::net::TcpStream::connect((host, port)).await.is_ok())
        } else if let Some(spec) = exec {
            let mut child = spawn(bin_dir, &spec).ok()?;
            let status = child.wait().await.ok()?;
            Some(status.success())
        } else {
            None
        }
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}
