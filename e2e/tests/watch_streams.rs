//! Watch streams under load: events arrive in revision order with no gap and no duplicate,
//! and a client that stops reading hurts nobody and still gets everything once it reads again.

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::watch_client::WatchClient;
use cairn_api::proto::etcdserverpb::watch_request::RequestUnion;
use cairn_api::proto::etcdserverpb::{
    CompactionRequest, PutRequest, RangeRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use cairn_e2e::harness::{http_get, Kind, Member};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

async fn channel(m: &Member) -> Channel {
    Channel::from_shared(format!("http://{}", m.client_addr)).unwrap().connect().await.unwrap()
}

/// Opens a stream with one watcher on `prefix` from `start`; returns it after `created`.
async fn watch(ch: Channel, prefix: &str, start: i64) -> (Streaming<WatchResponse>, mpsc::Sender<WatchRequest>) {
    let (tx, rx) = mpsc::channel(4);
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: prefix.into(),
            range_end: end,
            start_revision: start,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut stream = WatchClient::new(ch).watch(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created && created.events.is_empty(), "first answer must be `created`: {created:?}");
    (stream, tx)
}

/// Reads events until `count` arrived; checks each revision comes exactly once, in order.
async fn collect_contiguous(stream: &mut Streaming<WatchResponse>, first_rev: i64, count: usize) {
    let mut expect = first_rev;
    let deadline = Instant::now() + Duration::from_secs(120);
    while expect < first_rev + count as i64 {
        assert!(Instant::now() < deadline, "only reached revision {expect}");
        let resp = tokio::time::timeout(Duration::from_secs(30), stream.message()).await.unwrap().unwrap().unwrap();
        assert!(!resp.canceled, "watch canceled: {resp:?}");
        for ev in resp.events {
            let rev = ev.kv.unwrap().mod_revision;
            assert_eq!(rev, expect, "gap, duplicate or reorder");
            expect += 1;
        }
    }
}

fn gauge(m: &Member, name: &str) -> u64 {
    let (_, body) = http_get(&m.client_addr, "/metrics").unwrap();
    let prefix = format!("{name} ");
    body.lines().find_map(|l| l.strip_prefix(prefix.as_str())).unwrap().trim().parse().unwrap()
}

async fn current_revision(kv: &mut KvClient<Channel>) -> i64 {
    kv.range(RangeRequest { key: b"x".to_vec(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision
}

async fn write(ch: Channel, writers: usize, each: usize, value_size: usize) {
    write_round(ch, 0, writers, each, value_size).await
}

/// `writers` concurrent clients each put `each` keys of their own, distinct for each `round`.
async fn write_round(ch: Channel, round: usize, writers: usize, each: usize, value_size: usize) {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut kv = KvClient::new(ch.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                let key = format!("w/{round}/{w}/{i}").into_bytes();
                kv.put(PutRequest { key, value: vec![b'v'; value_size], ..Default::default() }).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_order_without_gaps_under_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &[]);
    let ch = channel(&m).await;
    let start = current_revision(&mut KvClient::new(ch.clone())).await + 1;
    let (mut head, _h) = watch(ch.clone(), "w/", 0).await;
    let (mut past, _p) = watch(ch.clone(), "w/", start).await;
    write(ch.clone(), 8, 200, 64).await;
    collect_contiguous(&mut head, start, 1600).await;
    collect_contiguous(&mut past, start, 1600).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_hurts_nobody_and_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &[]);
    let ch = channel(&m).await;
    let start = current_revision(&mut KvClient::new(ch.clone())).await + 1;
    // Its own connection, so only its stream stalls.
    let (mut stalled, _s) = watch(channel(&m).await, "w/", 0).await;
    let (mut live, live_requests) = watch(ch.clone(), "w/", 0).await;
    // How many events the stalled stream absorbs before it falls behind depends on how the
    // applier batched them, so write in rounds until it has, however long that takes.
    const ROUND: usize = 1024;
    let mut written = 0;
    loop {
        assert!(written < 64 * ROUND, "the stalled watcher never fell behind: the test proved nothing");
        let writer = tokio::spawn(write_round(ch.clone(), written / ROUND, 16, ROUND / 16, 1024));
        // The reading watcher keeps up while the other one reads nothing.
        collect_contiguous(&mut live, start + written as i64, ROUND).await;
        writer.await.unwrap();
        written += ROUND;
        // Once the live stream's progress request is answered, its watcher is synced, so a
        // slow watcher can only be the stalled one.
        live_requests
            .send(WatchRequest { request_union: Some(RequestUnion::ProgressRequest(Default::default())) })
            .await
            .unwrap();
        let progress = tokio::time::timeout(Duration::from_secs(60), live.message()).await.unwrap().unwrap().unwrap();
        assert!(progress.watch_id == -1 && progress.events.is_empty(), "expected a progress answer: {progress:?}");
        if gauge(&m, "etcd_debugging_mvcc_slow_watcher_total") == 1 {
            break;
        }
    }
    assert!(gauge(&m, "cairn_watchers_fell_behind_total") > 0);
    // Now it reads: everything, from history, in order.
    collect_contiguous(&mut stalled, start, written).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_compacted_revision_is_created_then_canceled() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &[]);
    let ch = channel(&m).await;
    write(ch.clone(), 1, 10, 64).await;
    KvClient::new(ch.clone()).compact(CompactionRequest { revision: 6, physical: true }).await.unwrap();
    let (mut s, _t) = watch(ch.clone(), "w/", 2).await;
    let resp = s.message().await.unwrap().unwrap();
    assert!(resp.canceled);
    assert_eq!(resp.compact_revision, 6);
    // From the compaction revision on, history is still there.
    let (mut s, _t) = watch(ch, "w/", 6).await;
    collect_contiguous(&mut s, 6, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_watchers_each_get_their_complete_stream() {
    const KEYS: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &[]);
    let ch = channel(&m).await;
    let start = current_revision(&mut KvClient::new(ch.clone())).await + 1;
    // One stream, one watcher per key.
    let (tx, rx) = mpsc::channel(KEYS);
    for i in 0..KEYS {
        let key = format!("k/{i:05}").into_bytes();
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest { key, ..Default::default() })),
        })
        .await
        .unwrap();
    }
    let mut many = WatchClient::new(ch.clone()).watch(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let mut created = 0;
    while created < KEYS {
        let r = many.message().await.unwrap().unwrap();
        assert!(r.created, "creates are answered first: {r:?}");
        assert_eq!(r.watch_id, created as i64, "in request order");
        created += 1;
    }
    // Another connection stalls on a watcher of everything.
    let (mut stalled, _s) = watch(channel(&m).await, "k/", 0).await;
    let mut kv = KvClient::new(ch.clone());
    for round in 0..2 {
        for i in 0..KEYS {
            let key = format!("k/{i:05}").into_bytes();
            let value = vec![b'0' + round as u8; 2048];
            kv.put(PutRequest { key, value, ..Default::default() }).await.unwrap();
        }
    }
    // Every per-key watcher gets exactly its two events, in order.
    let mut seen = vec![Vec::new(); KEYS];
    let mut total = 0;
    while total < 2 * KEYS {
        let r = tokio::time::timeout(Duration::from_secs(60), many.message()).await.unwrap().unwrap().unwrap();
        for ev in r.events {
            seen[r.watch_id as usize].push(ev.kv.unwrap().mod_revision);
            total += 1;
        }
    }
    for (i, revs) in seen.iter().enumerate() {
        let first = start + i as i64;
        assert_eq!(revs, &vec![first, first + KEYS as i64], "watcher {i}");
    }
    assert!(gauge(&m, "cairn_watchers_fell_behind_total") > 0, "the stalled stream never fell behind");
    collect_contiguous(&mut stalled, start, 2 * KEYS).await;
}

