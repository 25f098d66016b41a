//! `cairn`: with no subcommand, runs a member (etcd's flags); subcommands are offline tools.

use cairn_node::{bench, config, server};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "An etcd v3 compatible key-value store",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    server: config::ServerArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Load-test any etcd v3 endpoint: puts or ranges from many clients; throughput and latency.
    Bench(bench::BenchArgs),
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{level},sled=warn,h2=warn,hyper=warn,tower=warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = match cli.command {
        Some(Command::Bench(args)) => rt.block_on(bench::run(args)),
        None => {
            let cfg = match cli.server.validate() {
                Ok(c) => c,
                Err(msg) => {
                    eprintln!("cairn: {msg}");
                    return std::process::ExitCode::from(2);
                }
            };
            init_logging(&cfg.log_level);
            rt.block_on(server::run(cfg, shutdown_signal()))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
