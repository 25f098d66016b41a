//! `cairn`: with no subcommand, runs a member (etcd's flags); subcommands are offline tools.

mod cli;
mod logging;

use cairn_node::{config, server};
use clap::{Parser, Subcommand};
use cli::{backup, bench, gateway, grpc_proxy, snapshot};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "An etcd v3 compatible key-value store",
    args_conflicts_with_subcommands = true,
    // As Go's flag package: a flag given twice takes its last value.
    args_override_self = true
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
    /// Snapshot files: save one from a member (as etcdctl does), and offline tools.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Make a member's data dir of a new cluster from a backup in S3 (full snapshot + deltas,
    /// replayed at their original revisions), to the latest revision, a revision or a time.
    Restore(backup::restore::RestoreArgs),
    /// etcd's gateway: a TCP proxy in front of a cluster's client endpoints.
    #[command(subcommand)]
    Gateway(gateway::GatewayCommand),
    /// etcd's gRPC proxy: passes every gRPC call on to the cluster's members.
    #[command(subcommand, name = "grpc-proxy")]
    GrpcProxy(grpc_proxy::GrpcProxyCommand),
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Hash, revision, key count and size of a snapshot file.
    Status {
        file: std::path::PathBuf,
        /// Output format: simple, table or json.
        #[arg(short = 'w', long = "write-out", default_value = "simple")]
        write_out: String,
    },
    /// Make a member's data dir of a new cluster from a snapshot file.
    Restore(snapshot::restore::RestoreArgs),
    /// Save a member's snapshot to a file, as `etcdctl snapshot save` does, with progress.
    Save(snapshot::save::SaveArgs),
}

fn snapshot_command(c: SnapshotCommand, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    match c {
        SnapshotCommand::Status { file, write_out } => {
            let status = snapshot::status::read(&file, false)?;
            print!("{}", snapshot::status::render(&status, &write_out)?);
            Ok(())
        }
        SnapshotCommand::Restore(args) => snapshot::restore::run(&args),
        SnapshotCommand::Save(args) => rt.block_on(snapshot::save::run(&args)),
    }
}

/// etcd's proxies take their flags before `start` too (`etcd gateway --endpoints=… start`):
/// `start` is moved right after the proxy's name, where clap looks for it.
fn start_first(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let proxy = args.get(1).is_some_and(|a| a == "gateway" || a == "grpc-proxy");
    if let Some(at) = args.iter().position(|a| a == "start").filter(|at| proxy && *at > 2) {
        let start = args.remove(at);
        args.insert(2, start);
    }
    args
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
    // Whatever a member or a restore creates is its owner's alone, as etcd's files are (0600,
    // dirs 0700): Cairn's own files are created with those modes, and sled's follow the mask.
    // SAFETY: umask(2) only sets this process's file mode creation mask.
    unsafe { libc::umask(0o077) };
    // etcd's ETCD_* variables are flags too, for a member (not for the tools).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let tool = args.get(1).and_then(|a| a.to_str()).is_some_and(|a| !a.starts_with('-'));
    let (args, env_warnings) = if tool {
        (args, Vec::new())
    } else {
        let flags: Vec<String> = <Cli as clap::CommandFactory>::command()
            .get_arguments()
            .filter_map(|a| a.get_long().map(String::from))
            .filter(|f| !matches!(f.as_str(), "help" | "version"))
            .collect();
        match config::env::merge(args, std::env::vars(), &flags) {
            Ok(merged) => merged,
            Err(msg) => {
                eprintln!("cairn: {msg}");
                return std::process::ExitCode::from(2);
            }
        }
    };
    // etcd's --config-file replaces the other flags and the environment.
    let (args, env_warnings) = match (!tool).then(|| config::file::replacing(&args)).flatten() {
        None => (args, env_warnings),
        Some(Ok((args, note))) => (args, vec![note]),
        Some(Err(msg)) => {
            eprintln!("cairn: {msg}");
            return std::process::ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(start_first(args));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = match cli.command {
        Some(Command::Bench(args)) => rt.block_on(bench::run(args)),
        Some(Command::Snapshot(c)) => snapshot_command(c, &rt),
        Some(Command::Restore(args)) => rt.block_on(backup::restore::run(&args)),
        Some(Command::Gateway(c)) => {
            logging::init("capnslog", "info", logging::Output::Stderr);
            rt.block_on(gateway::run(c))
        }
        Some(Command::GrpcProxy(c)) => {
            logging::init("capnslog", "info", logging::Output::Stderr);
            rt.block_on(grpc_proxy::run(c))
        }
        None => {
            let cfg = match cli.server.validate() {
                Ok(c) => c,
                Err(msg) => {
                    eprintln!("cairn: {msg}");
                    return std::process::ExitCode::from(2);
                }
            };
            let output = match (&cfg.log_file, cfg.log_to_stdout) {
                (Some(path), _) => match std::fs::OpenOptions::new().create(true).append(true).open(path) {
                    Ok(f) => logging::Output::File(f),
                    Err(e) => {
                        eprintln!("cairn: --log-outputs {}: {e}", path.display());
                        return std::process::ExitCode::from(2);
                    }
                },
                (None, true) => logging::Output::Stdout,
                (None, false) => logging::Output::Stderr,
            };
            logging::init(&cfg.logger, &cfg.log_level, output);
            for w in env_warnings.iter().chain(&cfg.ignored_flags) {
                tracing::warn!("{w}");
            }
            rt.block_on(async {
                // Bound before the data dir is touched: a port in use stops the start first.
                let listeners = server::Listeners::bind(&cfg).await?;
                let member = server::Member::open(cfg).await?;
                member.serve(listeners, shutdown_signal()).await?;
                anyhow::Ok(())
            })
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
