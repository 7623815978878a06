//! `GET /_matrix/client/versions` (spec: "API Standards"; ruma `discovery`, whose other
//! endpoints are `capabilities` and the `.well-known` surface): the spec versions this server
//! implements.

use ruma::api::client::discovery::get_supported_versions;

use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

/// Versions whose endpoints are served under the `v3` paths, which every one of these uses.
/// Features are filled in issue by issue; clients pick paths by these.
const SUPPORTED_VERSIONS: &[&str] = &[
    "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11",
    "v1.12", "v1.13", "v1.14", "v1.15",
];

pub fn routes(router: AppRouter) -> AppRouter {
    route::<get_supported_versions::Request, _, _>(router, get_supported_versions)
}

/// `GET /_matrix/client/versions`
async fn get_supported_versions(
    _: Ruma<get_supported_versions::Request>,
) -> RumaResponse<get_supported_versions::Response> {
    let versions = SUPPORTED_VERSIONS.iter().map(|v| (*v).to_owned()).collect();
    get_supported_versions::Response::new(versions).into()
}
