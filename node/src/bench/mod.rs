//! `cairn bench`: a load generator for any etcd v3 endpoint (so etcd and Cairn are measured by
//! the same client). N clients share M connections; each request's latency is recorded and
//! the run reports throughput and percentiles.

mod report;

use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::{PutRequest, RangeRequest};
use clap::{Args, ValueEnum};
use report::Report;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

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
    /// Print one JSON object instead of the text summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Op {
    Put,
    Range,
}

fn key(i: usize, size: usize) -> Vec<u8> {
    let mut k = format!("{i:0>width$}", width = size.max(1)).into_bytes();
    k.truncate(size.max(k.len().min(size.max(1))));
    k
}

async fn connect(args: &BenchArgs) -> anyhow::Result<Vec<Channel>> {
    let endpoints: Vec<&str> = args.endpoints.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    anyhow::ensure!(!endpoints.is_empty(), "--endpoints is empty");
    let mut chans = Vec::new();
    for i in 0..args.conns.max(1) {
        let ep = endpoints[i % endpoints.len()];
        let url = if ep.contains("://") { ep.to_string() } else { format!("http://{ep}") };
        chans.push(Endpoint::from_shared(url)?.connect_timeout(Duration::from_secs(5)).connect().await?);
    }
    Ok(chans)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let chans = connect(&args).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let value = vec![b'v'; args.val_size];
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients.max(1) {
        let mut client = KvClient::new(chans[c % chans.len()].clone()).max_decoding_message_size(usize::MAX);
        let (next, args, value) = (next.clone(), args.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= args.total {
                    break;
                }
                let k = key(if args.key_space_size > 0 { i % args.key_space_size } else { i }, args.key_size);
                let t = Instant::now();
                let ok = match args.op {
                    Op::Put => {
                        client.put(PutRequest { key: k, value: value.clone(), ..Default::default() }).await.is_ok()
                    }
                    Op::Range => client
                        .range(RangeRequest { key: k, serializable: args.serializable, ..Default::default() })
                        .await
                        .is_ok(),
                };
                if ok {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::with_capacity(args.total);
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    let report = Report::new(all, errors, start.elapsed());
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(())
}
