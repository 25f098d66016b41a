//! What one unauthenticated client can cost a member. Raw HTTP/2 floods (endless
//! CONTINUATION frames, frames announcing 16 MiB, garbage after the preface) are refused and
//! the connection closed, with the member's peak memory (VmHWM from /proc) held to a stated
//! bound; and hundreds of watch streams on one connection never starve that connection's
//! unary calls (etcd 3.4 allows unlimited streams per connection too).

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::watch_client::WatchClient;
use cairn_api::proto::etcdserverpb::watch_request::RequestUnion;
use cairn_api::proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use cairn_e2e::harness::{Kind, Member};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What a flood may add to the member's peak resident memory.
const RSS_BOUND: u64 = 64 << 20;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A connection that has sent the client preface and an empty SETTINGS frame.
fn h2_connection(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(PREFACE).unwrap();
    s.write_all(&frame(0x4, 0, 0, &[])).unwrap();
    s
}

/// The peak resident memory of a process, from /proc.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Whether the server closes the connection within `within` (reading what it sends until EOF
/// or a reset).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

fn still_serves(m: &Member) {
    assert_eq!(m.ctl(&["put", "after", "flood"]).trim(), "OK", "{}", m.log_tail());
}

#[test]
fn a_continuation_flood_is_cut_off_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &[]);
    let pid = m.pid().unwrap();
    let before = peak_rss(pid);
    let mut s = h2_connection(&m.client_addr);
    // :method POST, :scheme http, then a header block that never ends.
    s.write_all(&frame(0x1, 0, 1, &[0x83, 0x86])).unwrap();
    let continuation = frame(0x9, 0, 1, &[b'a'; 16 * 1024]);
    let mut sent = 0u64;
    while sent < 1 << 30 {
        if s.write_all(&continuation).is_err() {
            break;
        }
        sent += continuation.len() as u64;
    }
    let grew = peak_rss(pid).saturating_sub(before);
    eprintln!(
        "continuation flood: {sent} bytes sent before the member closed the connection; peak RSS grew by {grew} bytes"
    );
    assert!(sent < 64 << 20, "the member took {sent} bytes of one header block");
    assert!(grew < RSS_BOUND, "peak RSS grew by {grew} bytes");
    still_serves(&m);
}

#[test]
fn frames_announcing_16_mib_close_the_connection_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &[]);
    let pid = m.pid().unwrap();
    let before = peak_rss(pid);
    let mut conns = Vec::new();
    for _ in 0..50 {
        let mut s = h2_connection(&m.client_addr);
        // A DATA frame header announcing 16 MiB - 1, and a first MiB of it.
        let mut header = frame(0x0, 0, 1, &[]);
        header[..3].copy_from_slice(&[0xff, 0xff, 0xff]);
        s.write_all(&header).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let chunk = vec![0x42u8; 64 * 1024];
        for _ in 0..16 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
        conns.push(s);
    }
    for (i, s) in conns.iter_mut().enumerate() {
        assert!(closed_within(s, Duration::from_secs(10)), "connection {i} is still open");
    }
    let grew = peak_rss(pid).saturating_sub(before);
    eprintln!("50 connections announcing 16 MiB frames: peak RSS grew by {grew} bytes");
    assert!(grew < RSS_BOUND, "peak RSS grew by {grew} bytes");
    still_serves(&m);
}

#[test]
fn garbage_after_the_preface_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &[]);
    for garbage in [&b"this is not HTTP/2 at all, only garbage bytes"[..], &[0u8; 40][..], &[0xffu8; 40][..]] {
        let mut s = TcpStream::connect(&m.client_addr).unwrap();
        s.write_all(PREFACE).unwrap();
        s.write_all(garbage).unwrap();
        assert!(closed_within(&mut s, Duration::from_secs(10)), "open after {garbage:?}");
    }
    still_serves(&m);
}

/// 300 watch streams on one connection, then a put on the same connection.
async fn put_after_many_watches(m: &Member) {
    let channel = m.channel().await;
    let mut watches = Vec::new();
    for i in 0..300 {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let create = WatchCreateRequest { key: format!("w{i}").into(), ..Default::default() };
        tx.send(WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) }).await.unwrap();
        let mut client = WatchClient::new(channel.clone());
        let call = client.watch(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut stream = tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .unwrap_or_else(|_| panic!("{:?}: watch stream {i} not opened", m.kind))
            .unwrap()
            .into_inner();
        let created = tokio::time::timeout(Duration::from_secs(30), stream.message()).await.unwrap().unwrap().unwrap();
        assert!(created.created);
        watches.push((tx, stream));
    }
    let put = PutRequest { key: b"w0".to_vec(), value: b"v".to_vec(), ..Default::default() };
    let answered = tokio::time::timeout(Duration::from_secs(30), KvClient::new(channel).put(put)).await;
    assert!(matches!(answered, Ok(Ok(_))), "{:?}: the put after 300 watch streams: {answered:?}", m.kind);
    // And the watch on that key sees it.
    let event = tokio::time::timeout(Duration::from_secs(30), watches[0].1.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(event.events.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_never_starve_unary_calls_on_their_connection() {
    for kind in [Kind::Etcd, Kind::Cairn] {
        let dir = tempfile::tempdir().unwrap();
        let m = Member::start(kind, dir.path(), &[]);
        put_after_many_watches(&m).await;
    }
}

/// --max-concurrent-streams limits streams per connection, as etcd's flag does: a third
/// stream over a limit of 2 waits until one of the others ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_streams_limits_streams_per_connection() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &["--max-concurrent-streams", "2"]);
    let channel = m.channel().await;
    let mut open = Vec::new();
    for i in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let create = WatchCreateRequest { key: format!("w{i}").into(), ..Default::default() };
        tx.send(WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) }).await.unwrap();
        let stream =
            WatchClient::new(channel.clone()).watch(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap();
        open.push((tx, stream));
    }
    let put = || PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() };
    let blocked = tokio::time::timeout(Duration::from_secs(2), KvClient::new(channel.clone()).put(put())).await;
    assert!(blocked.is_err(), "a third stream went through: {blocked:?}");
    drop(open.pop());
    let answered = tokio::time::timeout(Duration::from_secs(30), KvClient::new(channel).put(put())).await;
    assert!(matches!(answered, Ok(Ok(_))), "{answered:?}");
}
