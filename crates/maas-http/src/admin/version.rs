//! The server's version (Synapse: "Version API"; `synapse_admin_api::version`), which Synapse
//! serves to anyone, without authentication.

use synapse_admin_api::version::get_server_version;

use crate::IMPLEMENTATION_VERSION;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<get_server_version::v1::Request, _, _>(router, get_server_version)
}

/// `GET /_synapse/admin/v1/server_version`
async fn get_server_version(
    _: Ruma<get_server_version::v1::Request>,
) -> RumaResponse<get_server_version::v1::Response> {
    get_server_version::v1::Response::new(IMPLEMENTATION_VERSION.to_owned()).into()
}
