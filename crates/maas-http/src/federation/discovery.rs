//! Server discovery (spec: Server-Server API, "Server discovery" and "Retrieving server keys";
//! ruma `discovery`): what implementation answers, the tenant's signing keys
//! (`/_matrix/key/v2/server`), and other servers' keys with the tenant as notary
//! (`/_matrix/key/v2/query`). None of these is signed: they are how signatures get checked.

use maas_core::federation::notary;
use ruma::api::federation::discovery::get_server_version::v1::Server;
use ruma::api::federation::discovery::{
    get_remote_server_keys, get_remote_server_keys_batch, get_server_keys, get_server_version,
};

use crate::context::ForTenant;
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};
use crate::{IMPLEMENTATION_NAME, IMPLEMENTATION_VERSION};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_server_version::v1::Request, _, _>(router, get_server_version);
    let router = route::<get_server_keys::v2::Request, _, _>(router, get_server_keys);
    let router = route::<get_remote_server_keys::v2::Request, _, _>(router, get_remote_keys);
    route::<get_remote_server_keys_batch::v2::Request, _, _>(router, get_remote_keys_batch)
}

/// `GET /_matrix/key/v2/server`
async fn get_server_keys(
    ForTenant(tenant): ForTenant,
    _: Ruma<get_server_keys::v2::Request>,
) -> Result<RumaResponse<get_server_keys::v2::Response>> {
    let keys = tenant.server_keys().await?;
    let document = keys.document(tenant.server_name())?;
    Ok(get_server_keys::v2::Response::new(document).into())
}

/// `GET /_matrix/key/v2/query/{serverName}`
async fn get_remote_keys(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_remote_server_keys::v2::Request>,
) -> Result<RumaResponse<get_remote_server_keys::v2::Response>> {
    let minimum = i64::from(req.minimum_valid_until_ts.get());
    let server_keys = notary::query_keys(&tenant, &[(req.server_name, minimum)]).await?;
    Ok(get_remote_server_keys::v2::Response::new(server_keys).into())
}

/// `POST /_matrix/key/v2/query`
async fn get_remote_keys_batch(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_remote_server_keys_batch::v2::Request>,
) -> Result<RumaResponse<get_remote_server_keys_batch::v2::Response>> {
    let server_keys = notary::query_key_batch(&tenant, &req.server_keys).await?;
    Ok(get_remote_server_keys_batch::v2::Response::new(server_keys).into())
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