type Watching = (Streaming<WatchResponse>, mpsc::Sender<WatchRequest>);

const HEAVY_WRITERS: usize = 64;
const HEAVY_EACH: usize = 1024;

/// A member after 128 MiB of puts under `w/` (from revision 2), with one stream watching `w/`
/// that either reads everything (`reading`) or nothing; returns its resident memory then, and
/// the stream (kept open: closing its request side ends it).
async fn after_heavy_writes(dir: &std::path::Path, reading: bool) -> (u64, Member, Watching) {
    let m = Member::start(Kind::Cairn, dir, &[]);
    let ch = channel(&m).await;
    let (mut stream, requests) = watch(channel(&m).await, "w/", 2).await;
    let writer = tokio::spawn(write(ch, HEAVY_WRITERS, HEAVY_EACH, 2048));
    if reading {
        collect_contiguous(&mut stream, 2, HEAVY_WRITERS * HEAVY_EACH).await;
    }
    writer.await.unwrap();
    (gauge(&m, "process_resident_memory_bytes"), m, (stream, requests))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_costs_bounded_memory() {
    // The same writes with a reading watcher are the control: what the store, its caches and
    // the allocator cost whatever the watchers do.
    let control_dir = tempfile::tempdir().unwrap();
    let (control, control_member, _) = after_heavy_writes(control_dir.path(), true).await;
    drop(control_member);
    let dir = tempfile::tempdir().unwrap();
    let (stalled, m, (mut stream, _requests)) = after_heavy_writes(dir.path(), false).await;
    // The stalled watcher is owed 128 MiB; holding it would show. Its stream may hold its byte
    // budget (4 MiB) plus the HTTP/2 buffers.
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!("resident: {:.1} MiB with a stalled watcher, {:.1} MiB with a reading one", mib(stalled), mib(control));
    assert!(stalled < control + (48 << 20), "a stalled watcher cost {:.1} MiB", mib(stalled.saturating_sub(control)));
    assert!(gauge(&m, "cairn_watchers_fell_behind_total") > 0, "the watcher never fell behind");
    // And it misses nothing once it reads.
    collect_contiguous(&mut stream, 2, HEAVY_WRITERS * HEAVY_EACH).await;
}
