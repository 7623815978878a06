//! The Client-Server API (spec v1.15), one module per section of the spec. Every endpoint is
//! registered under each path ruma knows for it (`r0`, `v3`, stable and unstable).

mod account;
mod backup;
mod capabilities;
mod device;
mod directory;
mod events;
mod keys;
mod membership;
mod messages;
mod presence;
mod profile;
mod push;
mod receipts;
mod register;
mod relations;
mod room_state;
mod rooms;
mod session;
mod sync;
mod to_device;
mod user_data;
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
    let router = rooms::routes(router);
    let router = membership::routes(router);
    let router = room_state::routes(router);
    let router = messages::routes(router);
    let router = receipts::routes(router);
    let router = user_data::routes(router);
    let router = directory::routes(router);
    let router = relations::routes(router);
    let router = presence::routes(router);
    let router = push::routes(router);
    let router = user_directory::routes(router);
    let router = keys::routes(router);
    let router = to_device::routes(router);
    let router = backup::routes(router);
    sync::routes(router)
}
