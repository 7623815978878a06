//! The Synapse-compatible admin API (`/_synapse/admin/…`) of each tenant, resolved by `Host` like
//! the Client-Server API and used by the tenant's admins (`AdminUser`), never by the operator.
//! Modules are named after `synapse_admin_api`'s, whose request and response types they use.

mod auth;
mod background_updates;
mod events;
mod federation;
pub(crate) mod json;
mod media;
mod query;
mod register;
mod registration_tokens;
mod reports;
mod room_media;
mod rooms;
mod server_notices;
mod statistics;
mod users;
mod version;

use axum::Router;

use crate::routes::AppRouter;

pub fn routes() -> AppRouter {
    let router = version::routes(Router::new());
    let router = media::routes(users::routes(router));
    let router = rooms::routes(register::routes(router));
    let router = reports::routes(registration_tokens::routes(router));
    let router = server_notices::routes(router);
    let router = federation::routes(background_updates::routes(router));
    let router = statistics::routes(events::routes(router));
    room_media::routes(router)
}
