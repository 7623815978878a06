//! `/.well-known/matrix/client` and `/.well-known/matrix/server` of each tenant (spec:
//! "Server Discovery"), so a custom domain can delegate to the platform.

use axum::Router;
use axum::extract::Request;
use ruma::ServerName;
use ruma::api::client::discovery::discover_homeserver;
use ruma::api::client::discovery::discover_homeserver::HomeserverInfo;
use ruma::api::federation::discovery::discover_homeserver as discover_server;

use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};
use maas_core::Tenant;

pub fn routes() -> AppRouter {
    let router = route::<discover_homeserver::Request, _, _>(Router::new(), client);
    route::<discover_server::Request, _, _>(router, server)
}

/// `GET /.well-known/matrix/client`
async fn client(
    ForTenant(tenant): ForTenant,
    request: Request,
) -> Result<RumaResponse<discover_homeserver::Response>> {
    let base_url = match tenant.settings().client_base_url {
        Some(url) => url,
        None => default_base_url(&tenant, &request),
    };
    Ok(discover_homeserver::Response::new(HomeserverInfo::new(base_url)).into())
}

/// Without a configured base URL, clients are sent back where they came from: the primary host
/// with the scheme and port of this request.
fn default_base_url(tenant: &Tenant, request: &Request) -> String {
    let scheme = request
        .headers()
        .get("x-forwarded-proto")
        .filter(|_| tenant.config().server.behind_proxy)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http");
    let host_header = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let port = host_header
        .and_then(port_of)
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    format!("{scheme}://{}{port}", tenant.primary_host())
}

fn port_of(host: &str) -> Option<&str> {
    let after_bracket = host.rsplit(']').next().unwrap_or(host);
    after_bracket
        .rsplit_once(':')
        .map(|(_, port)| port)
        .filter(|p| !p.is_empty())
}

/// `GET /.well-known/matrix/server`
async fn server(
    ForTenant(tenant): ForTenant,
    _: Ruma<discover_server::Request>,
) -> Result<RumaResponse<discover_server::Response>> {
    let delegated = tenant.federation_server();
    let server = ServerName::parse(&delegated)
        .map_err(|e| HttpError::internal(format!("bad delegated server: {e}")))?;
    Ok(discover_server::Response::new(server).into())
}
