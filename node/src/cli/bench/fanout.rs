//! Watch fan-out and lease benchmarks.

use super::report::Report;
use super::BenchArgs;
use crate::cli::connect::Conn;
use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::lease_client::LeaseClient;
use cairn_api::proto::etcdserverpb::watch_client::WatchClient;
use cairn_api::proto::etcdserverpb::watch_request::RequestUnion;
use cairn_api::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, WatchCreateRequest, WatchRequest,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_stream::wrappers::ReceiverStream;

/// The server's resident memory, from its Prometheus endpoint (etcd and Cairn both export it).
async fn server_rss(endpoint: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(endpoint).await.ok()?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {endpoint}\r\n\r\n").as_bytes()).await.ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    body.lines().find_map(|l| l.strip_prefix("process_resident_memory_bytes ")).and_then(|v| v.trim().parse().ok())
}

/// N watchers on one key over `conns` streams; one writer puts `total` values; reports events
/// delivered per second (N × total events) and the server's memory per watcher.
pub async fn watch(args: &BenchArgs, chans: &[Conn], endpoint: &str) -> anyhow::Result<()> {
    let key = b"bench/watch".to_vec();
    let delivered = Arc::new(AtomicUsize::new(0));
    let rss_before = server_rss(endpoint).await;
    let mut senders = Vec::new();
    let streams = chans.len();
    for (s, ch) in chans.iter().enumerate() {
        let n = args.watchers / streams + usize::from(s < args.watchers % streams);
        let (tx, rx) = tokio::sync::mpsc::channel(n.max(1));
        for _ in 0..n {
            let c = WatchCreateRequest { key: key.clone(), ..Default::default() };
            tx.send(WatchRequest { request_union: Some(RequestUnion::CreateRequest(c)) }).await?;
        }
        let mut stream = WatchClient::new(ch.clone()).watch(ReceiverStream::new(rx)).await?.into_inner();
        for _ in 0..n {
            anyhow::ensure!(stream.message().await?.is_some_and(|r| r.created), "watch not created");
        }
        let delivered = delivered.clone();
        tokio::spawn(async move {
            while let Ok(Some(r)) = stream.message().await {
                delivered.fetch_add(r.events.len(), Ordering::Relaxed);
            }
        });
        senders.push(tx);
    }
    let rss_after = server_rss(endpoint).await;
    let mut kv = KvClient::new(chans[0].clone());
    let value = vec![b'v'; args.val_size];
    let want = args.watchers * args.total;
    let start = Instant::now();
    for _ in 0..args.total {
        kv.put(PutRequest { key: key.clone(), value: value.clone(), ..Default::default() }).await?;
    }
    while delivered.load(Ordering::Relaxed) < want {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(600),
            "only {} of {want} events delivered",
            delivered.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let per_watcher = match (rss_before, rss_after) {
        (Some(a), Some(b)) => serde_json::json!(((b - a) / args.watchers.max(1) as f64).max(0.0)),
        _ => serde_json::Value::Null,
    };
    let out = serde_json::json!({
        "watchers": args.watchers,
        "events_delivered": want,
        "seconds": secs,
        "events_per_second": want as f64 / secs,
        "server_rss_bytes_per_watcher": per_watcher,
    });
    println!("{out}");
    drop(senders);
    Ok(())
}

/// Keep-alives: each client grants one lease and sends keep-alives on its own stream, one in
/// flight at a time.
pub async fn lease_keepalive(args: &BenchArgs, chans: &[Conn]) -> anyhow::Result<Report> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients.max(1) {
        let ch = chans[c % chans.len()].clone();
        let (next, total) = (next.clone(), args.total);
        tasks.push(tokio::spawn(async move {
            let mut lc = LeaseClient::new(ch);
            let id = lc.lease_grant(LeaseGrantRequest { ttl: 60, id: 0 }).await?.into_inner().id;
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let mut lat = Vec::new();
            if next.fetch_add(1, Ordering::Relaxed) >= total {
                return Ok::<_, anyhow::Error>(lat);
            }
            // Queued before the call: a gRPC server may send nothing, not even headers, until
            // it has a request to answer.
            let mut t = Instant::now();
            tx.send(LeaseKeepAliveRequest { id }).await?;
            let mut stream = lc.lease_keep_alive(ReceiverStream::new(rx)).await?.into_inner();
            loop {
                anyhow::ensure!(stream.message().await?.is_some_and(|r| r.ttl > 0), "keep-alive refused");
                lat.push(t.elapsed());
                if next.fetch_add(1, Ordering::Relaxed) >= total {
                    return Ok(lat);
                }
                t = Instant::now();
                tx.send(LeaseKeepAliveRequest { id }).await?;
            }
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        match t.await? {
            Ok(l) => all.extend(l),
            Err(_) => errors += 1,
        }
    }
    Ok(Report::new(all, errors, start.elapsed()))
}
