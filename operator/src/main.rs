//! `cairn-operator`: runs CairnClusters (DESIGN §4). It finds the Kubernetes API as kubectl
//! does (KUBECONFIG, ~/.kube/config, or in-cluster), serves Prometheus metrics, and acts only
//! while it holds the leader Lease.

use cairn_operator::{controller, leader, metrics};
use clap::Parser;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "cairn-operator", version, about = "Runs Cairn clusters on Kubernetes")]
struct Args {
    /// Where /metrics and /healthz are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Act only while holding the Lease (so that two replicas never act at once).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// The Lease's namespace [default: $POD_NAMESPACE, else default].
    #[arg(long)]
    lease_namespace: Option<String>,
    /// How long a Lease not renewed stays its holder's.
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cairn-operator: no Kubernetes API: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cairn-operator: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let metrics = Arc::new(metrics::Metrics::default());
    let served = metrics.clone();
    let addr = args.metrics_addr;
    tokio::spawn(async move {
        if let Err(e) = metrics::serve(addr, served).await {
            tracing::error!(error = %e, %addr, "serving metrics");
        }
    });
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| format!("cairn-operator-{}", std::process::id()));
    let namespace =
        args.lease_namespace.or_else(|| std::env::var("POD_NAMESPACE").ok()).unwrap_or_else(|| "default".into());
    let election = leader::Election::new(
        client.clone(),
        &namespace,
        "cairn-operator",
        identity.clone(),
        Duration::from_secs(args.lease_duration_seconds),
    );
    tracing::info!(version = env!("CARGO_PKG_VERSION"), %identity, "cairn-operator starting");
    let lead = async {
        if args.leader_election {
            election.acquire().await;
            tracing::info!(%identity, "holding the leader lease");
            tokio::select! {
                _ = controller::run(client, metrics) => {}
                _ = election.keep() => {
                    // Another replica may act now: this one must not.
                    tracing::error!("lost the leader lease; exiting");
                    return std::process::ExitCode::FAILURE;
                }
            }
        } else {
            controller::run(client, metrics).await;
        }
        std::process::ExitCode::SUCCESS
    };
    tokio::select! {
        code = lead => code,
        _ = tokio::signal::ctrl_c() => std::process::ExitCode::SUCCESS,
        _ = term.recv() => std::process::ExitCode::SUCCESS,
    }
}
