//! kube-sim: a Kubernetes API server double (and, in `kubelet`, a node that runs pods as
//! processes) for end-to-end tests of Cairn's operator with the real binaries and kubectl.
//! Where it differs from a real cluster, e2e/README.md says so.

pub mod api;
pub mod apply;
pub mod clock;
pub mod defaults;
pub mod discovery;
pub mod errors;
pub mod gc;
pub mod kubelet;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod pod_security;
pub mod protobuf;
pub mod registry;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod store;
pub mod table;
pub mod watch;

use registry::Registry;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use store::Store;

pub struct Sim {
    pub store: Store,
    pub registry: Registry,
    /// host:port the API is served on.
    pub address: String,
    /// Woken after every write: the controllers look again.
    pub changed: tokio::sync::Notify,
    /// Where the kubelet keeps volumes and logs (`kubectl logs` reads there).
    pub state_dir: PathBuf,
}

impl Sim {
    pub fn new(address: String, log_len: usize, state_dir: PathBuf) -> Sim {
        Sim {
            store: Store::new(log_len),
            registry: Registry::default(),
            address,
            changed: tokio::sync::Notify::new(),
            state_dir,
        }
    }

    /// Serves the kinds of the CRDs now stored.
    pub fn refresh(&self) {
        let (crds, _) = self.store.list("customresourcedefinitions.apiextensions.k8s.io", None);
        self.registry.set_crds(&crds);
    }

    pub fn after_write(&self) {
        self.refresh();
        self.changed.notify_waiters();
    }

    /// What a new cluster has: its namespaces, its node, the default service account.
    fn bootstrap(&self) {
        let r = |plural: &str| self.registry.find("", "v1", plural).expect("a built-in kind");
        let _ = self.store.write(|t| {
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                objects::create(t, &r("namespaces"), "", json!({"metadata": {"name": ns}}))?;
            }
            let node = json!({"metadata": {"name": defaults::NODE, "labels": {"kubernetes.io/hostname": defaults::NODE, "node-role.kubernetes.io/control-plane": ""}},
                "status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}});
            objects::create(t, &r("nodes"), "", node)?;
            objects::create(t, &r("serviceaccounts"), "default", json!({"metadata": {"name": "default"}}))
        });
    }
}

#[derive(clap::Parser, Debug)]
#[command(name = "kube-sim", about = "A Kubernetes API server double and kubelet simulator for end-to-end tests")]
pub struct Args {
    /// Address to serve the API on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Where to write a kubeconfig for kubectl and kube-rs.
    #[arg(long)]
    pub kubeconfig_out: PathBuf,
    /// Where container commands are found (e.g. the freshly built `cairn`).
    #[arg(long)]
    pub bin_dir: PathBuf,
    /// Volumes and logs of the simulated node.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Events kept for watches to resume from (older versions get 410 Gone).
    #[arg(long, default_value_t = 10_000)]
    pub watch_cache: usize,
}

pub fn kubeconfig(address: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-sim\n  cluster:\n    server: http://{address}\ncontexts:\n- name: kube-sim\n  context:\n    cluster: kube-sim\n    user: kube-sim\n    namespace: default\ncurrent-context: kube-sim\nusers:\n- name: kube-sim\n  user:\n    token: kube-sim\n"
    )
}

/// Serves until `shutdown`, then stops every process it started.
pub async fn run(args: Args, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let address = listener.local_addr()?.to_string();
    let state_dir = std::fs::canonicalize(&args.state_dir).or_else(|_| {
        std::fs::create_dir_all(&args.state_dir)?;
        std::fs::canonicalize(&args.state_dir)
    })?;
    let sim = Arc::new(Sim::new(address.clone(), args.watch_cache, state_dir.clone()));
    sim.bootstrap();
    let tmp = args.kubeconfig_out.with_extension("tmp");
    std::fs::write(&tmp, kubeconfig(&address))?;
    std::fs::rename(&tmp, &args.kubeconfig_out)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let gc = tokio::spawn(gc::run(sim.clone(), stop_rx.clone()));
    let node = Arc::new(kubelet::Kubelet::new(sim.clone(), args.bin_dir.clone(), state_dir));
    let node = tokio::spawn(kubelet::run(node, stop_rx.clone()));
    let app = axum::Router::new().fallback(api::handle).with_state(sim.clone());
    eprintln!("kube-sim: serving on http://{address}");
    let mut stop = stop_rx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
    let _ = gc.await;
    let _ = node.await;
    Ok(())
}
