//! A gRPC connection to one client endpoint, given as etcdctl takes it (`host:port` or a URL).

use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, thiserror::Error)]
#[error("dial {endpoint}: {source}")]
pub struct DialError {
    pub endpoint: String,
    pub source: tonic::transport::Error,
}

pub async fn dial(endpoint: &str) -> Result<Channel, DialError> {
    let url = if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") };
    let failed = |source| DialError { endpoint: endpoint.to_string(), source };
    Endpoint::from_shared(url).map_err(failed)?.connect_timeout(Duration::from_secs(5)).connect().await.map_err(failed)
}
