//! tonic refuses a message over the receive limit with OUT_OF_RANGE "Error, decoded message
//! length too large: found N bytes, the limit is: M bytes"; grpc-go, so etcd, with
//! RESOURCE_EXHAUSTED "grpc: received message larger than max (N vs. M)", and clients branch
//! on the code. This layer gives grpc-go's answer, in a trailers-only response's headers (a
//! unary call) and in a stream's trailers alike.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::{Code, Status};

const TONIC_PREFIX: &str = "Error, decoded message length too large: found ";

/// The middleware: `router.layer(axum::middleware::map_response(oversize::answer_as_grpc_go))`.
pub async fn answer_as_grpc_go(mut resp: Response) -> Response {
    rewrite(resp.headers_mut());
    resp.map(|body| Body::new(Trailers(body)))
}

/// grpc-go's status for tonic's over-size one; None for any other status.
pub fn grpc_go_status(s: &Status) -> Option<Status> {
    if s.code() != Code::OutOfRange {
        return None;
    }
    let rest = s.message().strip_prefix(TONIC_PREFIX)?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    let (found, limit): (u64, u64) = (found.parse().ok()?, limit.parse().ok()?);
    Some(Status::resource_exhausted(format!("grpc: received message larger than max ({found} vs. {limit})")))
}

fn rewrite(headers: &mut HeaderMap) {
    let Some(fixed) = Status::from_header_map(headers).as_ref().and_then(grpc_go_status) else { return };
    headers.remove("grpc-status");
    headers.remove("grpc-message");
    headers.remove("grpc-status-details-bin");
    if let Err(e) = fixed.add_header(headers) {
        tracing::debug!(error = %e, "writing a status header");
    }
}

/// A response body whose trailers are rewritten.
struct Trailers(Body);

impl http_body::Body for Trailers {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let mut polled = Pin::new(&mut self.0).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &mut polled {
            if let Some(t) = frame.trailers_mut() {
                rewrite(t);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonics_over_size_status_becomes_grpc_gos_and_nothing_else_changes() {
        let tonic = Status::out_of_range(
            "Error, decoded message length too large: found 3000014 bytes, the limit is: 2097152 bytes",
        );
        let fixed = grpc_go_status(&tonic).unwrap();
        assert_eq!(fixed.code(), Code::ResourceExhausted);
        assert_eq!(fixed.message(), "grpc: received message larger than max (3000014 vs. 2097152)");
        assert!(
            grpc_go_status(&Status::out_of_range("etcdserver: mvcc: required revision is a future revision")).is_none()
        );
        let mut headers = HeaderMap::new();
        tonic.add_header(&mut headers).unwrap();
        rewrite(&mut headers);
        assert_eq!(headers["grpc-status"], "8");
        let back = Status::from_header_map(&headers).unwrap();
        assert_eq!(back.message(), "grpc: received message larger than max (3000014 vs. 2097152)");
    }
}
