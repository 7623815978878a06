//! The Server-Server API (`/_matrix/federation/…`, `/_matrix/key/…`) of each tenant. A request
//! is for the tenant its `X-Matrix` authorization names as `destination`, else the one of its
//! `Host` (`destination`). Modules are named after ruma's `ruma::api::federation` modules.
//! Verifying the `X-Matrix` signature will be this surface's next layer, after the tenant is
//! known; `/.well-known/matrix/server` is served by the `.well-known` surface, by `Host`.

mod destination;
mod discovery;

use axum::Router;

pub use destination::tenant_by_destination;

use crate::routes::AppRouter;

pub fn routes() -> AppRouter {
    discovery::routes(Router::new())
}
