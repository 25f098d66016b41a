//! etcdserverpb.Watch: one bidirectional stream carries many watchers. Every response of a
//! stream goes through one bounded queue, so `created` always precedes the watcher's events
//! and a client that stops reading only fills its own queue (its watchers then catch up from
//! history, see `storage::mvcc::watch`).

use super::ServerCtx;
use crate::proto::etcdserverpb::watch_create_request::FilterType;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};
use crate::storage::mvcc::watch::{WatchHub, Watcher};
use crate::storage::mvcc::KeyRange;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

crate::headed!(WatchResponse);

/// Responses queued per stream before its watchers fall back to catching up from history.
const STREAM_QUEUE: usize = 128;

pub struct WatchService {
    ctx: Arc<ServerCtx>,
    next_stream: AtomicU64,
}

impl WatchService {
    pub fn new(ctx: Arc<ServerCtx>) -> Self {
        WatchService { ctx, next_stream: AtomicU64::new(1) }
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { revision, ..Default::default() })
}

struct StreamState {
    id: u64,
    next_watch_id: i64,
    hub: Arc<WatchHub>,
    ctx: Arc<ServerCtx>,
    tx: mpsc::Sender<WatchResponse>,
}

impl StreamState {
    async fn send(&self, r: WatchResponse) -> bool {
        self.tx.send(r).await.is_ok()
    }

    async fn create(&mut self, c: WatchCreateRequest) -> bool {
        let head = self.hub.revision();
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
            return self
                .send(WatchResponse {
                    header: header(head),
                    watch_id: -1,
                    created: true,
                    canceled: true,
                    cancel_reason: "mvcc: duplicate watch ID provided on the WatchStream".into(),
                    ..Default::default()
                })
                .await;
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
        // After `created` is queued, so no event can overtake it.
        self.hub.add((self.id, id), watcher);
        true
    }

    async fn serve(mut self, mut incoming: Streaming<WatchRequest>) {
        let ctx = self.ctx.clone();
        loop {
            let req = tokio::select! {
                r = incoming.next() => match r {
                    Some(Ok(req)) => req,
                    _ => break,
                },
                _ = ctx.stopped() => break,
            };
            let alive = match req.request_union {
                Some(RequestUnion::CreateRequest(c)) => self.create(c).await,
                Some(RequestUnion::CancelRequest(c)) => {
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
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<Streaming<WatchRequest>>) -> Result<Response<WatchStream>, Status> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let state = StreamState {
            id: self.next_stream.fetch_add(1, Ordering::Relaxed),
            next_watch_id: 0,
            hub: self.ctx.hub.clone(),
            ctx: self.ctx.clone(),
            tx,
        };
        tokio::spawn(state.serve(request.into_inner()));
        let ctx = self.ctx.clone();
        let out = ReceiverStream::new(rx).map(move |mut r| {
            ctx.fill(&mut r);
            Ok(r)
        });
        Ok(Response::new(Box::pin(out)))
    }
}
