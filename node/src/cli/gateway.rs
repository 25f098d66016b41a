//! `cairn gateway start`: etcd's gateway, a TCP proxy in front of a cluster's client URLs.
//! Each connection goes to the next endpoint in turn; an endpoint that refuses a connection
//! is left out until `--retry-delay` has passed and it accepts one again. It knows nothing of
//! gRPC or TLS: bytes are copied both ways, so TLS runs end to end between client and member.

use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

#[derive(clap::Args, Debug)]
pub struct GatewayArgs {
    /// Where clients connect.
    #[arg(long, default_value = "127.0.0.1:23790")]
    listen_addr: String,
    /// The cluster's client endpoints (host:port, or URLs whose scheme is dropped).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// How long an endpoint that refused a connection is left out.
    #[arg(long, default_value = "1m")]
    retry_delay: String,
    /// DNS SRV discovery: not supported (give --endpoints).
    #[arg(long, hide = true)]
    discovery_srv: Option<String>,
    #[arg(long, hide = true)]
    discovery_srv_name: Option<String>,
    #[arg(long, hide = true)]
    insecure_discovery: bool,
    #[arg(long, hide = true)]
    trusted_ca_file: Option<String>,
}

/// `start`, the one subcommand (main.rs takes the flags before it too, as etcd does).
#[derive(clap::Subcommand, Debug)]
pub enum GatewayCommand {
    /// Start the gateway.
    Start(GatewayArgs),
}

/// An endpoint and, while it is left out, until when.
struct Remote {
    addr: String,
    out_until: Option<Instant>,
}

struct Remotes {
    list: Mutex<(Vec<Remote>, usize)>,
    retry_delay: Duration,
}

impl Remotes {
    /// The next endpoint in turn that is not left out (or whose time out is over).
    fn pick(&self, tried: &[usize], now: Instant) -> Option<(usize, String)> {
        let mut guard = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let (list, next) = &mut *guard;
        for _ in 0..list.len() {
            let i = *next % list.len();
            *next += 1;
            let r = &list[i];
            if !tried.contains(&i) && r.out_until.is_none_or(|t| t <= now) {
                return Some((i, r.addr.clone()));
            }
        }
        None
    }

    fn leave_out(&self, i: usize, now: Instant) {
        let mut guard = self.list.lock().unwrap_or_else(|e| e.into_inner());
        guard.0[i].out_until = Some(now + self.retry_delay);
    }
}

/// "http://host:port" as "host:port", as etcd's gateway takes it.
fn strip_scheme(ep: &str) -> String {
    match url::Url::parse(ep) {
        Ok(u) if u.host_str().is_some() => {
            let host = u.host_str().unwrap_or_default();
            match u.port_or_known_default() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            }
        }
        _ => ep.to_string(),
    }
}

pub async fn run(cmd: GatewayCommand) -> anyhow::Result<()> {
    let GatewayCommand::Start(args) = cmd;
    if args.discovery_srv.is_some() {
        bail!("--discovery-srv is not supported: give --endpoints");
    }
    let retry_delay = cairn_node::config::parse_duration(&args.retry_delay)
        .with_context(|| format!("--retry-delay {:?}: not a duration", args.retry_delay))?;
    let endpoints: Vec<String> = args.endpoints.iter().map(|e| strip_scheme(e.trim())).collect();
    for ep in &endpoints {
        if ep.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
            bail!("error parsing endpoint {ep:?}");
        }
    }
    let listen: SocketAddr =
        args.listen_addr.parse().with_context(|| format!("failed to validate listen address: {}", args.listen_addr))?;
    if endpoints.iter().any(|e| e.parse::<SocketAddr>().ok() == Some(listen)) {
        bail!("an endpoint should not be the gateway listen addr ({listen})");
    }
    let listener = TcpListener::bind(listen).await.with_context(|| format!("listen {listen}"))?;
    tracing::info!("ready to proxy client requests to {endpoints:?}");
    let remotes = Arc::new(Remotes {
        list: Mutex::new((endpoints.into_iter().map(|addr| Remote { addr, out_until: None }).collect(), 0)),
        retry_delay,
    });
    loop {
        let (conn, _) = listener.accept().await.context("accept")?;
        tokio::spawn(serve(conn, remotes.clone()));
    }
}

async fn serve(mut client: TcpStream, remotes: Arc<Remotes>) {
    let _ = client.set_nodelay(true);
    let mut tried = Vec::new();
    let mut upstream = loop {
        let Some((i, addr)) = remotes.pick(&tried, Instant::now()) else {
            // No endpoint takes connections: the client's is closed, as etcd's gateway does.
            return;
        };
        match TcpStream::connect(&addr).await {
            Ok(s) => break s,
            Err(e) => {
                tried.push(i);
                remotes.leave_out(i, Instant::now());
                tracing::warn!("deactivated endpoint [{addr}] due to {e} for {:?}", remotes.retry_delay);
            }
        }
    };
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_lose_their_scheme() {
        assert_eq!(strip_scheme("http://127.0.0.1:2379"), "127.0.0.1:2379");
        assert_eq!(strip_scheme("https://etcd-0:2379"), "etcd-0:2379");
        assert_eq!(strip_scheme("127.0.0.1:2379"), "127.0.0.1:2379");
    }

    #[test]
    fn a_left_out_endpoint_is_skipped_until_its_delay_passes() {
        let remotes = Remotes {
            list: Mutex::new((
                vec![Remote { addr: "a:1".into(), out_until: None }, Remote { addr: "b:1".into(), out_until: None }],
                0,
            )),
            retry_delay: Duration::from_secs(60),
        };
        let now = Instant::now();
        let pick = |tried: &[usize], at: Instant| remotes.pick(tried, at).map(|p| p.1);
        assert_eq!(pick(&[], now), Some("a:1".into()));
        assert_eq!(pick(&[], now), Some("b:1".into()));
        remotes.leave_out(0, now);
        assert_eq!(pick(&[], now), Some("b:1".into()));
        assert_eq!(pick(&[], now), Some("b:1".into()));
        assert_eq!(pick(&[1], now), None, "b tried already, a left out");
        assert_eq!(pick(&[1], now + Duration::from_secs(60)), Some("a:1".into()), "a is back after its delay");
    }
}
