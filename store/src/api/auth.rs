//! `etcdserverpb.Auth`: authentication is not offered; every call answers as an etcd with auth
//! disabled does.

use tonic::{Request, Response, Status};

use super::Api;
use crate::error::EtcdError;
use crate::pb::auth_server::Auth;
use crate::pb::*;

/// The Auth service.
#[derive(Clone)]
pub struct AuthService {
    api: Api,
}

impl AuthService {
    /// An Auth service over `api`.
    pub fn new(api: Api) -> Self {
        AuthService { api }
    }
}

fn off<T>() -> Result<Response<T>, Status> {
    Err(EtcdError::AuthNotEnabled.into())
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        _: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        Err(Status::unimplemented(
            "kvstore does not support authentication",
        ))
    }
    async fn auth_disable(
        &self,
        _: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        Ok(Response::new(AuthDisableResponse {
            header: Some(self.api.node.header()),
        }))
    }
    async fn auth_status(
        &self,
        _: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        Ok(Response::new(AuthStatusResponse {
            header: Some(self.api.node.header()),
            enabled: false,
            auth_revision: 0,
        }))
    }
    async fn authenticate(
        &self,
        _: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        off()
    }
    async fn user_add(
        &self,
        _: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        off()
    }
    async fn user_get(
        &self,
        _: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        off()
    }
    async fn user_list(
        &self,
        _: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        off()
    }
    async fn user_delete(
        &self,
        _: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        off()
    }
    async fn user_change_password(
        &self,
        _: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        off()
    }
    async fn user_grant_role(
        &self,
        _: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        off()
    }
    async fn user_revoke_role(
        &self,
        _: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        off()
    }
    async fn role_add(
        &self,
        _: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        off()
    }
    async fn role_get(
        &self,
        _: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        off()
    }
    async fn role_list(
        &self,
        _: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        off()
    }
    async fn role_delete(
        &self,
        _: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        off()
    }
    async fn role_grant_permission(
        &self,
        _: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        off()
    }
    async fn role_revoke_permission(
        &self,
        _: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        off()
    }
}
