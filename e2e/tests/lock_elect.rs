//! etcdctl 3.4's client-side recipes — `lock` and `elect` — on cairn: two contenders never hold
//! the lock at once, and killing the holder hands over once its session lease expires.

use cairn_e2e::harness::{require_tool, Kind, Member};
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An etcdctl that keeps running; its stdout is collected as it comes.
struct Running {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Running {
    fn start(endpoint: &str, args: &[&str]) -> Running {
        let mut child = Command::new(require_tool("etcdctl"))
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running { child, out }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn wait_until(&self, within: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        while !done(&self.output()) {
            assert!(Instant::now() < deadline, "not there within {within:?}: {:?}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.output()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn lock_is_exclusive_and_passes_on_when_the_holder_dies() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &[]);
    let mut holder = Running::start(&m.client_addr, &["lock", "mylock", "--ttl=3"]);
    let held = holder.wait_until(Duration::from_secs(10), |o| o.ends_with('\n'));
    assert!(held.starts_with("mylock/"), "holder printed {held:?}");
    let waiter = Running::start(&m.client_addr, &["lock", "mylock", "--ttl=3"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(waiter.output(), "", "two holders at once");
    holder.child.kill().unwrap();
    let killed = Instant::now();
    let got = waiter.wait_until(Duration::from_secs(30), |o| o.ends_with('\n'));
    assert!(got.starts_with("mylock/") && got != held, "waiter printed {got:?}");
    // Not before the dead holder's lease could expire (3s TTL, less the time it already ran).
    assert!(killed.elapsed() >= Duration::from_millis(500), "handed over too early: {:?}", killed.elapsed());
}

#[test]
fn elect_has_one_leader_and_observers_see_the_handover() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &[]);
    let alice = Running::start(&m.client_addr, &["elect", "election", "alice"]);
    alice.wait_until(Duration::from_secs(10), |o| o.ends_with("alice\n"));
    let bob = Running::start(&m.client_addr, &["elect", "election", "bob"]);
    let observer = Running::start(&m.client_addr, &["elect", "-l", "election"]);
    observer.wait_until(Duration::from_secs(10), |o| o.ends_with("alice\n"));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(bob.output(), "", "bob elected while alice leads");
    // Interrupted, etcdctl resigns and revokes its session: bob takes over at once.
    // SAFETY: a plain signal to a child we own.
    unsafe { libc::kill(alice.child.id() as i32, libc::SIGINT) };
    bob.wait_until(Duration::from_secs(30), |o| o.ends_with("bob\n"));
    observer.wait_until(Duration::from_secs(10), |o| o.ends_with("bob\n"));
}
