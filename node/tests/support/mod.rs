//! In-process members for raft tests: each runs the real raft loop, WAL, applier and backend
//! in a temporary dir, but talks to the others through `MemNet`, an in-memory network that
//! can cut links, drop a share of the messages and deliver the rest late and out of order.

use cairn_node::alarm::Alarms;
use cairn_node::apply::{write_initial_members, Applier};
use cairn_node::lease::Lessor;
use cairn_node::membership::Membership;
use cairn_node::metrics::Histogram;
use cairn_node::proto::cairnpb::MemberRecord;
use cairn_node::raft::{bootstrap_state, restore_storage, spawn, Network, NodeConfig, Outgoing, Parts, RaftHandle};
use cairn_node::storage::backend::Backend;
use cairn_node::storage::mvcc::watch::WatchHub;
use cairn_node::storage::mvcc::MvccStore;
use cairn_node::storage::wal::{Identity, Wal};
use cairn_node::wait::Waiters;
use rand::Rng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct NetState {
    handles: HashMap<u64, (RaftHandle, PathBuf)>,
    /// Links that carry nothing, both ways.
    cut: HashSet<(u64, u64)>,
    drop_share: f64,
    max_delay: Duration,
    /// Messages on their way: (due, sequence) → (from, message).
    in_flight: BTreeMap<(Instant, u64), (u64, Outgoing)>,
    seq: u64,
    stopped: bool,
}

/// The network between the members; one delivery thread hands messages over when due.
pub struct MemNet {
    state: Mutex<NetState>,
    due: Condvar,
}

impl MemNet {
    pub fn new() -> Arc<MemNet> {
        let net = Arc::new(MemNet { state: Mutex::default(), due: Condvar::new() });
        let n = net.clone();
        std::thread::spawn(move || n.deliver());
        net
    }

    pub fn cut(&self, a: u64, b: u64) {
        let mut s = self.state.lock().unwrap();
        s.cut.insert((a, b));
        s.cut.insert((b, a));
    }

    pub fn heal(&self) {
        self.state.lock().unwrap().cut.clear();
    }

    /// From now on drop `share` of the messages and delay the rest by up to `max_delay`
    /// each (so they overtake one another).
    pub fn degrade(&self, share: f64, max_delay: Duration) {
        let mut s = self.state.lock().unwrap();
        s.drop_share = share;
        s.max_delay = max_delay;
    }

    pub fn stop(&self) {
        let mut s = self.state.lock().unwrap();
        s.stopped = true;
        s.handles.clear();
        self.due.notify_all();
    }

    fn send_from(&self, from: u64, out: Vec<Outgoing>) {
        let mut s = self.state.lock().unwrap();
        let mut rng = rand::thread_rng();
        for m in out {
            let lost = s.cut.contains(&(from, m.to)) || rng.gen_bool(s.drop_share);
            if lost {
                if m.image.is_some() {
                    if let Some((h, _)) = s.handles.get(&from) {
                        h.report_snapshot(m.to, false);
                    }
                }
                continue;
            }
            let delay = if s.max_delay.is_zero() { Duration::ZERO } else { rng.gen_range(Duration::ZERO..s.max_delay) };
            s.seq += 1;
            let key = (Instant::now() + delay, s.seq);
            s.in_flight.insert(key, (from, m));
        }
        self.due.notify_all();
    }

    fn deliver(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.stopped {
            let now = Instant::now();
            match s.in_flight.first_key_value().map(|(k, _)| k.0) {
                Some(due) if due <= now => {
                    let (_, (from, m)) = s.in_flight.pop_first().unwrap();
                    // A link cut while the message was on its way loses it too.
                    if s.cut.contains(&(from, m.to)) {
                        continue;
                    }
                    let Some((to, dir)) = s.handles.get(&m.to).cloned() else { continue };
                    match &m.image {
                        None => to.step(m.message),
                        Some(image) => {
                            // The image goes where the receiver keeps the ones it received.
                            let dest = dir.join(format!("{:016x}.image", m.snapshot_index));
                            let ok = std::fs::copy(image, &dest).is_ok();
                            if ok {
                                to.step_snapshot(m.message, dest);
                            }
                            if let Some((sender, _)) = s.handles.get(&from) {
                                sender.report_snapshot(m.to, ok);
                            }
                        }
                    }
                }
                Some(due) => s = self.due.wait_timeout(s, due - now).unwrap().0,
                None => s = self.due.wait(s).unwrap(),
            }
        }
    }
}

/// One member's view of the network: it knows who sends.
struct Link {
    from: u64,
    net: Arc<MemNet>,
}

impl Network for Link {
    fn send(&self, out: Vec<Outgoing>) {
        self.net.send_from(self.from, out);
    }
}

pub struct TestMember {
    pub id: u64,
    pub raft: RaftHandle,
    pub mvcc: Arc<MvccStore>,
    _dir: tempfile::TempDir,
}

/// Starts members 1..=n of a new cluster on `net`.
pub fn start_cluster(net: &Arc<MemNet>, n: u64, snapshot_count: u64) -> Vec<TestMember> {
    let ids: Vec<u64> = (1..=n).collect();
    let records: Vec<MemberRecord> = ids
        .iter()
        .map(|id| MemberRecord {
            id: *id,
            name: format!("m{id}"),
            peer_urls: vec![format!("mem://{id}")],
            ..Default::default()
        })
        .collect();
    ids.iter().map(|id| start_member(net, *id, &records, snapshot_count)).collect()
}

fn start_member(net: &Arc<MemNet>, id: u64, records: &[MemberRecord], snapshot_count: u64) -> TestMember {
    let dir = tempfile::tempdir().unwrap();
    let (wal_dir, snap_dir) = (dir.path().join("wal"), dir.path().join("snap"));
    std::fs::create_dir_all(&snap_dir).unwrap();
    let (meta, hs) = bootstrap_state(records.iter().map(|r| r.id).collect());
    Wal::create(&wal_dir, Identity { member_id: id, cluster_id: 1 }, meta, hs).unwrap();
    let (wal, replayed) = Wal::open(&wal_dir).unwrap();
    let backend = Arc::new(Backend::open(&dir.path().join("db")).unwrap());
    write_initial_members(&backend, records).unwrap();
    let membership = Arc::new(Membership::load(&backend, id).unwrap());
    let mvcc = Arc::new(MvccStore::open(backend.clone()).unwrap());
    let storage = restore_storage(&replayed, 0, &membership).unwrap();
    let waiters = Arc::new(Waiters::default());
    let (applied_tx, applied) = tokio::sync::watch::channel(0);
    let hub = Arc::new(WatchHub::new(mvcc.current_revision()));
    let alarms = Arc::new(Alarms::default());
    let lessor = Arc::new(Lessor::new(1));
    let applier = Applier::new(mvcc.clone(), membership, alarms, hub, lessor, waiters.clone(), applied_tx, 0);
    let cfg = NodeConfig {
        id,
        tick: Duration::from_millis(10),
        election_ticks: 10,
        heartbeat_ticks: 1,
        snapshot_count,
        request_timeout: Duration::from_secs(2),
        max_request_bytes: 1 << 20,
        wal_fsync: Arc::new(Histogram::default()),
        snap_dir: snap_dir.clone(),
    };
    let network = Arc::new(Link { from: id, net: net.clone() });
    let parts = Parts { storage, wal, backend, applier, applied, waiters, network };
    let started = spawn(cfg, parts).unwrap();
    net.state.lock().unwrap().handles.insert(id, (started.handle.clone(), snap_dir));
    TestMember { id, raft: started.handle, mvcc, _dir: dir }
}
