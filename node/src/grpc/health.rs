//! `grpc.health.v1.Health` as etcd 3.4 serves it on its client port: the whole server (the
//! empty service name) is SERVING while the member serves; any other name is unknown
//! (grpc-go's answers: NotFound "unknown service" to Check, SERVICE_UNKNOWN to Watch). gRPC
//! health probes (kubelet's grpc probe, grpc_health_probe, load balancers) ask this.

use std::pin::Pin;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

#[derive(Default)]
pub struct HealthService;

fn status_of(service: &str) -> Option<ServingStatus> {
    service.is_empty().then_some(ServingStatus::Serving)
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(&self, request: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        match status_of(&request.get_ref().service) {
            Some(s) => Ok(Response::new(HealthCheckResponse { status: s as i32 })),
            None => Err(Status::not_found("unknown service")),
        }
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    /// The status now; it changes only when the member stops, which ends the stream.
    async fn watch(&self, request: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let status = status_of(&request.get_ref().service).unwrap_or(ServingStatus::ServiceUnknown);
        let first = tokio_stream::once(Ok(HealthCheckResponse { status: status as i32 }));
        Ok(Response::new(Box::pin(first.chain(tokio_stream::pending()))))
    }
}
