//! The backup's watch: every change of every key from a revision on, with prev_kv, followed
//! across member failures (it reconnects from the revision after the last one it delivered,
//! trying the members in turn). A start revision that was compacted ends it with `Compacted`:
//! what was written there can no longer be read, so only a new full snapshot can continue.

use super::error::{Result, WriterError};
use cairn_api::proto::etcdserverpb::watch_client::WatchClient;
use cairn_api::proto::etcdserverpb::{watch_request, WatchCreateRequest, WatchRequest};
use cairn_api::proto::mvccpb::Event;
use cairn_backup::time::now_ms;
use std::time::Duration;
use tokio::sync::mpsc;

pub enum Item {
    /// Changes in revision order, and when they arrived (ms since the epoch).
    Events(Vec<Event>, i64),
    /// The start revision was compacted (at this revision).
    Compacted(i64),
}

/// Runs until the receiver goes away or the start is compacted.
/// The client URLs of the members, as they are now (the writer follows whichever answers).
pub type Endpoints = std::sync::Arc<dyn Fn() -> Vec<String> + Send + Sync>;

pub async fn follow(endpoints: Endpoints, start: i64, tx: mpsc::Sender<Item>) {
    let mut next = start;
    let mut turn = 0usize;
    loop {
        let eps = endpoints();
        if !eps.is_empty() {
            let ep = eps[turn % eps.len()].clone();
            match once(&ep, &mut next, &tx).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(endpoint = %ep, next, "backup watch: {e:#}"),
            }
        }
        turn += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
        if tx.is_closed() {
            return;
        }
    }
}

async fn once(endpoint: &str, next: &mut i64, tx: &mpsc::Sender<Item>) -> Result<()> {
    let channel = tokio::time::timeout(Duration::from_secs(5), cairn_api::dial::dial(endpoint)).await??;
    let create = WatchCreateRequest {
        key: vec![0],
        range_end: vec![0],
        start_revision: *next,
        prev_kv: true,
        progress_notify: true,
        ..Default::default()
    };
    let (req_tx, req_rx) = mpsc::channel(1);
    let create = WatchRequest { request_union: Some(watch_request::RequestUnion::CreateRequest(create)) };
    req_tx.send(create).await.map_err(|_| WriterError::Failed("the watch request was not sent".into()))?;
    let mut stream = WatchClient::new(channel)
        .max_decoding_message_size(256 << 20)
        .watch(tokio_stream::wrappers::ReceiverStream::new(req_rx))
        .await?
        .into_inner();
    while let Some(resp) = stream.message().await? {
        if resp.compact_revision > 0 {
            let _ = tx.send(Item::Compacted(resp.compact_revision)).await;
            return Ok(());
        }
        if resp.canceled {
            return Err(WriterError::Failed(format!("the watch was canceled: {}", resp.cancel_reason)));
        }
        let Some(last) = resp.events.last().and_then(|e| e.kv.as_ref()).map(|kv| kv.mod_revision) else { continue };
        *next = last + 1;
        if tx.send(Item::Events(resp.events, now_ms())).await.is_err() {
            return Ok(());
        }
    }
    drop(req_tx);
    Err(WriterError::Failed("the watch stream ended".into()))
}
