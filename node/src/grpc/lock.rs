//! v3lockpb.Lock: a mutex per name. Lock creates `<name>/<lease hex>` on the caller's lease
//! and returns once every key created before it under `<name>/` is gone; the lock is released
//! by Unlock, or by the lease ending.

use super::recipes;
use super::{credentials, Common};
use crate::auth::AuthInfo;
use crate::error::EtcdError;
use crate::proto::v3lockpb::lock_server::Lock;
use crate::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use crate::storage::mvcc::watch::WatchHub;
use std::sync::Arc;
use tonic::{Request, Response, Status};

crate::headed!(LockResponse, UnlockResponse);

pub struct LockService {
    ctx: Arc<Common>,
    hub: Arc<WatchHub>,
}

impl LockService {
    pub fn new(ctx: Arc<Common>, hub: Arc<WatchHub>) -> Self {
        LockService { ctx, hub }
    }
}

/// Deletes a key unless disarmed: a waiter whose client gave up must not keep its place.
pub struct Abandon {
    ctx: Arc<Common>,
    who: AuthInfo,
    key: Option<Vec<u8>>,
}

impl Abandon {
    pub fn new(ctx: Arc<Common>, who: AuthInfo, key: Vec<u8>) -> Self {
        Abandon { ctx, who, key: Some(key) }
    }

    pub fn disarm(mut self) {
        self.key = None;
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let (ctx, who) = (self.ctx.clone(), self.who.clone());
            tokio::spawn(async move {
                let _ = recipes::delete(&ctx, &who, &key).await;
            });
        }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let creds = credentials(&request);
        let r = request.into_inner();
        let result = async {
            let who = self.ctx.identify(&creds).await?;
            let mut prefix = r.name.clone();
            prefix.push(b'/');
            let mut key = prefix.clone();
            key.extend_from_slice(format!("{:x}", r.lease).as_bytes());
            let (kv, _) = recipes::create_or_get(&self.ctx, &who, &key, b"", r.lease).await?;
            let guard = Abandon::new(self.ctx.clone(), who.clone(), key.clone());
            recipes::wait_for_predecessors(&self.ctx, &who, &self.hub, &prefix, kv.create_revision).await?;
            guard.disarm();
            Ok(LockResponse { header: None, key })
        }
        .await;
        recipes::as_client_error(self.ctx.answer(result))
    }

    async fn unlock(&self, request: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        let creds = credentials(&request);
        let r = request.into_inner();
        let result: Result<UnlockResponse, EtcdError> = async {
            let who = self.ctx.identify(&creds).await?;
            recipes::delete(&self.ctx, &who, &r.key).await?;
            Ok(UnlockResponse { header: None })
        }
        .await;
        recipes::as_client_error(self.ctx.answer(result))
    }
}
