//! Histories of concurrent clients checked for linearizability (todc-utils' WGL checker)
//! while members are SIGKILLed, restarted and cut off by iptables. One register (a key):
//! writes of unique values and linearizable reads, through every member. A write whose
//! outcome is unknown (a timeout, a broken connection) may have happened at any time after
//! it was called: its response goes at the end of the history, and its client continues as
//! a new process. A failed read changed nothing and is left out.

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::{PutRequest, RangeRequest};
use cairn_e2e::harness::{require_tool, Kind, Member};
use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use todc_utils::linearizability::WGLChecker;
use todc_utils::specifications::Specification;
use todc_utils::{Action, History};
use tonic::transport::{Channel, Endpoint};

const HOSTS: [&str; 3] = ["127.0.0.21", "127.0.0.22", "127.0.0.23"];
const KEY: &[u8] = b"register";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Op {
    Write(u64),
    /// None in the call; the value read (None: no key) in the response.
    Read(Option<Option<u64>>),
}

struct Register;

impl Specification for Register {
    type State = Option<u64>;
    type Operation = Op;

    fn init() -> Self::State {
        None
    }

    fn apply(op: &Op, state: &Option<u64>) -> (bool, Option<u64>) {
        match op {
            Op::Write(v) => (true, Some(*v)),
            Op::Read(Some(seen)) => (seen == state, *state),
            Op::Read(None) => (false, *state),
        }
    }
}

#[derive(Default)]
struct Recorder {
    actions: Mutex<Vec<(usize, Action<Op>)>>,
    /// Writes whose outcome is unknown: completed at the very end.
    unknown: Mutex<Vec<(usize, Op)>>,
    next_process: AtomicU64,
}

impl Recorder {
    fn call(&self, p: usize, op: Op) {
        self.actions.lock().unwrap().push((p, Action::Call(op)));
    }
    fn respond(&self, p: usize, op: Op) {
        self.actions.lock().unwrap().push((p, Action::Response(op)));
    }
    /// A failed read: as if never called (it is the process's last action).
    fn forget_read(&self, p: usize) {
        let mut a = self.actions.lock().unwrap();
        let i = a.iter().rposition(|(q, _)| *q == p).expect("the read's call");
        a.remove(i);
    }
    fn new_process(&self) -> usize {
        self.next_process.fetch_add(1, Ordering::Relaxed) as usize
    }
}

async fn client(addr: &str) -> Option<KvClient<Channel>> {
    let host: IpAddr = addr.split(':').next()?.parse().ok()?;
    let ch = Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .local_address(Some(host))
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .ok()?;
    Some(KvClient::new(ch))
}

