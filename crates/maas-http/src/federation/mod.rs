//! The Server-Server API (`/_matrix/federation/…`, `/_matrix/key/…`) of the tenant a request's
//! `X-Matrix` destination names (see `destination`); modules named after `ruma::api::federation`'s.
//! Verifying signatures will be the next layer; `/.well-known/matrix/server` is `well_known`'s.

mod destination;
mod discovery;

use axum::Router;

pub use destination::tenant_by_destination;

use crate::routes::AppRouter;

pub fn routes() -> AppRouter {
    discovery::routes(Router::new())
}
