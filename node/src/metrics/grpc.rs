//! go-grpc-prometheus's server metrics, which etcd exports and its alerts read
//! (grpc_server_started_total, _handled_total, _msg_received_total, _msg_sent_total, and with
//! `--metrics extensive` _handling_seconds), for unary and streaming calls alike. Counted by a
//! layer around the gRPC services that reads the gRPC framing of each body and the status in
//! its trailers, so no handler has to remember to count. Every method starts at zero for
//! every code, as etcd's do, so that alert expressions over rates find their series before
//! the first failure.

use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

const UNARY: &str = "unary";
const SERVER_STREAM: &str = "server_stream";
const BIDI_STREAM: &str = "bidi_stream";

/// Every method the client port serves, with its gRPC type.
const METHODS: &[(&str, &[(&str, &str)])] = &[
    (
        "etcdserverpb.KV",
        &[("Range", UNARY), ("Put", UNARY), ("DeleteRange", UNARY), ("Txn", UNARY), ("Compact", UNARY)],
    ),
    ("etcdserverpb.Watch", &[("Watch", BIDI_STREAM)]),
    (
        "etcdserverpb.Lease",
        &[
            ("LeaseGrant", UNARY),
            ("LeaseRevoke", UNARY),
            ("LeaseKeepAlive", BIDI_STREAM),
            ("LeaseTimeToLive", UNARY),
            ("LeaseLeases", UNARY),
        ],
    ),
    (
        "etcdserverpb.Cluster",
        &[
            ("MemberAdd", UNARY),
            ("MemberRemove", UNARY),
            ("MemberUpdate", UNARY),
            ("MemberList", UNARY),
            ("MemberPromote", UNARY),
        ],
    ),
    (
        "etcdserverpb.Maintenance",
        &[
            ("Alarm", UNARY),
            ("Status", UNARY),
            ("Defragment", UNARY),
            ("Hash", UNARY),
            ("HashKV", UNARY),
            ("Snapshot", SERVER_STREAM),
            ("MoveLeader", UNARY),
        ],
    ),
    (
        "etcdserverpb.Auth",
        &[
            ("AuthEnable", UNARY),
            ("AuthDisable", UNARY),
            ("Authenticate", UNARY),
            ("UserAdd", UNARY),
            ("UserGet", UNARY),
            ("UserList", UNARY),
            ("UserDelete", UNARY),
            ("UserChangePassword", UNARY),
            ("UserGrantRole", UNARY),
            ("UserRevokeRole", UNARY),
            ("RoleAdd", UNARY),
            ("RoleGet", UNARY),
            ("RoleList", UNARY),
            ("RoleDelete", UNARY),
            ("RoleGrantPermission", UNARY),
            ("RoleRevokePermission", UNARY),
        ],
    ),
    (
        "v3electionpb.Election",
        &[("Campaign", UNARY), ("Proclaim", UNARY), ("Leader", UNARY), ("Observe", SERVER_STREAM), ("Resign", UNARY)],
    ),
    ("v3lockpb.Lock", &[("Lock", UNARY), ("Unlock", UNARY)]),
    ("grpc.health.v1.Health", &[("Check", UNARY), ("Watch", SERVER_STREAM)]),
];

/// gRPC's status codes by number, spelled as Go's codes.Code.String() spells them.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const CANCELED: usize = 1;
const UNKNOWN: usize = 2;

type Call = [(&'static str, &'static str); 3];
type Handled = [(&'static str, &'static str); 4];

/// One method's counters, looked up once per call by its path.
pub struct Method {
    kind: &'static str,
    started: Counter,
    received: Counter,
    sent: Counter,
    handled: Vec<Counter>,
    handling: Option<Histogram>,
}

impl Method {
    fn handled(&self, code: usize, started: Instant) {
        self.handled[code.min(CODES.len() - 1)].inc();
        if let Some(h) = &self.handling {
            h.observe(started.elapsed().as_secs_f64());
        }
    }
}

pub struct Grpc {
    methods: HashMap<String, Arc<Method>>,
}

impl Grpc {
    pub fn register(r: &mut Registry, extensive: bool) -> Grpc {
        let started = Family::<Call, Counter>::default();
        let handled = Family::<Handled, Counter>::default();
        let received = Family::<Call, Counter>::default();
        let sent = Family::<Call, Counter>::default();
        r.register("grpc_server_started", "Total number of RPCs started on the server", started.clone());
        r.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure",
            handled.clone(),
        );
        r.register(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server",
            received.clone(),
        );
        r.register("grpc_server_msg_sent", "Total number of gRPC stream messages sent by the server", sent.clone());
        let handling = extensive.then(|| {
            // Prometheus's default buckets, as go-grpc-prometheus uses them.
            let buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
            let f = Family::<Call, Histogram, _>::new_with_constructor(move || Histogram::new(buckets));
            r.register(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server",
                f.clone(),
            );
            f
        });
        let mut methods = HashMap::new();
        for (service, list) in METHODS {
            for &(method, kind) in list.iter() {
                let call: Call = [("grpc_method", method), ("grpc_service", service), ("grpc_type", kind)];
                let code_counter = |code: &'static str| {
                    handled.get_or_create_owned(&[
                        ("grpc_code", code),
                        ("grpc_method", method),
                        ("grpc_service", service),
                        ("grpc_type", kind),
                    ])
                };
                let m = Method {
                    kind,
                    started: started.get_or_create_owned(&call),
                    received: received.get_or_create_owned(&call),
                    sent: sent.get_or_create_owned(&call),
                    handled: CODES.iter().map(|c| code_counter(c)).collect(),
                    handling: handling.as_ref().map(|h| h.get_or_create_owned(&call)),
                };
                methods.insert(format!("/{service}/{method}"), Arc::new(m));
            }
        }
        Grpc { methods }
    }
}

