//! The gateway's streaming calls: a client stream's requests are the JSON values of the
//! request body (the stream then stays open until the client goes, as a watch outlives its
//! request); the answers go out as they come, one `{"result":…}` line each.

use super::{grpc_request, json, post, Services};
use crate::auth::CertName;
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::SnapshotRequest;
use crate::proto::v3electionpb::election_server::Election;
use crate::proto::v3electionpb::LeaderRequest;
use axum::body::{Body, Bytes};
use axum::extract::Extension;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::{Stream, StreamExt};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

/// `msgs` as the gRPC server would have read them from a client stream: framed, then the
/// end of the stream (`hold_open`: nothing more until it is dropped instead).
fn client_stream<T>(msgs: Vec<T>, hold_open: bool) -> tonic::Streaming<T>
where
    T: prost::Message + Default + Send + 'static,
{
    let frames = msgs.into_iter().map(|m| {
        let body = m.encode_to_vec();
        let mut frame = Vec::with_capacity(5 + body.len());
        frame.push(0); // not compressed
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&body);
        Ok::<_, Infallible>(Bytes::from(frame))
    });
    let frames = futures::stream::iter(frames);
    let body =
        if hold_open { Body::from_stream(frames.chain(futures::stream::pending())) } else { Body::from_stream(frames) };
    let decoder = tonic::codec::Codec::decoder(&mut tonic_prost::ProstCodec::<T, T>::default());
    tonic::Streaming::new_request(decoder, body, None, None)
}

/// A streamed answer, a line per message.
fn lines<T, S>(answers: S) -> Response
where
    T: serde::Serialize + Send + 'static,
    S: Stream<Item = Result<T, tonic::Status>> + Send + 'static,
{
    let body = Body::from_stream(answers.map(|a| Ok::<_, Infallible>(json::stream_line(a))));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A call taking a client stream (`client: true`) or a single request, answering a stream.
fn streaming<Req, In, Resp, S, F, Fut>(
    router: Router,
    path: &str,
    call: F,
    parse: fn(&[u8]) -> Result<In, tonic::Status>,
) -> Router
where
    Req: Send + 'static,
    In: Into<Req> + Send + 'static,
    Resp: serde::Serialize + Send + 'static,
    S: Stream<Item = Result<Resp, tonic::Status>> + Send + 'static,
    F: Fn(tonic::Request<Req>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<tonic::Response<S>, tonic::Status>> + Send,
{
    let handler = move |headers: HeaderMap, cert: Option<Extension<CertName>>, body: Bytes| {
        let call = call.clone();
        async move {
            let msg = match parse(&body) {
                Ok(m) => m,
                Err(s) => return json::error(&s),
            };
            match call(grpc_request(msg.into(), &headers, cert)).await {
                Ok(r) => lines(r.into_inner()),
                Err(s) => json::error(&s),
            }
        }
    };
    post(router, path, handler)
}

/// The JSON values of a body, as a client stream.
struct Requests<T> {
    msgs: Vec<T>,
    hold_open: bool,
}

impl<T: prost::Message + Default + Send + 'static> From<Requests<T>> for tonic::Streaming<T> {
    fn from(r: Requests<T>) -> Self {
        client_stream(r.msgs, r.hold_open)
    }
}

/// etcd's watch goes on after its client stream ends (the gateway closes its side once the
/// body is read): the stream is held open until the HTTP client goes.
fn all_held<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Requests<T>, tonic::Status> {
    json::requests(body).map(|msgs| Requests { msgs, hold_open: true })
}

/// etcd's keep-alive ends with its client stream: the answer ends after the body's requests.
fn all<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Requests<T>, tonic::Status> {
    json::requests(body).map(|msgs| Requests { msgs, hold_open: false })
}

fn one<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, tonic::Status> {
    json::request(body)
}

/// A streaming route calling `$method` of `$svc`, refused on a learner as over gRPC.
macro_rules! streaming {
    ($r:ident, $s:ident, $path:literal, $svc:ident, $method:path, $parse:expr) => {{
        let (svc, common) = ($s.$svc.clone(), $s.common.clone());
        $r = streaming(
            $r,
            $path,
            move |req| {
                let (svc, common) = (svc.clone(), common.clone());
                async move {
                    common.not_learner()?;
                    $method(&*svc, req).await
                }
            },
            $parse,
        );
    }};
}

pub fn routes(mut r: Router, s: Arc<Services>) -> Router {
    streaming!(r, s, "watch", watch, Watch::watch, all_held);
    streaming!(r, s, "lease/keepalive", lease, Lease::lease_keep_alive, all);
    streaming!(r, s, "election/observe", election, Election::observe, one::<LeaderRequest>);
    // Snapshot serves learners too (Maintenance is not gated).
    let svc = s.maintenance.clone();
    r = streaming(
        r,
        "maintenance/snapshot",
        move |req| {
            let svc = svc.clone();
            async move { Maintenance::snapshot(&*svc, req).await }
        },
        one::<SnapshotRequest>,
    );
    r
}
