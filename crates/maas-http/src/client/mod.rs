//! The Client-Server API (spec v1.15): one module per `ruma::api::client` module and named like
//! it (one whose name differs says why), each endpoint under all of ruma's paths for it (`r0`,
//! `v3`, unstable). `convert` holds the conversions between core's and ruma's types they share.

mod account;
mod account_data;
mod alias;
mod backup;
mod capabilities;
mod context;
pub(crate) mod convert;
mod device;
pub(crate) mod directory;
mod filter;
mod keys;
mod membership;
mod message;
mod presence;
mod profile;
mod push;
mod read_marker;
mod receipt;
mod redact;
mod register;
mod relations;
mod reporting;
mod room;
mod session;
mod space;
mod state;
mod sync;
mod tag;
mod threads;
mod to_device;
mod typing;
mod upgrade_room;
mod user_directory;
mod versions;

use axum::Router;

use crate::routes::AppRouter;

pub fn routes() -> AppRouter {
    let router = Router::new();
    let router = versions::routes(router);
    let router = capabilities::routes(router);
    let router = register::routes(router);
    let router = session::routes(router);
    let router = account::routes(router);
    let router = device::routes(router);
    let router = profile::routes(router);
    let router = room::routes(router);
    let router = upgrade_room::routes(router);
    let router = membership::routes(router);
    let router = state::routes(router);
    let router = space::routes(router);
    let router = message::routes(router);
    let router = redact::routes(router);
    let router = reporting::routes(router);
    let router = context::routes(router);
    let router = relations::routes(router);
    let router = threads::routes(router);
    let router = receipt::routes(router);
    let router = read_marker::routes(router);
    let router = typing::routes(router);
    let router = account_data::routes(router);
    let router = tag::routes(router);
    let router = filter::routes(router);
    let router = alias::routes(router);
    let router = directory::routes(router);
    let router = presence::routes(router);
    let router = push::routes(router);
    let router = user_directory::routes(router);
    let router = keys::routes(router);
    let router = to_device::routes(router);
    let router = backup::routes(router);
    sync::routes(router)
}
