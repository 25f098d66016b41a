//! A gRPC connection to one client endpoint, given as etcdctl takes it (`host:port` or a URL),
//! for Cairn's own client tools (bench, snapshot save).

use anyhow::Context;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

pub async fn dial(endpoint: &str) -> anyhow::Result<Channel> {
    let url = if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") };
    let ch = Endpoint::from_shared(url)?.connect_timeout(Duration::from_secs(5)).connect().await;
    ch.with_context(|| format!("dial {endpoint}"))
}