/// The layer's function: counts the call's start, its messages both ways, and its end.
pub async fn observe(req: Request, next: Next) -> Response {
    let metrics = super::get();
    let Some(method) = metrics.grpc.methods.get(req.uri().path()).cloned() else {
        return next.run(req).await;
    };
    method.started.inc();
    // etcd's per client version count; clients that send no version are not counted there.
    if let Some(version) = req.headers().get("client-api-version").and_then(|v| v.to_str().ok()) {
        let kind = if method.kind == UNARY { "unary" } else { "stream" };
        metrics
            .server
            .client_requests
            .get_or_create(&[("client_api_version", version.into()), ("type", kind.into())])
            .inc();
    }
    let started = Instant::now();
    let req = req.map(|b| Body::new(Counted::new(b, method.clone(), Side::Received, started)));
    let resp = next.run(req).await;
    // A call refused before any message is a trailers-only response: its status is here.
    if let Some(code) = grpc_status(resp.headers()) {
        method.handled(code, started);
        return resp;
    }
    resp.map(|b| Body::new(Counted::new(b, method, Side::Sent, started)))
}

fn grpc_status(headers: &HeaderMap) -> Option<usize> {
    headers.get("grpc-status").map(|v| v.to_str().ok().and_then(|s| s.parse().ok()).unwrap_or(UNKNOWN))
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Received,
    Sent,
}

/// A body passed through unchanged, its gRPC messages counted on the way.
struct Counted {
    inner: Body,
    method: Arc<Method>,
    side: Side,
    framing: Framing,
    started: Instant,
    /// The response's end (its trailers) was seen and counted.
    ended: bool,
}

impl Counted {
    fn new(inner: Body, method: Arc<Method>, side: Side, started: Instant) -> Counted {
        Counted { inner, method, side, framing: Framing::default(), started, ended: side == Side::Received }
    }

    fn count(&mut self, frame: &Frame<Bytes>) {
        let net = &super::get().network;
        if let Some(data) = frame.data_ref() {
            let (messages, payload) = self.framing.feed(data);
            match self.side {
                Side::Received => {
                    self.method.received.inc_by(messages);
                    net.client_grpc_received_bytes.inc_by(payload);
                }
                Side::Sent => {
                    self.method.sent.inc_by(messages);
                    net.client_grpc_sent_bytes.inc_by(payload);
                }
            }
        } else if let Some(trailers) = frame.trailers_ref() {
            if !self.ended {
                self.ended = true;
                self.method.handled(grpc_status(trailers).unwrap_or(UNKNOWN), self.started);
            }
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => this.count(frame),
            Poll::Ready(None) if !this.ended => {
                // A response that ended without trailers carried no status.
                this.ended = true;
                this.method.handled(UNKNOWN, this.started);
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // A response dropped before its end: the client went away (etcdctl watch exiting,
        // a deadline passing), which gRPC-Go's server reports as Canceled.
        if !self.ended {
            self.method.handled(CANCELED, self.started);
        }
    }
}

/// Follows gRPC's length-prefixed framing (a flag byte, a 4-byte big-endian length, the
/// message) across however the body happens to be split into frames.
#[derive(Default)]
struct Framing {
    prefix: [u8; 5],
    have: usize,
    remaining: u64,
}

impl Framing {
    /// Messages begun in `data`, and the payload bytes it holds.
    fn feed(&mut self, mut data: &[u8]) -> (u64, u64) {
        let (mut messages, mut payload) = (0, 0);
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(data.len() as u64);
                self.remaining -= take;
                payload += take;
                data = &data[take as usize..];
                continue;
            }
            let take = (5 - self.have).min(data.len());
            self.prefix[self.have..self.have + take].copy_from_slice(&data[..take]);
            self.have += take;
            data = &data[take..];
            if self.have == 5 {
                self.have = 0;
                self.remaining =
                    u32::from_be_bytes([self.prefix[1], self.prefix[2], self.prefix[3], self.prefix[4]]) as u64;
                messages += 1;
            }
        }
        (messages, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &[u8]) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn framing_counts_messages_however_the_body_is_split() {
        let mut body = message(b"hello");
        body.extend(message(b""));
        body.extend(message(&[7; 300]));
        for split in [1, 2, 3, 5, 7, 64, body.len()] {
            let mut f = Framing::default();
            let (mut messages, mut payload) = (0, 0);
            for chunk in body.chunks(split) {
                let (m, p) = f.feed(chunk);
                messages += m;
                payload += p;
            }
            assert_eq!((messages, payload), (3, 305), "split into chunks of {split}");
        }
    }

    #[test]
    fn every_method_starts_at_zero_for_every_code() {
        let mut r = Registry::default();
        let g = Grpc::register(&mut r, false);
        assert_eq!(g.methods.len(), METHODS.iter().map(|(_, m)| m.len()).sum::<usize>());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(text.contains(
            "grpc_server_handled_total{grpc_code=\"Unavailable\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 0"
        ));
        assert!(text.contains(
            "grpc_server_started_total{grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"} 0"
        ));
        assert!(!text.contains("grpc_server_handling_seconds"), "only with --metrics extensive");
    }
}
