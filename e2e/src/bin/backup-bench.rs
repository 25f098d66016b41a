//! `backup-bench`: what backups cost, on this machine, against etcd 3.4 where etcd has an
//! equivalent. Fills a single Cairn member and a single Debian etcd 3.4 member with the same
//! data (default 1 GiB of random, incompressible values), then times:
//! - `etcdctl snapshot save` from each (the snapshot stream itself),
//! - a local restore from that file (`etcdctl snapshot restore` / `cairn snapshot restore`),
//! - Cairn's full backup into S3 (moto 5.2.5: stream, zstd, multipart) and `cairn restore`
//!   from it (download, checks, load);
//! - and the delta lag: under a steady write load, from each write's acknowledgement to the
//!   moment the catalog's head covers it (the write is durable in S3).
//!
//! Run it from a release build, with the release `cairn`:
//! `cargo build --release --workspace --bins && CAIRN_BIN=target/release/cairn target/release/backup-bench`.

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::PutRequest;
use cairn_e2e::harness::{cairn_bin, Kind, Member};
use cairn_e2e::s3::{Moto, ACCESS_KEY, SECRET_KEY};
use cairn_operator::backup::cron::Schedule;
use cairn_operator::backup::writer::{Progress, Writer, WriterConfig};
use clap::Parser;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Data to fill each member with.
    #[arg(long, default_value_t = 1024)]
    total_mib: usize,
    #[arg(long, default_value_t = 64)]
    value_kib: usize,
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Steady load for the delta lag: puts per second, for this long.
    #[arg(long, default_value_t = 500)]
    lag_rate: u64,
    #[arg(long, default_value_t = 30)]
    lag_seconds: u64,
    #[arg(long, default_value = "1s")]
    delta_interval: String,
    /// Where the members' data dirs go (they need room for the data, several times).
    #[arg(long, default_value = "/var/tmp")]
    work_dir: std::path::PathBuf,
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn run(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    t.elapsed()
}

