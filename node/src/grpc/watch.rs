//! etcdserverpb.Watch: one bidirectional stream carries many watchers. Every response of a
//! stream goes through one bounded queue, so `created` always precedes the watcher's events
//! and a client that stops reading only fills its own queue (its watchers then catch up from
//! history, see `storage::mvcc::watch`).

use super::{credentials, Common};
use crate::auth::{Credentials, Need};
use crate::error::EtcdError;
use crate::proto::etcdserverpb::watch_create_request::FilterType;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};
use crate::storage::mvcc::watch::{stream_queue, QueueSender, WatchHub, Watcher};
use crate::storage::mvcc::KeyRange;
use std::collections::{BTreeSet, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

crate::headed!(WatchResponse);

/// Responses, and bytes, queued per stream before its watchers fall back to catching up from
/// history: what a client that stops reading can cost.
const STREAM_QUEUE: usize = 1024;
const STREAM_QUEUE_BYTES: usize = 4 << 20;

pub struct WatchService {
    ctx: Arc<Common>,
    hub: Arc<WatchHub>,
    /// --max-request-bytes: a revision's events larger than this go out in fragments.
    max_request_bytes: usize,
    /// How often watchers that asked for them get progress notifications.
    progress_interval: Duration,
    next_stream: AtomicU64,
}

impl WatchService {
    pub fn new(ctx: Arc<Common>, hub: Arc<WatchHub>, max_request_bytes: usize, progress_interval: Duration) -> Self {
        WatchService { ctx, hub, max_request_bytes, progress_interval, next_stream: AtomicU64::new(1) }
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { revision, ..Default::default() })
}

struct StreamState {
    id: u64,
    next_watch_id: i64,
    /// Watchers that asked for progress notifications.
    progress: BTreeSet<i64>,
    /// Watchers that accept a large revision split over several responses.
    fragment: Arc<Mutex<HashSet<i64>>>,
    hub: Arc<WatchHub>,
    ctx: Arc<Common>,
    progress_interval: Duration,
    tx: QueueSender,
    /// What the stream's client sent to identify itself: each watcher is checked at creation.
    creds: Credentials,
}

impl StreamState {
    /// Whether the client may watch what `c` asks for (read on it, as etcd checks it).
    async fn permitted(&self, c: &WatchCreateRequest) -> Result<(), EtcdError> {
        let who = self.ctx.identify(&self.creds).await?;
        // An empty key is the smallest key, "\0" (etcd's reading).
        let key: &[u8] = if c.key.is_empty() { &[0] } else { &c.key };
        self.ctx.auth.check(&who, Need::Read(key, &c.range_end))
    }

    async fn send(&self, r: WatchResponse) -> bool {
        self.tx.send(r).await
    }

    /// etcd's answer to a creation it refuses: a watcher created and canceled at once.
    async fn refuse(&self, head: i64, cancel_reason: String) -> bool {
        let r = WatchResponse {
            header: header(head),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason,
            ..Default::default()
        };
        self.send(r).await
    }

    async fn create(&mut self, c: WatchCreateRequest) -> bool {
        let head = self.hub.revision();
        if let Err(e) = self.permitted(&c).await {
            // etcd answers with a canceled watcher and one of these errors, as Go's gRPC
            // prints them.
            let e = match e {
                EtcdError::InvalidAuthToken | EtcdError::AuthOldRevision | EtcdError::UserEmpty => e,
                _ => EtcdError::PermissionDenied,
            };
            let reason = format!("rpc error: code = {:?} desc = {e}", super::status::code(&e));
            return self.refuse(head, reason).await;
        }
        let id = if c.watch_id != 0 {
            c.watch_id
        } else {
            while self.hub.contains((self.id, self.next_watch_id)) {
                self.next_watch_id += 1;
            }
            self.next_watch_id += 1;
            self.next_watch_id - 1
        };
        if self.hub.contains((self.id, id)) {
            return self.refuse(head, "mvcc: duplicate watch ID provided on the WatchStream".into()).await;
        }
        if !self.send(WatchResponse { header: header(head), watch_id: id, created: true, ..Default::default() }).await {
            return false;
        }
        let filters: Vec<FilterType> = c.filters().collect();
        let watcher = Watcher {
            range: KeyRange::from_request(&c.key, &c.range_end),
            next_rev: if c.start_revision > 0 { c.start_revision } else { head + 1 },
            no_put: filters.contains(&FilterType::Noput),
            no_delete: filters.contains(&FilterType::Nodelete),
            prev_kv: c.prev_kv,
            tx: self.tx.clone(),
        };
        if c.progress_notify {
            self.progress.insert(id);
        }
        if c.fragment {
            self.fragment.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
        }
        // After `created` is queued, so no event can overtake it.
        self.hub.add((self.id, id), watcher);
        true
    }

    /// etcd's periodic progress notification: an empty response at the current revision to
    /// each synced watcher that asked for it.
    async fn notify_progress(&mut self) -> bool {
        let ids: Vec<i64> = self.progress.iter().copied().filter(|id| self.hub.contains((self.id, *id))).collect();
        self.progress.retain(|id| ids.contains(id));
        for id in ids {
            if self.hub.is_synced((self.id, id))
                && !self
                    .send(WatchResponse { header: header(self.hub.revision()), watch_id: id, ..Default::default() })
                    .await
            {
                return false;
            }
        }
        true
    }

    async fn serve(mut self, mut incoming: Streaming<WatchRequest>) {
        let streams = &crate::metrics::get().mvcc.watch_streams;
        streams.inc();
        let ctx = self.ctx.clone();
        let mut progress = tokio::time::interval(self.progress_interval);
        progress.tick().await;
        loop {
            let req = tokio::select! {
                r = incoming.next() => match r {
                    Some(Ok(req)) => req,
                    _ => break,
                },
                _ = progress.tick() => {
                    if self.notify_progress().await { continue } else { break }
                }
                _ = ctx.stopped() => break,
            };
            let alive = match req.request_union {
                Some(RequestUnion::CreateRequest(c)) => self.create(c).await,
                Some(RequestUnion::CancelRequest(c)) => {
                    self.progress.remove(&c.watch_id);
                    self.fragment.lock().unwrap_or_else(|e| e.into_inner()).remove(&c.watch_id);
                    !self.hub.remove((self.id, c.watch_id))
                        || self
                            .send(WatchResponse {
                                header: header(self.hub.revision()),
                                watch_id: c.watch_id,
                                canceled: true,
                                ..Default::default()
                            })
                            .await
                }
                Some(RequestUnion::ProgressRequest(_)) => {
                    // Only a revision every watcher of the stream has reached may be reported.
                    while !self.hub.stream_synced(self.id) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    self.send(WatchResponse { header: header(self.hub.revision()), watch_id: -1, ..Default::default() })
                        .await
                }
                None => true,
            };
            if !alive {
                break;
            }
        }
        self.hub.remove_stream(self.id);
        streams.dec();
    }
}

/// Splits a response whose events exceed `limit` bytes into several, each but the last marked
/// `fragment` (etcd's rule, for watchers that asked for it).
fn fragments(r: WatchResponse, limit: usize) -> Vec<WatchResponse> {
    use prost::Message;
    if r.encoded_len() <= limit || r.events.len() < 2 {
        return vec![r];
    }
    let mut out = Vec::new();
    let mut cur = WatchResponse { events: Vec::new(), ..r.clone() };
    let mut size = 0;
    for ev in r.events {
        let n = ev.encoded_len();
        if size + n > limit && !cur.events.is_empty() {
            out.push(WatchResponse { fragment: true, ..cur.clone() });
            cur.events.clear();
            size = 0;
        }
        size += n;
        cur.events.push(ev);
    }
    out.push(cur);
    out
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<Streaming<WatchRequest>>) -> Result<Response<WatchStream>, Status> {
        let (tx, rx) = stream_queue(STREAM_QUEUE, STREAM_QUEUE_BYTES);
        let fragment = Arc::new(Mutex::new(HashSet::new()));
        let creds = credentials(&request);
        let state = StreamState {
            id: self.next_stream.fetch_add(1, Ordering::Relaxed),
            next_watch_id: 0,
            progress: BTreeSet::new(),
            fragment: fragment.clone(),
            hub: self.hub.clone(),
            ctx: self.ctx.clone(),
            progress_interval: self.progress_interval,
            tx,
            creds,
        };
        tokio::spawn(state.serve(request.into_inner()));
        let (ctx, max_request_bytes) = (self.ctx.clone(), self.max_request_bytes);
        let out = futures::StreamExt::flat_map(rx.into_stream(), move |mut r| {
            ctx.fill(&mut r);
            crate::metrics::get().mvcc.events.inc_by(r.events.len() as u64);
            let split = fragment.lock().unwrap_or_else(|e| e.into_inner()).contains(&r.watch_id);
            let parts = if split { fragments(r, max_request_bytes) } else { vec![r] };
            futures::stream::iter(parts.into_iter().map(Ok))
        });
        Ok(Response::new(Box::pin(out)))
    }
}
