//! Watch options: periodic progress notifications and fragmented large revisions.

use cairn_api::proto::etcdserverpb::kv_client::KvClient;
use cairn_api::proto::etcdserverpb::request_op::Request;
use cairn_api::proto::etcdserverpb::watch_client::WatchClient;
use cairn_api::proto::etcdserverpb::watch_request::RequestUnion;
use cairn_api::proto::etcdserverpb::{
    PutRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use cairn_e2e::harness::{Kind, Member};
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

async fn open(
    ch: Channel,
    creates: Vec<WatchCreateRequest>,
) -> (Streaming<WatchResponse>, tokio::sync::mpsc::Sender<WatchRequest>) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let n = creates.len();
    for c in creates {
        tx.send(WatchRequest { request_union: Some(RequestUnion::CreateRequest(c)) }).await.unwrap();
    }
    let mut s = WatchClient::new(ch).watch(ReceiverStream::new(rx)).await.unwrap().into_inner();
    for _ in 0..n {
        assert!(s.message().await.unwrap().unwrap().created);
    }
    (s, tx)
}

async fn next(s: &mut Streaming<WatchResponse>) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), s.message()).await.expect("a response in time").unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_watchers_get_progress_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &["--experimental-watch-progress-notify-interval", "200ms"]);
    let ch = m.channel().await;
    let create = WatchCreateRequest { key: b"p".to_vec(), progress_notify: true, ..Default::default() };
    let (mut s, _tx) = open(ch.clone(), vec![create]).await;
    let rev = KvClient::new(ch)
        .put(PutRequest { key: b"elsewhere".to_vec(), value: b"v".to_vec(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision;
    // A notification reports a revision the watcher has fully seen: eventually the new one.
    loop {
        let r = next(&mut s).await;
        assert!(r.events.is_empty() && r.watch_id == 0 && !r.canceled, "a progress notification: {r:?}");
        if r.header.unwrap().revision == rev {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_revisions_are_fragmented_only_for_watchers_that_ask() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &["--max-request-bytes", "10000"]);
    let ch = m.channel().await;
    let mut kv = KvClient::new(ch.clone());
    let put = |i: usize, size: usize| PutRequest {
        key: format!("f{i}").into_bytes(),
        value: vec![b'x'; size],
        ..Default::default()
    };
    for i in 0..8 {
        kv.put(put(i, 1000)).await.unwrap();
    }
    let watch = |fragment| WatchCreateRequest {
        key: b"f".to_vec(),
        range_end: b"g".to_vec(),
        prev_kv: true,
        fragment,
        ..Default::default()
    };
    let (mut split, _a) = open(ch.clone(), vec![watch(true)]).await;
    let (mut whole, _b) = open(ch, vec![watch(false)]).await;
    // One revision of 8 puts; with previous values its events exceed 10000 bytes.
    let success = (0..8).map(|i| RequestOp { request: Some(Request::RequestPut(put(i, 1000))) }).collect();
    kv.txn(TxnRequest { compare: vec![], success, failure: vec![] }).await.unwrap();
    let r = next(&mut whole).await;
    assert_eq!((r.events.len(), r.fragment), (8, false));
    let mut keys = Vec::new();
    let mut parts = 0;
    loop {
        let r = next(&mut split).await;
        parts += 1;
        keys.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().key.clone()));
        if !r.fragment {
            break;
        }
    }
    assert!(parts >= 2, "expected fragments, got one response");
    assert_eq!(keys, (0..8).map(|i| format!("f{i}").into_bytes()).collect::<Vec<_>>());
}

fn create(c: WatchCreateRequest) -> WatchRequest {
    WatchRequest { request_union: Some(RequestUnion::CreateRequest(c)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_chosen_ids_cancel_and_progress_requests() {
    use cairn_api::proto::etcdserverpb::watch_create_request::FilterType;
    use cairn_api::proto::etcdserverpb::{DeleteRangeRequest, WatchCancelRequest, WatchProgressRequest};
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Cairn, dir.path(), &[]);
    let ch = m.channel().await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let w = |id: i64, filters: Vec<i32>| WatchCreateRequest {
        key: b"k".to_vec(),
        watch_id: id,
        filters,
        ..Default::default()
    };
    tx.send(create(w(7, vec![FilterType::Noput as i32]))).await.unwrap();
    tx.send(create(w(9, vec![FilterType::Nodelete as i32]))).await.unwrap();
    tx.send(create(w(7, vec![]))).await.unwrap();
    let mut s = WatchClient::new(ch.clone()).watch(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let (a, b, dup) = (next(&mut s).await, next(&mut s).await, next(&mut s).await);
    assert_eq!((a.created, a.watch_id, b.created, b.watch_id), (true, 7, true, 9), "client-chosen ids");
    assert!(dup.created && dup.canceled && dup.watch_id == -1, "a duplicate id is refused: {dup:?}");
    assert_eq!(dup.cancel_reason, "mvcc: duplicate watch ID provided on the WatchStream");
    let mut kv = KvClient::new(ch);
    kv.put(PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() }).await.unwrap();
    kv.delete_range(DeleteRangeRequest { key: b"k".to_vec(), ..Default::default() }).await.unwrap();
    // Watcher 9 drops deletes, watcher 7 drops puts.
    let mut got = Vec::new();
    while got.len() < 2 {
        let r = next(&mut s).await;
        got.extend(r.events.iter().map(|e| (r.watch_id, e.r#type)));
    }
    got.sort();
    assert_eq!(got, vec![(7, 1), (9, 0)]);
    tx.send(WatchRequest { request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest { watch_id: 9 })) })
        .await
        .unwrap();
    let c = next(&mut s).await;
    assert!(c.canceled && c.watch_id == 9, "cancel is confirmed: {c:?}");
    let rev = kv.put(PutRequest { key: b"k".to_vec(), value: b"w".to_vec(), ..Default::default() }).await.unwrap();
    let rev = rev.into_inner().header.unwrap().revision;
    tx.send(WatchRequest { request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})) })
        .await
        .unwrap();
    // Watcher 7 filters puts, so the next answer is the progress report, at the head.
    let p = next(&mut s).await;
    assert!(p.events.is_empty() && p.watch_id == -1, "progress report: {p:?}");
    assert_eq!(p.header.unwrap().revision, rev);
}
