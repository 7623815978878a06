//! The Server-Server API (`/_matrix/federation/…`, `/_matrix/key/…`) of the tenant a request's
//! `X-Matrix` destination names (see `destination`); modules named after
//! `ruma::api::federation`'s. Everything under `/_matrix/federation` but `version` and
//! `openid/userinfo` passes `authentication` first; `/.well-known/matrix/server` is
//! `well_known`'s.

mod authenticated_media;
mod authentication;
mod destination;
mod directory;
mod discovery;
mod event;
mod in_process;
mod keys;
mod membership;
mod openid;
mod query;
mod space;
mod transactions;

use axum::Router;
use axum::middleware::from_fn;

pub use destination::tenant_by_destination;
pub use in_process::InProcess;

use crate::routes::AppRouter;

pub fn routes() -> AppRouter {
    let signed = [
        authenticated_media::routes,
        directory::routes,
        event::routes,
        keys::routes,
        membership::routes,
        space::routes,
        transactions::routes,
    ]
    .into_iter()
    .fold(query::routes(Router::new()), |router, routes| {
        routes(router)
    })
    .layer(from_fn(authentication::require_signature));
    openid::routes(discovery::routes(Router::new())).merge(signed)
}
