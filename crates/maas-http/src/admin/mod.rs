//! The Synapse-compatible admin API (`/_synapse/admin/…`) of each tenant, resolved by `Host` like
//! the Client-Server API and used by the tenant's admins (`AdminUser`), never by the operator.
//! Modules are named after `synapse_admin_api`'s, whose request and response types they use.

mod auth;
mod media;
mod users;
mod version;

use axum::Router;

use crate::routes::AppRouter;

pub fn routes() -> AppRouter {
    let router = version::routes(Router::new());
    media::routes(users::routes(router))
}
