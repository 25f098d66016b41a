//! A watch: newline-separated JSON events ({"type", "object"}) on a chunked response, from a
//! resourceVersion (or from the current state, sent as ADDED events first), filtered by
//! namespace and selectors (an object moving out of a selector is DELETED for that watch,
//! into it ADDED), with BOOKMARK events when asked, and a 410 ERROR event when the version
//! is older than the event log holds.

use super::errors::ApiError;
use super::resources::Resource;
use super::selector::Selector;
use super::store::{Event, Store};
use axum::body::Body;
use axum::response::Response;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

pub struct WatchRequest {
    pub resource: Resource,
    pub namespace: Option<String>,
    pub from: Option<u64>,
    pub labels: Selector,
    pub fields: Selector,
    pub bookmarks: bool,
    pub timeout: Duration,
    /// sendInitialEvents=true: the current objects as ADDED, then a bookmark that says so.
    pub initial_events: bool,
    /// `kubectl get -w`: each object as a one-row Table (Some(true): rows carry the object).
    pub table: Option<bool>,
}

const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

fn line(kind: &str, object: &Value) -> String {
    format!("{}\n", json!({"type": kind, "object": object}))
}

impl WatchRequest {
    fn wanted(&self, obj: &Value) -> bool {
        let ns_ok = self.namespace.as_deref().is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns));
        ns_ok && self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The event as this watch sees it, if at all.
    fn view(&self, e: &Event) -> Option<String> {
        if e.key.0 != self.resource.id() {
            return None;
        }
        let now = self.wanted(&e.object);
        let before = e.prev.as_ref().is_some_and(|p| self.wanted(p));
        let kind = match (e.kind, before, now) {
            ("DELETED", true, _) => "DELETED",
            ("DELETED", false, _) => return None,
            (_, false, true) => "ADDED",
            (_, true, true) => "MODIFIED",
            (_, true, false) => "DELETED",
            (_, false, false) => return None,
        };
        Some(self.event(kind, &e.object, e.rv))
    }

    fn event(&self, kind: &str, obj: &Value, rv: u64) -> String {
        match self.table {
            Some(full) => line(kind, &super::table::render(&self.resource, std::slice::from_ref(obj), rv, full)),
            None => line(kind, obj),
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> String {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            "BOOKMARK",
            &json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": meta}),
        )
    }
}

pub fn respond(store: &Store, w: WatchRequest) -> Result<Response, ApiError> {
    let mut first: Vec<String> = Vec::new();
    let (rx, last_rv) = match w.from {
        Some(from) if !w.initial_events => match store.watch(from) {
            Ok((backlog, rx)) => {
                first.extend(backlog.iter().filter_map(|e| w.view(e)));
                (rx, backlog.last().map_or(from, |e| e.rv))
            }
            Err(expired) => {
                let status =
                    ApiError::gone(format!("too old resource version: {} ({})", expired.requested, expired.oldest))
                        .status();
                return Ok(stream_of(vec![line("ERROR", &status)], None, w));
            }
        },
        _ => {
            let ns = w.namespace.clone();
            let (items, rv, rx) = store.list_and_watch(&w.resource.id(), ns.as_deref());
            first.extend(items.iter().filter(|o| w.wanted(o)).map(|o| w.event("ADDED", o, rv)));
            if w.initial_events {
                first.push(w.bookmark(rv, true));
            }
            (rx, rv)
        }
    };
    Ok(stream_of(first, Some((rx, last_rv)), w))
}

fn stream_of(first: Vec<String>, live: Option<(super::store::Receiver, u64)>, w: WatchRequest) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    tokio::spawn(async move {
        for l in first {
            if tx.send(Ok(l)).await.is_err() {
                return;
            }
        }
        let Some((mut events, mut last_rv)) = live else { return };
        let deadline = tokio::time::Instant::now() + w.timeout;
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            let out = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
                _ = tick.tick() => {
                    if !w.bookmarks { continue; }
                    w.bookmark(last_rv, false)
                }
                e = events.recv() => match e {
                    Ok(e) if e.rv <= last_rv => continue,
                    Ok(e) => {
                        last_rv = e.rv;
                        match w.view(&e) { Some(l) => l, None => continue }
                    }
                    // Too slow a reader: ended, as the apiserver ends it; the client starts over.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
            };
            if tx.send(Ok(out)).await.is_err() {
                return;
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Response::builder()
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(body)
        .expect("a response")
}
