//! etcdserverpb.Auth. Changes go through raft and are checked by the applier (root only, as
//! of their entry); passwords are hashed here, before proposing, so the log never holds one.
//! Reads (user and role lists and details) are served after a ReadIndex, checked as etcd
//! checks them: root, or a user asking about itself or a role it has.

use super::{credentials, Common};
use crate::apply::{Authenticated, Origin};
use crate::auth::{AuthInfo, Need};
use crate::error::EtcdError;
use crate::proto::cairnpb::internal_request::Request;
use crate::proto::cairnpb::Authenticate;
use crate::proto::etcdserverpb::auth_server::Auth;
use crate::proto::etcdserverpb::*;
use std::sync::Arc;
use tonic::{Request as GrpcRequest, Response, Status};

crate::headed!(
    AuthEnableResponse,
    AuthDisableResponse,
    AuthStatusResponse,
    AuthenticateResponse,
    AuthUserAddResponse,
    AuthUserGetResponse,
    AuthUserListResponse,
    AuthUserDeleteResponse,
    AuthUserChangePasswordResponse,
    AuthUserGrantRoleResponse,
    AuthUserRevokeRoleResponse,
    AuthRoleAddResponse,
    AuthRoleGetResponse,
    AuthRoleListResponse,
    AuthRoleDeleteResponse,
    AuthRoleGrantPermissionResponse,
    AuthRoleRevokePermissionResponse
);

pub struct AuthService {
    ctx: Arc<Common>,
}

impl AuthService {
    pub fn new(ctx: Arc<Common>) -> Self {
        AuthService { ctx }
    }

    /// Proposes a change to the auth store made by the request's sender.
    async fn change<T: crate::apply::FromApplied, R>(
        &self,
        request: GrpcRequest<R>,
        make: fn(R) -> Request,
    ) -> Result<T, EtcdError> {
        let who = self.ctx.client(&credentials(&request)).await?;
        self.ctx.propose(&who, make(request.into_inner())).await
    }

    /// A password hashed off the async runtime (bcrypt is slow on purpose).
    async fn hash(&self, password: String) -> Result<String, EtcdError> {
        let auth = self.ctx.auth.clone();
        let hashed = tokio::task::spawn_blocking(move || auth.hash_password(&password))
            .await
            .map_err(|e| EtcdError::Internal(e.to_string()))?;
        String::from_utf8(hashed).map_err(|e| EtcdError::Internal(e.to_string()))
    }

    /// Who asks, after a ReadIndex (the answer is then as of now).
    async fn reader<R>(&self, request: &GrpcRequest<R>) -> Result<AuthInfo, EtcdError> {
        self.ctx.raft.linearizable_read().await?;
        self.ctx.identify(&credentials(request)).await
    }

    /// Root, checked before the slow hashing (the applier checks again, as of the entry).
    async fn admin_first<R>(&self, request: &GrpcRequest<R>) -> Result<Origin, EtcdError> {
        Ok(Origin::Client(self.ctx.admin(&credentials(request)).await?))
    }

