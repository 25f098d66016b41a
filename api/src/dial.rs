//! A gRPC connection to one endpoint, given as etcdctl takes it: `host:port`, an http URL, or
//! a unix socket (`unix://<path>`, the path being the URL's host and path, as etcd reads it).

use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, thiserror::Error)]
#[error("dial {endpoint}: {source}")]
pub struct DialError {
    pub endpoint: String,
    pub source: tonic::transport::Error,
}

pub async fn dial(endpoint: &str) -> Result<Channel, DialError> {
    let failed = |source| DialError { endpoint: endpoint.to_string(), source };
    if let Some(path) = unix_socket(endpoint) {
        let e = Endpoint::from_static("http://unix.socket").connect_timeout(Duration::from_secs(5));
        return connect_unix(e, path).await.map_err(failed);
    }
    let url = if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") };
    Endpoint::from_shared(url).map_err(failed)?.connect_timeout(Duration::from_secs(5)).connect().await.map_err(failed)
}

/// The socket path of a `unix://` URL (its host, with any port, then its path), or None.
pub fn unix_socket(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("unix://")?;
    Some(std::path::PathBuf::from(rest))
}

/// Connects `endpoint`'s channel to the unix socket at `path` instead of its URL.
pub async fn connect_unix(endpoint: Endpoint, path: std::path::PathBuf) -> Result<Channel, tonic::transport::Error> {
    endpoint
        .connect_with_connector(tower::service_fn(move |_: tonic::codegen::http::Uri| {
            let path = path.clone();
            async move { tokio::net::UnixStream::connect(path).await.map(hyper_util::rt::TokioIo::new) }
        }))
        .await
}
