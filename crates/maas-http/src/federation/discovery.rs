//! Server discovery (spec: Server-Server API, "Server discovery" and "Retrieving server keys";
//! ruma `discovery`): what implementation answers, and later the tenant's signing keys
//! (`/_matrix/key/v2/server`).

use ruma::api::federation::discovery::get_server_version;
use ruma::api::federation::discovery::get_server_version::v1::Server;

use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};
use crate::{IMPLEMENTATION_NAME, IMPLEMENTATION_VERSION};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<get_server_version::v1::Request, _, _>(router, get_server_version)
}

/// `GET /_matrix/federation/v1/version`
async fn get_server_version(
    _: Ruma<get_server_version::v1::Request>,
) -> RumaResponse<get_server_version::v1::Response> {
    let mut server = Server::new();
    server.name = Some(IMPLEMENTATION_NAME.to_owned());
    server.version = Some(IMPLEMENTATION_VERSION.to_owned());
    let mut response = get_server_version::v1::Response::new();
    response.server = Some(server);
    response.into()
}
