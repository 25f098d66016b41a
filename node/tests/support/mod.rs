//! In-process members for raft tests: each is a whole member made by `Member::open` (its raft
//! loop, WAL, applier and backend in a temporary dir) serving its peers on a loopback port,
//! with its outgoing raft messages passed through `FaultyNet` first, which can cut links, drop
//! a share of the messages and deliver the rest late and out of order.

use cairn_node::config::{ClusterState, Config};
use cairn_node::raft::{Network, Outgoing, RaftHandle};
use cairn_node::server::{Listener, Listeners, Member};
use cairn_node::storage::mvcc::MvccStore;
use rand::Rng;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct NetState {
    /// Links that carry nothing, both ways.
    cut: HashSet<(u64, u64)>,
    drop_share: f64,
    max_delay: Duration,
    /// Messages on their way: (due, sequence) → (the sender's real network, message).
    in_flight: BTreeMap<(Instant, u64), (Arc<dyn Network>, Outgoing)>,
    seq: u64,
    stopped: bool,
}

/// The faults between the members; one delivery thread hands delayed messages on when due.
pub struct FaultyNet {
    state: Mutex<NetState>,
    due: Condvar,
}

impl FaultyNet {
    pub fn new() -> Arc<FaultyNet> {
        let net = Arc::new(FaultyNet { state: Mutex::default(), due: Condvar::new() });
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
        s.in_flight.clear();
        self.due.notify_all();
    }

    fn send_from(&self, from: u64, out: Vec<Outgoing>, next: &Arc<dyn Network>) {
        let mut s = self.state.lock().unwrap();
        let mut rng = rand::thread_rng();
        let mut now = Vec::new();
        for m in out {
            if s.cut.contains(&(from, m.to)) {
                continue;
            }
            // A snapshot goes as it is: raft waits for its outcome, which the transport
            // reports only for a snapshot it was given.
            if m.image.is_some() {
                now.push(m);
                continue;
            }
            if rng.gen_bool(s.drop_share) {
                continue;
            }
            if s.max_delay.is_zero() {
                now.push(m);
                continue;
            }
            let delay = rng.gen_range(Duration::ZERO..s.max_delay);
            s.seq += 1;
            let key = (Instant::now() + delay, s.seq);
            s.in_flight.insert(key, (next.clone(), m));
        }
        drop(s);
        self.due.notify_all();
        if !now.is_empty() {
            next.send(now);
        }
    }

    fn deliver(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.stopped {
            let now = Instant::now();
            match s.in_flight.first_key_value().map(|(k, _)| k.0) {
                Some(due) if due <= now => {
                    let (_, (next, m)) = s.in_flight.pop_first().unwrap();
                    drop(s);
                    next.send(vec![m]);
                    s = self.state.lock().unwrap();
                }
                Some(due) => s = self.due.wait_timeout(s, due - now).unwrap().0,
                None => s = self.due.wait(s).unwrap(),
            }
        }
    }
}

/// One member's outgoing messages: through the faults, then its real transport.
struct Link {
    from: u64,
    net: Arc<FaultyNet>,
    next: Arc<dyn Network>,
}

impl Network for Link {
    fn send(&self, out: Vec<Outgoing>) {
        self.net.send_from(self.from, out, &self.next);
    }
}

pub struct TestMember {
    pub id: u64,
    pub raft: RaftHandle,
    pub mvcc: Arc<MvccStore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for TestMember {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts members m1..=mn of a new cluster on loopback, their raft messages through `net`.
pub async fn start_cluster(net: &Arc<FaultyNet>, n: usize, snapshot_count: u64) -> Vec<TestMember> {
    let mut peers = Vec::new();
    for _ in 0..n {
        peers.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let urls: Vec<String> = peers.iter().map(|l| format!("http://{}", l.local_addr().unwrap())).collect();
    let initial: Vec<(String, Vec<String>)> =
        urls.iter().enumerate().map(|(i, u)| (format!("m{}", i + 1), vec![u.clone()])).collect();
    let mut members = Vec::new();
    for (i, listener) in peers.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            name: format!("m{}", i + 1),
            data_dir: dir.path().join("data"),
            listen_client: Vec::new(),
            listen_metrics: Vec::new(),
            listen_peer: vec![cairn_node::config::ListenUrl {
                addr: cairn_node::config::ListenAddr::Tcp(listener.local_addr().unwrap()),
                tls: false,
            }],
            client_tls: cairn_node::tls::TlsInfo::new(cairn_node::tls::Side::Client),
            peer_tls: cairn_node::tls::TlsInfo::new(cairn_node::tls::Side::Peer),
            advertise_client_urls: vec![format!("http://127.0.0.1:{}", 1 + i)],
            initial_advertise_peer_urls: vec![urls[i].clone()],
            initial_cluster: initial.clone(),
            initial_cluster_state: ClusterState::New,
            initial_cluster_token: "raft-cluster-test".into(),
            snapshot_count,
            heartbeat: Duration::from_millis(10),
            election_ticks: 10,
            max_txn_ops: 128,
            max_request_bytes: 1 << 20,
            max_concurrent_streams: u32::MAX,
            strict_reconfig_check: true,
            initial_corrupt_check: false,
            watch_progress_interval: Duration::from_secs(600),
            log_level: "info".into(),
            logger: "capnslog".into(),
            metrics_extensive: false,
            enable_pprof: false,
            force_new_cluster: false,
            auto_compaction: None,
            quota_bytes: None,
            auth_token: "simple".into(),
            auth_token_ttl: Duration::from_secs(300),
            bcrypt_cost: 4,
            log_file: None,
            log_to_stdout: false,
            ignored_flags: Vec::new(),
        };
        // The member's id, derived from its flags as etcd derives it: what the link cuts by.
        let from = cairn_node::membership::ids::member_id(&cfg.initial_advertise_peer_urls, &cfg.initial_cluster_token);
        let net = net.clone();
        let interpose: cairn_node::server::Interpose = Box::new(move |next| Arc::new(Link { from, net, next }));
        let member = Member::open_with(cfg, Some(interpose)).await.unwrap();
        assert_eq!(member.id(), from);
        let (id, raft, mvcc) = (member.id(), member.raft().clone(), member.mvcc().clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let listeners =
            Listeners { client: Vec::new(), peer: vec![Listener::Tcp(listener, false)], metrics: Vec::new() };
        tokio::spawn(member.serve(listeners, async move {
            let _ = stopped.await;
        }));
        members.push(TestMember { id, raft, mvcc, stop: Some(stop), _dir: dir });
    }
    members
}