async fn fill(m: &Member, a: &Args) -> Duration {
    let n = a.total_mib * 1024 / a.value_kib;
    let ch = m.channel().await;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.clients {
        let mut kv = KvClient::new(ch.clone());
        let (clients, size) = (a.clients, a.value_kib * 1024);
        tasks.push(tokio::spawn(async move {
            for i in (c..n).step_by(clients) {
                let value: Vec<u8> = (0..size).map(|_| rand::random::<u8>()).collect();
                let put = PutRequest { key: format!("data/{i:08}").into_bytes(), value, ..Default::default() };
                kv.put(put).await.expect("put");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    t.elapsed()
}

fn dir_size(p: &Path) -> u64 {
    let out = Command::new("du").args(["-sb", &p.display().to_string()]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("0").parse().unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let dir = tempfile::tempdir_in(&a.work_dir).unwrap();
    let quota = ["--quota-backend-bytes", "17179869184"];
    let mut rows = Vec::new();
    let mut saved = Vec::new();
    for kind in [Kind::Etcd, Kind::Cairn] {
        let m = Member::start(kind, &dir.path().join(format!("{kind:?}")), &quota);
        let filled = fill(&m, &a).await;
        let file = dir.path().join(format!("{kind:?}.snapshot"));
        let save = run(Command::new("etcdctl").args(["--endpoints", &m.client_addr, "snapshot", "save"]).arg(&file));
        let restored = dir.path().join(format!("{kind:?}.restored"));
        let restore = match kind {
            Kind::Etcd => {
                run(Command::new("etcdctl").args(["snapshot", "restore"]).arg(&file).arg("--data-dir").arg(&restored))
            }
            Kind::Cairn => {
                run(Command::new(cairn_bin()).args(["snapshot", "restore"]).arg(&file).arg("--data-dir").arg(&restored))
            }
        };
        eprintln!("{kind:?}: filled in {}, saved in {}, restored in {}", secs(filled), secs(save), secs(restore));
        saved.push((kind, filled, save, restore, std::fs::metadata(&file).unwrap().len()));
        if kind == Kind::Etcd {
            drop(m);
            continue;
        }
        // Cairn to S3 and back.
        let moto = Moto::start(&dir.path().join("moto.log"));
        let store = moto.store("bench", "bench").await;
        let progress = Arc::new(Mutex::new(Progress::default()));
        let endpoint = m.client_addr.clone();
        let writer = Writer {
            store: store.clone(),
            endpoints: Arc::new(move || vec![endpoint.clone()]),
            cfg: WriterConfig {
                schedule: Schedule::parse("0 0 30 2 *").unwrap(),
                delta_interval: cairn_operator::units::duration(&a.delta_interval).unwrap(),
                keep: 7,
                max_age: None,
            },
            progress: progress.clone(),
        };
        let t = Instant::now();
        let task = tokio::spawn(writer.run());
        while progress.lock().unwrap().full_revision.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let backup = t.elapsed();
        let stored = progress.lock().unwrap().bytes_uploaded;

        // Delta lag under a steady load.
        let mut kv = KvClient::new(m.channel().await);
        let mut lags = Vec::new();
        let period = Duration::from_secs(1) / a.lag_rate as u32;
        let end = Instant::now() + Duration::from_secs(a.lag_seconds);
        let mut pending: Vec<(i64, Instant)> = Vec::new();
        let mut next = Instant::now();
        while Instant::now() < end || !pending.is_empty() {
            if Instant::now() < end && Instant::now() >= next {
                let put = PutRequest { key: b"lag".to_vec(), value: vec![b'x'; 1024], ..Default::default() };
                let rev = kv.put(put).await.unwrap().into_inner().header.unwrap().revision;
                pending.push((rev, Instant::now()));
                next += period;
            }
            let head = progress.lock().unwrap().head.unwrap_or(0);
            pending.retain(|(rev, at)| {
                if *rev <= head {
                    lags.push(at.elapsed());
                    false
                } else {
                    true
                }
            });
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        task.abort();
        lags.sort();
        let pct = |p: f64| lags[((lags.len() as f64 * p) as usize).min(lags.len() - 1)];

        let member = Member::plan_cluster(Kind::Cairn, &dir.path().join("from-s3"), &["127.0.0.1"], &[]).remove(0);
        let s3_restore = run(Command::new(cairn_bin())
            .args([
                "restore",
                "--s3-bucket",
                "bench",
                "--s3-prefix",
                "bench",
                "--s3-endpoint",
                &moto.endpoint,
                "--s3-force-path-style",
            ])
            .args(["--name", &member.name(), "--data-dir", &member.data_dir.display().to_string()])
            .args(["--initial-cluster", &member.initial_cluster(), "--initial-advertise-peer-urls", &member.peer_url])
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY));
        rows.push(format!("| Cairn full backup to S3 (moto), {} stored | {} |", human(stored), secs(backup)));
        rows.push(format!(
            "| `cairn restore` from S3 (full + {} s of deltas), data dir {} | {} |",
            a.lag_seconds,
            human(dir_size(&member.data_dir)),
            secs(s3_restore)
        ));
        rows.push(format!(
            "| delta lag at {:.0} puts/s of 1 KiB, deltaInterval {}: p50 / p90 / p99 / max | {:.0} / {:.0} / {:.0} / {:.0} ms ({} writes) |",
            lags.len() as f64 / a.lag_seconds as f64,
            a.delta_interval,
            pct(0.5).as_secs_f64() * 1000.0,
            pct(0.9).as_secs_f64() * 1000.0,
            pct(0.99).as_secs_f64() * 1000.0,
            lags.last().unwrap().as_secs_f64() * 1000.0,
            lags.len()
        ));
    }
    let (e, c) = (&saved[0], &saved[1]);
    println!("{} MiB in {} KiB random values, {} clients\n", a.total_mib, a.value_kib, a.clients);
    println!("| step | etcd 3.4 | Cairn | Cairn/etcd time |\n|---|---:|---:|---:|");
    let ratio = |x: Duration, y: Duration| y.as_secs_f64() / x.as_secs_f64();
    println!("| fill | {} | {} | {:.2} |", secs(e.1), secs(c.1), ratio(e.1, c.1));
    println!(
        "| `etcdctl snapshot save` ({} / {}) | {} | {} | {:.2} |",
        human(e.4),
        human(c.4),
        secs(e.2),
        secs(c.2),
        ratio(e.2, c.2)
    );
    println!("| local snapshot restore | {} | {} | {:.2} |", secs(e.3), secs(c.3), ratio(e.3, c.3));
    println!("\n| Cairn only | |\n|---|---:|");
    for r in rows {
        println!("{r}");
    }
}

fn human(b: u64) -> String {
    format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
}