/// One client: alternates random writes and reads through `addrs[first]`, moving to the
/// next member after an error. Returns how many operations succeeded.
async fn worker(
    rec: Arc<Recorder>,
    addrs: Vec<String>,
    first: usize,
    values: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> usize {
    let mut p = rec.new_process();
    let mut target = first;
    let mut ok = 0;
    while !stop.load(Ordering::Relaxed) {
        let Some(mut kv) = client(&addrs[target]).await else {
            target = (target + 1) % addrs.len();
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            let failed = if rand::random::<bool>() {
                let v = values.fetch_add(1, Ordering::Relaxed);
                rec.call(p, Op::Write(v));
                let put = PutRequest { key: KEY.to_vec(), value: v.to_string().into_bytes(), ..Default::default() };
                match kv.put(put).await {
                    Ok(_) => {
                        rec.respond(p, Op::Write(v));
                        false
                    }
                    Err(_) => {
                        rec.unknown.lock().unwrap().push((p, Op::Write(v)));
                        p = rec.new_process();
                        true
                    }
                }
            } else {
                rec.call(p, Op::Read(None));
                match kv.range(RangeRequest { key: KEY.to_vec(), ..Default::default() }).await {
                    Ok(r) => {
                        let seen = r
                            .into_inner()
                            .kvs
                            .first()
                            .map(|kv| String::from_utf8_lossy(&kv.value).parse::<u64>().expect("a value we wrote"));
                        rec.respond(p, Op::Read(Some(seen)));
                        false
                    }
                    Err(_) => {
                        rec.forget_read(p);
                        true
                    }
                }
            };
            if failed {
                target = (target + 1) % addrs.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
                break;
            }
            ok += 1;
        }
    }
    ok
}

fn iptables(op: &str, s: &str, d: &str) {
    let rule = ["INPUT", "-s", s, "-d", d, "-j", "DROP"];
    let out = Command::new(require_tool("iptables")).arg(op).args(rule).output().expect("run iptables");
    assert!(out.status.success(), "iptables {op} {rule:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Cuts `isolated` off from the other hosts until dropped.
struct Cut(&'static str);

impl Cut {
    fn new(isolated: &'static str) -> Cut {
        for o in HOSTS.iter().filter(|h| **h != isolated) {
            iptables("-I", isolated, o);
            iptables("-I", o, isolated);
        }
        Cut(isolated)
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        for o in HOSTS.iter().filter(|h| **h != self.0) {
            iptables("-D", self.0, o);
            iptables("-D", o, self.0);
        }
    }
}

fn leader(ms: &[Member]) -> usize {
    for _ in 0..200 {
        if let Some(i) = ms.iter().position(|m| m.is_leader()) {
            return i;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no leader");
}

/// The faults, one after the other: the leader SIGKILLed and restarted, a follower
/// SIGKILLed and restarted, the leader cut off and healed.
fn nemesis(ms: &mut [Member]) {
    let pause = || std::thread::sleep(Duration::from_millis(1500));
    pause();
    let l = leader(ms);
    ms[l].kill9();
    pause();
    ms[l].restart();
    pause();
    let f = (leader(ms) + 1) % 3;
    ms[f].kill9();
    pause();
    ms[f].restart();
    pause();
    let cut = Cut::new(HOSTS[leader(ms)]);
    pause();
    pause();
    drop(cut);
    pause();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_under_kills_and_partitions_are_linearizable() {
    require_tool("iptables");
    let dir = tempfile::tempdir().unwrap();
    let mut ms = Member::start_cluster_on(Kind::Cairn, dir.path(), &HOSTS, &[]);
    let addrs: Vec<String> = ms.iter().map(|m| m.client_addr.clone()).collect();
    let rec = Arc::new(Recorder::default());
    let (values, stop) = (Arc::new(AtomicU64::new(1)), Arc::new(AtomicBool::new(false)));
    let workers: Vec<_> =
        (0..4).map(|i| tokio::spawn(worker(rec.clone(), addrs.clone(), i % 3, values.clone(), stop.clone()))).collect();
    let ms = tokio::task::spawn_blocking(move || {
        nemesis(&mut ms);
        ms
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    for w in workers {
        ok += w.await.unwrap();
    }
    drop(ms);
    let mut actions = std::mem::take(&mut *rec.actions.lock().unwrap());
    let unknown = std::mem::take(&mut *rec.unknown.lock().unwrap());
    println!("{ok} operations succeeded, {} writes of unknown outcome", unknown.len());
    assert!(ok >= 100, "too few operations went through to say anything: {ok}");
    actions.extend(unknown.into_iter().map(|(p, op)| (p, Action::Response(op))));
    let history = History::from_actions(actions);
    assert!(WGLChecker::<Register>::is_linearizable(history), "the history is not linearizable");
}

/// The encoding above can fail: a read that misses a write completed before it began is caught.
#[test]
fn the_checker_catches_a_stale_read() {
    let stale = vec![
        (0, Action::Call(Op::Write(1))),
        (0, Action::Response(Op::Write(1))),
        (1, Action::Call(Op::Read(None))),
        (1, Action::Response(Op::Read(Some(None)))),
    ];
    assert!(!WGLChecker::<Register>::is_linearizable(History::from_actions(stale)));
    // Concurrent with the write, the same read is fine.
    let concurrent = vec![
        (0, Action::Call(Op::Write(1))),
        (1, Action::Call(Op::Read(None))),
        (1, Action::Response(Op::Read(Some(None)))),
        (0, Action::Response(Op::Write(1))),
    ];
    assert!(WGLChecker::<Register>::is_linearizable(History::from_actions(concurrent)));
}
