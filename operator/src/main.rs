//! `cairn-operator`: runs CairnClusters (DESIGN §4). It finds the Kubernetes API as kubectl
//! does (KUBECONFIG, ~/.kube/config, or in-cluster).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cairn-operator: no Kubernetes API: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "cairn-operator starting");
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cairn-operator: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = cairn_operator::controller::run(client) => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
        _ = term.recv() => tracing::info!("stopping"),
    }
    std::process::ExitCode::SUCCESS
}
