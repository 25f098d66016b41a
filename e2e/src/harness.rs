//! Real processes for tests: a `cairn` or Debian `etcd` member on loopback with free ports,
//! readiness by polling /health, SIGKILL and restart on the same data dir, and an etcdctl 3.4
//! runner.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Cairn,
    Etcd,
}

/// The freshly built `cairn`: next to the test binary's parent (target/<profile>/), or
/// `CAIRN_BIN`.
pub fn cairn_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CAIRN_BIN") {
        return PathBuf::from(p);
    }
    built_bin("cairn")
}

/// A binary of this workspace, as built beside the test binary (target/<profile>/).
pub fn built_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join(name);
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` first", bin.display());
    bin
}

pub fn require_tool(name: &str) -> PathBuf {
    let out = Command::new("which").arg(name).output().expect("run which");
    assert!(out.status.success(), "{name} is not installed: run ./test.sh (it installs etcd-server and etcd-client)");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A port nobody listens on right now (the OS picks it).
/// Taken from below the kernel's ephemeral range (32768-60999), where outgoing connections
/// get their ports: a port the OS handed out would be free now but could be some client's
/// a moment later, before the member binds it. Never the same port twice in one process.
pub fn free_port() -> u16 {
    use rand::Rng;
    use std::sync::Mutex;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let p = rand::thread_rng().gen_range(10_000..32_000);
        if !given.contains(&p) && TcpListener::bind(("127.0.0.1", p)).is_ok() {
            given.push(p);
            return p;
        }
    }
}

/// A bare HTTP/1.0 GET; returns (status, body).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// The schemes of a member's client and peer URLs: https where its flags give that side TLS.
fn schemes(extra: &[&str]) -> (&'static str, &'static str) {
    let has = |flags: &[&str]| extra.iter().any(|a| flags.iter().any(|f| a.split('=').next() == Some(*f)));
    let client = if has(&["--cert-file", "--auto-tls"]) { "https" } else { "http" };
    let peer = if has(&["--peer-cert-file", "--peer-auto-tls"]) { "https" } else { "http" };
    (client, peer)
}

pub struct Member {
    pub kind: Kind,
    pub data_dir: PathBuf,
    pub client_addr: String,
    pub peer_url: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Member {
    /// Starts a single-member cluster in `dir`, made if missing (data dir `dir/data`, log
    /// `dir/<kind>.log`).
    pub fn start(kind: Kind, dir: &Path, extra: &[&str]) -> Member {
        let mut m = Member::launch(kind, dir, extra);
        m.wait_ready(Duration::from_secs(30));
        m
    }

    /// As `start`, without waiting for it to be healthy (a member meant to refuse to start).
    pub fn launch(kind: Kind, dir: &Path, extra: &[&str]) -> Member {
        std::fs::create_dir_all(dir).expect("create the member's dir");
        let (cport, pport) = (free_port(), free_port());
        let (cs, ps) = schemes(extra);
        let client = format!("{cs}://127.0.0.1:{cport}");
        let peer = format!("{ps}://127.0.0.1:{pport}");
        let data_dir = dir.join("data");
        let mut args: Vec<String> = vec![
            "--name".into(),
            "default".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client,
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("default={peer}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = dir.join(format!("{kind:?}.log").to_lowercase());
        let client_addr = format!("127.0.0.1:{cport}");
        let mut m = Member { kind, data_dir, client_addr, peer_url: peer, args, log, child: None };
        m.spawn_process();
        m
    }

    /// Starts `n` members of one new cluster in `dir` (data dirs `dir/m<i>`, logs
    /// `dir/m<i>.log`), all on 127.0.0.1; returns once each is healthy (has a leader).
    pub fn start_cluster(kind: Kind, dir: &Path, n: usize, extra: &[&str]) -> Vec<Member> {
        Member::start_cluster_on(kind, dir, &vec!["127.0.0.1"; n], extra)
    }

    /// As `start_cluster`, member i on address `hosts[i]` (127.0.0.x: iptables can then cut
    /// the traffic between two members).
    pub fn start_cluster_on(kind: Kind, dir: &Path, hosts: &[&str], extra: &[&str]) -> Vec<Member> {
        let mut members = Member::plan_cluster(kind, dir, hosts, extra);
        Member::start_all(&mut members);
        members
    }

    /// The members `start_cluster_on` would start, not started yet (their data dirs can be
    /// prepared first, e.g. by `cairn snapshot restore`).
    pub fn plan_cluster(kind: Kind, dir: &Path, hosts: &[&str], extra: &[&str]) -> Vec<Member> {
        let ports: Vec<(u16, u16)> = hosts.iter().map(|_| (free_port(), free_port())).collect();
        let initial = ports
            .iter()
            .zip(hosts)
            .enumerate()
            .map(|(i, ((_, p), h))| format!("m{i}={}://{h}:{p}", schemes(extra).1))
            .collect::<Vec<_>>()
            .join(",");
        let members: Vec<Member> = ports
            .iter()
            .zip(hosts)
            .enumerate()
            .map(|(i, (ports, host))| {
                Member::cluster_member(kind, dir, &format!("m{i}"), host, *ports, &initial, extra)
            })
            .collect();
        members
    }

    /// Starts every member, then waits until each is healthy (none is before a quorum runs).
    pub fn start_all(members: &mut [Member]) {
        for m in members.iter_mut() {
            m.spawn_process();
        }
        for m in members.iter_mut() {
            m.wait_ready(Duration::from_secs(30));
        }
    }

    /// The member's --initial-cluster.
    pub fn initial_cluster(&self) -> String {
        let i = self.args.iter().position(|a| a == "--initial-cluster").expect("a cluster member");
        self.args[i + 1].clone()
    }

    pub fn name(&self) -> String {
        let i = self.args.iter().position(|a| a == "--name").expect("a name");
        self.args[i + 1].clone()
    }

    /// A member of a cluster whose --initial-cluster is `initial`; not started yet.
    fn cluster_member(
        kind: Kind,
        dir: &Path,
        name: &str,
        host: &str,
        ports: (u16, u16),
        initial: &str,
        extra: &[&str],
    ) -> Member {
        let (cs, ps) = schemes(extra);
        let (client, peer) = (format!("{cs}://{host}:{}", ports.0), format!("{ps}://{host}:{}", ports.1));
        let data_dir = dir.join(name);
        let mut args: Vec<String> = [
            "--name",
            name,
            "--data-dir",
            &data_dir.display().to_string(),
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            initial,
            "--initial-cluster-token",
            "e2e-cluster",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = dir.join(format!("{name}.log"));
        Member { kind, data_dir, client_addr: format!("{host}:{}", ports.0), peer_url: peer, args, log, child: None }
    }

    /// Starts a member that joins the running cluster `others` (once `member add` made room
    /// for it with peer URL `http://127.0.0.1:<ports.1>`), with --initial-cluster-state
    /// existing. Returns at once: a learner need not answer /health.
    pub fn join(kind: Kind, dir: &Path, name: &str, ports: (u16, u16), others: &[Member]) -> Member {
        Member::join_with(kind, dir, name, ports, others, &[])
    }

    /// `join`, with more flags (TLS ones make the new member's URLs https).
    pub fn join_with(
        kind: Kind,
        dir: &Path,
        name: &str,
        ports: (u16, u16),
        others: &[Member],
        extra: &[&str],
    ) -> Member {
        let mut initial: Vec<String> = others
            .iter()
            .map(|m| format!("{}={}", m.data_dir.file_name().unwrap().to_string_lossy(), m.peer_url))
            .collect();
        initial.push(format!("{name}={}://127.0.0.1:{}", schemes(extra).1, ports.1));
        let mut m = Member::cluster_member(
            kind,
            dir,
            name,
            "127.0.0.1",
            ports,
            &initial.join(","),
            &[&["--initial-cluster-state", "existing"], extra].concat(),
        );
        m.spawn_process();
        m
    }

    /// SIGTERM, then waits up to `within` for the process to exit; returns its exit code
    /// (None if it did not exit in time).
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Waits for the process to exit by itself; returns whether it did within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Waits up to `within` for the process to exit by itself; returns how it exited.
    pub fn exit_status(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Starts the process again (after it exited or was killed) without waiting for health.
    pub fn relaunch(&mut self) {
        self.kill9();
        self.spawn_process();
    }

    /// etcdctl against this member: what it printed, and its `Error:` lines.
    pub fn ctl(&self, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let o = etcdctl(&self.client_addr, &args, None);
        format!("{}{}", o.stdout, o.errors)
    }

    /// A gRPC connection to this member's client URL.
    pub async fn channel(&self) -> tonic::transport::Channel {
        let endpoint = tonic::transport::Channel::from_shared(format!("http://{}", self.client_addr)).expect("a URL");
        endpoint.connect().await.expect("connect to the member")
    }

    /// Whether this member says it is the leader (etcd_server_is_leader).
    pub fn is_leader(&self) -> bool {
        http_get(&self.client_addr, "/metrics").is_some_and(|(_, b)| b.lines().any(|l| l == "etcd_server_is_leader 1"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn spawn(&mut self) {
        self.spawn_process();
        self.wait_ready(Duration::from_secs(30));
    }

    fn spawn_process(&mut self) {
        let bin = match self.kind {
            Kind::Cairn => cairn_bin(),
            Kind::Etcd => require_tool("etcd"),
        };
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("open member log");
        let child = Command::new(bin)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn member");
        self.child = Some(child);
    }

    /// Polls /health until it answers 200; panics with the log's tail if it never does.
    pub fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{:?} exited with {status} while starting:\n{}", self.kind, self.log_tail());
            }
            if matches!(http_get(&self.client_addr, "/health"), Some((200, _))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{:?} not healthy within {within:?}:\n{}", self.kind, self.log_tail());
    }

    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        s.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Restarts, this once with `extra` flags added to its own (`--force-new-cluster`, say),
    /// and waits until it is healthy. Later restarts are without them.
    pub fn restart_with(&mut self, extra: &[&str]) {
        let own = self.args.clone();
        self.args.extend(extra.iter().map(|s| s.to_string()));
        self.kill9();
        self.spawn_process();
        self.args = own;
        self.wait_ready(Duration::from_secs(30));
    }

    /// `relaunch`, this once with `extra` flags added to its own.
    pub fn relaunch_with(&mut self, extra: &[&str]) {
        let own = self.args.clone();
        self.args.extend(extra.iter().map(|s| s.to_string()));
        self.relaunch();
        self.args = own;
    }

    /// Restarts and waits until /health answers at all: healthy or not (with an alarm
    /// raised it never says healthy).
    pub fn restart_answering(&mut self) {
        self.kill9();
        self.spawn_process();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&self.client_addr, "/health").is_none() {
            assert!(Instant::now() < deadline, "{:?} never answered after a restart:\n{}", self.kind, self.log_tail());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct CtlOutput {
    pub stdout: String,
    /// Only etcdctl's `Error: ...` lines: its retry logs carry timestamps and random ids.
    pub errors: String,
    pub success: bool,
}

pub fn etcdctl(endpoint: &str, args: &[String], stdin: Option<&str>) -> CtlOutput {
    run_etcdctl(endpoint, args, stdin, None)
}

/// For commands that never exit (watch): runs until stdout has been quiet for `quiet`, then
/// stops it. Its output is what it printed by then. Its standard input stays open meanwhile
/// (`watch -i` reads commands from it and gives up at its end).
pub fn etcdctl_until_quiet(endpoint: &str, args: &[String], stdin: Option<&str>, quiet: Duration) -> CtlOutput {
    run_etcdctl(endpoint, args, stdin, Some(quiet))
}

fn run_etcdctl(endpoint: &str, args: &[String], stdin: Option<&str>, quiet: Option<Duration>) -> CtlOutput {
    let mut child = Command::new(require_tool("etcdctl"))
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).expect("write etcdctl stdin");
    }
    if let Some(quiet) = quiet {
        let out = until_quiet(child, quiet);
        drop(input);
        return out;
    }
    drop(input);
    let out = child.wait_with_output().expect("etcdctl output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors = stderr.lines().filter(|l| !l.starts_with("{\"level\"")).collect::<Vec<_>>().join("\n");
    CtlOutput { stdout: String::from_utf8_lossy(&out.stdout).into_owned(), errors, success: out.status.success() }
}

fn until_quiet(mut child: Child, quiet: Duration) -> CtlOutput {
    use std::sync::{Arc, Mutex};
    let out = Arc::new(Mutex::new((Vec::<u8>::new(), Instant::now())));
    let mut stdout = child.stdout.take().expect("stdout");
    let sink = out.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut o = sink.lock().unwrap();
            o.0.extend_from_slice(&buf[..n]);
            o.1 = Instant::now();
        }
    });
    let hard_stop = Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let last = out.lock().unwrap().1;
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        if exited || last.elapsed() >= quiet || Instant::now() > hard_stop {
            break;
        }
    }
    let _ = child.kill();
    let status = child.wait().expect("wait etcdctl");
    let _ = reader.join();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let errors = stderr.lines().filter(|l| !l.starts_with("{\"level\"")).collect::<Vec<_>>().join("\n");
    let stdout = String::from_utf8_lossy(&out.lock().unwrap().0).into_owned();
    // Stopped by us is success; an exit of its own keeps its status.
    let success = status.success() || status.code().is_none();
    CtlOutput { stdout, errors, success }
}
