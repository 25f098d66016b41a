//! The gateway's wire: requests and answers in protobuf's JSON mapping (proto field names,
//! 64-bit integers as strings, bytes in base64, defaults left out: pbjson's impls, see
//! cairn-api's build), and grpc-gateway 1.x's error bodies and HTTP statuses, as etcd 3.4's
//! gateway answers.

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tonic::Code;

/// grpc-gateway's HTTP status for a gRPC code (runtime.HTTPStatusFromCode, 1.x).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// grpc-gateway's error body, its fields in its order.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    code: i32,
}

/// grpc-gateway's error in a stream.
#[derive(serde::Serialize)]
struct StreamError<'a> {
    grpc_code: i32,
    http_code: u16,
    message: &'a str,
    http_status: &'a str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Line<'a, T> {
    Result(T),
    Error(StreamError<'a>),
}

/// grpc-gateway's error body: `{"error":…,"message":…,"code":…}` (the same text twice).
pub fn error(status: &tonic::Status) -> Response {
    let body = ErrorBody { error: status.message(), message: status.message(), code: status.code() as i32 };
    let text = serde_json::to_string(&body).unwrap_or_default();
    json_response(http_status(status.code()), text)
}

pub fn answer<T: serde::Serialize>(msg: &T) -> Response {
    match serde_json::to_string(msg) {
        Ok(s) => json_response(StatusCode::OK, s),
        Err(e) => error(&tonic::Status::internal(e.to_string())),
    }
}

/// A request message from its JSON; an empty body is the empty message (grpc-gateway
/// tolerates EOF there).
pub fn request<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, tonic::Status> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| tonic::Status::invalid_argument(e.to_string()))
}

/// Every JSON value in a body, in order (a streaming call's requests, one after another).
pub fn requests<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Vec<T>, tonic::Status> {
    serde_json::Deserializer::from_slice(body)
        .into_iter::<T>()
        .collect::<Result<_, _>>()
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))
}

/// One line of a streamed answer: `{"result":…}`, or grpc-gateway's stream error.
pub fn stream_line<T: serde::Serialize>(item: Result<T, tonic::Status>) -> Bytes {
    let text = match &item {
        Ok(msg) => serde_json::to_string(&Line::Result(msg)),
        Err(s) => {
            let http = http_status(s.code());
            serde_json::to_string(&Line::<()>::Error(StreamError {
                grpc_code: s.code() as i32,
                http_code: http.as_u16(),
                message: s.message(),
                http_status: http.canonical_reason().unwrap_or_default(),
            }))
        }
    };
    let mut line = text.unwrap_or_default().into_bytes();
    line.push(b'\n');
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{PutRequest, RangeResponse, ResponseHeader};
    use crate::proto::mvccpb::KeyValue;

    #[test]
    fn messages_are_written_as_etcds_gateway_writes_them() {
        let r = RangeResponse {
            header: Some(ResponseHeader { cluster_id: 1, member_id: 2, revision: 3, raft_term: 4 }),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                value: b"bar".to_vec(),
                create_revision: 3,
                ..Default::default()
            }],
            count: 1,
            more: false,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"},"kvs":[{"key":"Zm9v","create_revision":"3","value":"YmFy"}],"count":"1"}"#
        );
    }

    #[test]
    fn requests_read_both_name_forms_numbers_and_strings() {
        let p: PutRequest = request(br#"{"key":"Zm9v","value":"YmFy","lease":"5","prevKv":true}"#).unwrap();
        assert_eq!((p.key, p.value, p.lease, p.prev_kv), (b"foo".to_vec(), b"bar".to_vec(), 5, true));
        let p: PutRequest = request(b" ").unwrap();
        assert_eq!(p, PutRequest::default());
        assert!(request::<PutRequest>(b"{\"key\":").is_err());
    }

    #[test]
    fn errors_keep_grpc_gateways_field_order() {
        let line = stream_line::<PutRequest>(Err(tonic::Status::not_found("gone")));
        assert_eq!(
            &line[..],
            b"{\"error\":{\"grpc_code\":5,\"http_code\":404,\"message\":\"gone\",\"http_status\":\"Not Found\"}}\n"
        );
        let line = stream_line(Ok(PutRequest::default()));
        assert_eq!(&line[..], b"{\"result\":{}}\n");
    }
}
