//! Serving a listener: HTTP/1 and HTTP/2 (prior knowledge) on one port, as etcd's cmux does,
//! with hyper's settings made explicit. A request with a gRPC content type goes to the gRPC
//! services; any other to the plain HTTP routes, where an unknown path answers 404 as Go's
//! http.NotFound does (never an empty 200 that `curl -f` would take for success).

use crate::auth::CertName;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::task::{Context, Poll};
use tokio::sync::watch;

/// The two halves of a port's routes, and what a connection's requests carry to them.
#[derive(Clone)]
pub struct Dispatch {
    pub grpc: Router,
    pub http: Router,
    /// The name on the client certificate this connection's TLS handshake verified.
    cert_name: Option<CertName>,
}

impl Dispatch {
    /// `http` with Go's 404 for every path it does not route.
    pub fn new(grpc: Router, http: Router) -> Dispatch {
        Dispatch { grpc, http: http.fallback(not_found), cert_name: None }
    }
}

/// Go's http.NotFound, byte for byte.
async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")],
        "404 page not found\n",
    )
        .into_response()
}

fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

impl<B> tower::Service<Request<B>> for Dispatch
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Routers are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut req = req.map(Body::new);
        if let Some(name) = &self.cert_name {
            req.extensions_mut().insert(name.clone());
        }
        if is_grpc(&req) {
            tower::Service::call(&mut self.grpc, req)
        } else {
            tower::Service::call(&mut self.http, req)
        }
    }
}

/// HTTP/2 settings a port is served with.
#[derive(Clone, Copy, Debug)]
pub struct Http2Settings {
    /// Streams one client connection may have open at once (etcd's
    /// --max-concurrent-streams; unlimited by default, so that a client's watch streams never
    /// starve its unary calls on the same connection).
    pub max_concurrent_streams: u32,
}

/// What each accepted connection goes through before HTTP: a TLS handshake (https and unixs
/// URLs), and the client port's `:authority` repair (see `authority`).
#[derive(Clone, Default)]
pub struct Layers {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub authority_fix: bool,
}

/// A client that opens a connection and never finishes its TLS handshake gets this long.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A connection, whatever it runs over.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Serves `routes` on every connection `listener` accepts until `stop` turns true, then
/// waits for the open connections to finish (hyper's graceful shutdown: HTTP/2 connections
/// get a GOAWAY, streams in flight complete). Each connection's handshake and serving run in
/// a task of its own, so a slow client never holds up the others.
pub async fn serve<L>(
    mut listener: L,
    routes: Dispatch,
    settings: Http2Settings,
    layers: Layers,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Io: Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(settings.max_concurrent_streams);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (builder, mut routes, layers, watcher) =
            (builder.clone(), routes.clone(), layers.clone(), graceful.watcher());
        tokio::spawn(async move {
            let io: Box<dyn Io> = match &layers.tls {
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                    Ok(Ok(tls)) => {
                        // Present only when the server asked for a certificate and verified it.
                        let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
                        routes.cert_name = cert.and_then(crate::tls::common_name).map(|n| CertName(n.into()));
                        Box::new(tls)
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                None => Box::new(io),
            };
            let io: Box<dyn Io> =
                if layers.authority_fix { Box::new(super::authority::AuthorityFix::new(io)) } else { io };
            let service = TowerToHyperService::new(routes);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
