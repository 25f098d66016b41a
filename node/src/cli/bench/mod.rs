//! `cairn bench`: a load generator for any etcd v3 endpoint (so etcd and Cairn are measured by
//! the same client). N clients share M connections; each request's latency is recorded and
//! the run reports throughput and percentiles.

mod fanout;
mod report;

use crate::cli::connect::{ClientFlags, Conn};
use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::lease_client::LeaseClient;
use cairn_api::proto::etcdserverpb::{LeaseGrantRequest, PutRequest, RangeRequest};
use clap::{Args, ValueEnum};
use report::Report;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// What to send.
    #[arg(value_enum)]
    pub op: Op,
    /// Endpoints (host:port, comma separated); connections are spread over them.
    #[arg(long, default_value = "127.0.0.1:2379")]
    pub endpoints: String,
    /// gRPC connections.
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    /// Concurrent clients (requests in flight).
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Requests in all.
    #[arg(long, default_value_t = 10_000)]
    pub total: usize,
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Distinct keys (puts cycle through them; ranges read them). 0 = one key per put.
    #[arg(long, default_value_t = 0)]
    pub key_space_size: usize,
    /// Serializable ranges instead of linearizable ones.
    #[arg(long)]
    pub serializable: bool,
    /// Watchers, for `watch`.
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,
    /// Print one JSON object instead of the text summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientFlags,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Op {
    Put,
    Range,
    /// --watchers watchers on one key, spread over --conns streams; --total puts to it.
    Watch,
    LeaseGrant,
    LeaseKeepalive,
}

/// Key `i`, zero-padded to `size` bytes; longer when `i` needs more digits, so keys stay
/// distinct.
fn key(i: usize, size: usize) -> Vec<u8> {
    format!("{i:0>size$}").into_bytes()
}

async fn connect(args: &BenchArgs) -> anyhow::Result<Vec<Conn>> {
    let endpoints: Vec<&str> = args.endpoints.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    anyhow::ensure!(!endpoints.is_empty(), "--endpoints is empty");
    let mut chans = Vec::new();
    for i in 0..args.conns.max(1) {
        let ep = endpoints[i % endpoints.len()];
        chans.push(args.client.connect(ep).await?);
    }
    Ok(chans)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let chans = connect(&args).await?;
    let value = vec![b'v'; args.val_size];
    let (space, size) = (args.key_space_size, args.key_size);
    let key_of = move |i: usize| key(if space > 0 { i % space } else { i }, size);
    let report = match args.op {
        Op::Watch => {
            let endpoint = args.endpoints.split(',').next().unwrap_or_default().trim().trim_start_matches("http://");
            return fanout::watch(&args, &chans, endpoint).await;
        }
        Op::LeaseKeepalive => fanout::lease_keepalive(&args, &chans).await?,
        Op::LeaseGrant => {
            per_request(&args, &chans, |ch| {
                let c = LeaseClient::new(ch);
                move |_| {
                    let mut c = c.clone();
                    async move { c.lease_grant(LeaseGrantRequest { ttl: 60, id: 0 }).await.is_ok() }
                }
            })
            .await?
        }
        Op::Put => {
            per_request(&args, &chans, |ch| {
                let (c, value) = (KvClient::new(ch), value.clone());
                move |i| {
                    let (mut c, req) =
                        (c.clone(), PutRequest { key: key_of(i), value: value.clone(), ..Default::default() });
                    async move { c.put(req).await.is_ok() }
                }
            })
            .await?
        }
        Op::Range => {
            per_request(&args, &chans, |ch| {
                let (c, serializable) = (KvClient::new(ch), args.serializable);
                move |i| {
                    let mut c = c.clone();
                    let req = RangeRequest { key: key_of(i), serializable, ..Default::default() };
                    async move { c.range(req).await.is_ok() }
                }
            })
            .await?
        }
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

/// Runs `total` requests from `clients` concurrent clients spread over the connections; each
/// client's `request(i)` sends request number `i` and says whether it succeeded.
async fn per_request<F, R, RFut>(args: &BenchArgs, chans: &[Conn], make: F) -> anyhow::Result<Report>
where
    F: Fn(Conn) -> R,
    R: FnMut(usize) -> RFut + Send + 'static,
    RFut: std::future::Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients.max(1) {
        let mut request = make(chans[c % chans.len()].clone());
        let (next, total) = (next.clone(), args.total);
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                if request(i).await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::with_capacity(args.total), 0);
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    Ok(Report::new(all, errors, start.elapsed()))
}