    /// etcd's Authenticate: the password is checked here, then an entry makes the token on
    /// every member; if the auth store changed meanwhile, again.
    async fn authenticate(&self, r: AuthenticateRequest) -> Result<AuthenticateResponse, EtcdError> {
        self.ctx.raft.linearizable_read().await?;
        loop {
            let (auth, name, password) = (self.ctx.auth.clone(), r.name.clone(), r.password.clone());
            let checked = tokio::task::spawn_blocking(move || auth.check_password(&name, &password))
                .await
                .map_err(|e| EtcdError::Internal(e.to_string()))?;
            let checked = checked.inspect_err(|e| {
                if *e != EtcdError::AuthNotEnabled {
                    tracing::warn!(user = %r.name, error = %e, "invalid authentication was requested");
                }
            })?;
            let prefix = self.ctx.auth.token_prefix();
            let entry = Request::Authenticate(Authenticate { name: r.name.clone(), token_prefix: prefix.clone() });
            // Nothing to check on an Authenticate: whatever token the client still holds.
            let Authenticated { index, revision } =
                self.ctx.propose(&Origin::Client(AuthInfo::default()), entry).await?;
            if checked == self.ctx.auth.revision() {
                let token = self.ctx.auth.issue_token(&r.name, revision, &prefix, index)?;
                return Ok(AuthenticateResponse { header: None, token });
            }
            tracing::info!("revision when password checked became stale; retrying");
        }
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(&self, r: GrpcRequest<AuthEnableRequest>) -> Result<Response<AuthEnableResponse>, Status> {
        let result = self.change(r, Request::AuthEnable).await;
        self.ctx.answer(result)
    }

    async fn auth_disable(&self, r: GrpcRequest<AuthDisableRequest>) -> Result<Response<AuthDisableResponse>, Status> {
        let result = self.change(r, Request::AuthDisable).await;
        self.ctx.answer(result)
    }

    async fn auth_status(&self, _: GrpcRequest<AuthStatusRequest>) -> Result<Response<AuthStatusResponse>, Status> {
        let result = async {
            self.ctx.raft.linearizable_read().await?;
            let auth = &self.ctx.auth;
            Ok(AuthStatusResponse { header: None, enabled: auth.enabled(), auth_revision: auth.revision() })
        }
        .await;
        self.ctx.answer(result)
    }

    async fn authenticate(
        &self,
        request: GrpcRequest<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let result = self.authenticate(request.into_inner()).await;
        self.ctx.answer(result)
    }

    async fn user_add(
        &self,
        request: GrpcRequest<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let result = async {
            let who = self.admin_first(&request).await?;
            let mut r = request.into_inner();
            if r.name.is_empty() {
                return Err(EtcdError::UserEmpty);
            }
            let no_password = r.options.is_some_and(|o| o.no_password);
            r.hashed_password =
                if no_password { String::new() } else { self.hash(std::mem::take(&mut r.password)).await? };
            r.password.clear();
            self.ctx.propose(&who, Request::UserAdd(r)).await
        }
        .await;
        self.ctx.answer(result)
    }

    async fn user_get(
        &self,
        request: GrpcRequest<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let result = async {
            let who = self.reader(&request).await?;
            let r = request.into_inner();
            // Root sees anyone; a user sees itself.
            if let Err(e) = self.ctx.auth.check(&who, Need::Admin) {
                if r.name != who.user {
                    return Err(e);
                }
            }
            Ok(AuthUserGetResponse { header: None, roles: self.ctx.auth.user_roles(&r.name)? })
        }
        .await;
        self.ctx.answer(result)
    }

    async fn user_list(
        &self,
        request: GrpcRequest<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let result = async {
            let who = self.reader(&request).await?;
            self.ctx.auth.check(&who, Need::Admin)?;
            Ok(AuthUserListResponse { header: None, users: self.ctx.auth.users() })
        }
        .await;
        self.ctx.answer(result)
    }

    async fn user_delete(
        &self,
        r: GrpcRequest<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let result = self.change(r, Request::UserDelete).await;
        self.ctx.answer(result)
    }

    async fn user_change_password(
        &self,
        request: GrpcRequest<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let result = async {
            let who = self.admin_first(&request).await?;
            let mut r = request.into_inner();
            r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
            self.ctx.propose(&who, Request::UserChangePassword(r)).await
        }
        .await;
        self.ctx.answer(result)
    }

    async fn user_grant_role(
        &self,
        r: GrpcRequest<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let result = self.change(r, Request::UserGrantRole).await;
        self.ctx.answer(result)
    }

    async fn user_revoke_role(
        &self,
        r: GrpcRequest<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let result = self.change(r, Request::UserRevokeRole).await;
        self.ctx.answer(result)
    }

    async fn role_add(&self, r: GrpcRequest<AuthRoleAddRequest>) -> Result<Response<AuthRoleAddResponse>, Status> {
        let result = self.change(r, Request::RoleAdd).await;
        self.ctx.answer(result)
    }

    async fn role_get(
        &self,
        request: GrpcRequest<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let result = async {
            let who = self.reader(&request).await?;
            let r = request.into_inner();
            // Root sees any role; a user the roles it has.
            if let Err(e) = self.ctx.auth.check(&who, Need::Admin) {
                if !self.ctx.auth.has_role(&who.user, &r.role) {
                    return Err(e);
                }
            }
            Ok(AuthRoleGetResponse { header: None, perm: self.ctx.auth.role_permissions(&r.role)? })
        }
        .await;
        self.ctx.answer(result)
    }

    async fn role_list(
        &self,
        request: GrpcRequest<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let result = async {
            let who = self.reader(&request).await?;
            self.ctx.auth.check(&who, Need::Admin)?;
            Ok(AuthRoleListResponse { header: None, roles: self.ctx.auth.roles() })
        }
        .await;
        self.ctx.answer(result)
    }

    async fn role_delete(
        &self,
        r: GrpcRequest<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let result = self.change(r, Request::RoleDelete).await;
        self.ctx.answer(result)
    }

    async fn role_grant_permission(
        &self,
        r: GrpcRequest<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let result = async {
            if r.get_ref().perm.is_none() {
                return Err(EtcdError::Internal("permission is not provided".into()));
            }
            self.change(r, Request::RoleGrantPermission).await
        }
        .await;
        self.ctx.answer(result)
    }

    async fn role_revoke_permission(
        &self,
        r: GrpcRequest<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let result = self.change(r, Request::RoleRevokePermission).await;
        self.ctx.answer(result)
    }
}
