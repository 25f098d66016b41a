//! `kube-sim`: see cairn_e2e::kubesim.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = cairn_e2e::kubesim::Args::parse();
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    match cairn_e2e::kubesim::run(args, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-sim: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
