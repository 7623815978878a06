//! What every tenant-scoped request carries before a handler runs: the tenant it is for
//! (resolved by its surface from the request, never from anything global), the client's
//! address, and the user behind the access token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use maas_core::accounts::AuthedUser;
use maas_core::{Platform, Tenant, tenants::host_without_port};
use serde::Deserialize;
use tracing::Instrument;

use crate::body::{refuse_announced_oversize, with_body_deadline};
use crate::error::HttpError;
use crate::ruma::BodyLimit;

/// The client's IP address, as the platform sees it.
#[derive(Clone, Debug)]
pub struct ClientIp(pub String);

/// Resolves the tenant of a request by its `Host` (Client-Server API, admin API,
/// `.well-known`); unknown hosts get `404 M_UNRECOGNIZED`.
pub async fn tenant_by_host(
    State(platform): State<Arc<Platform>>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let found = platform.tenant_for_host(&request_host(&req)).await;
    enter(&platform, found, req, next).await
}

/// Admits a request to the tenant its surface found for it, or refuses it: an unknown tenant
/// is `404 M_UNRECOGNIZED`, a suspended one `403`. Hands the tenant, the client's address and
/// the body limit to the handlers.
pub async fn enter(
    platform: &Platform,
    found: maas_core::Result<Option<Tenant>>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let tenant = match found {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return HttpError::unknown_host().into_response(),
        Err(e) => return HttpError::from(e).into_response(),
    };
    if !is_discovery(req.uri().path())
        && let Err(e) = tenant.ensure_active()
    {
        return HttpError::from(e).into_response();
    }
    let limits = &platform.config().limits;
    if let Err(e) = refuse_announced_oversize(req.headers(), limits.max_request_bytes) {
        return e.into_response();
    }
    let mut req = with_body_deadline(req, Duration::from_secs(limits.body_read_timeout_secs));
    let ip = client_ip(&req, platform.config().server.behind_proxy);
    let span = tracing::info_span!("request", tenant = %tenant.server_name(), method = %req.method(), path = %req.uri().path());
    let extensions = req.extensions_mut();
    extensions.insert(BodyLimit(limits.max_request_bytes));
    extensions.insert(ClientIp(ip));
    extensions.insert(tenant);
    async move {
        let response = next.run(req).await;
        tracing::info!(status = response.status().as_u16(), "handled");
        response
    }
    .instrument(span)
    .await
}

/// Discovery stays open while a tenant is suspended, so that clients and servers still find
/// the homeserver and learn from its API that it is closed.
fn is_discovery(path: &str) -> bool {
    path.starts_with("/.well-known/")
}

/// The `Host` of a request, without port.
pub fn request_host<B>(req: &http::Request<B>) -> String {
    let header = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let host = header.or_else(|| req.uri().host()).unwrap_or_default();
    host_without_port(host)
}

fn client_ip<B>(req: &http::Request<B>, behind_proxy: bool) -> String {
    if behind_proxy {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|h| h.to_str().ok());
        if let Some(first) = forwarded.and_then(|f| f.split(',').next()) {
            return first.trim().to_owned();
        }
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default()
}

/// The tenant the request was routed to.
pub struct ForTenant(pub Tenant);

impl<S: Send + Sync> FromRequestParts<S> for ForTenant {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, HttpError> {
        let tenant = parts.extensions.get::<Tenant>().cloned();
        tenant.map(ForTenant).ok_or_else(HttpError::unknown_host)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, HttpError> {
        Ok(parts
            .extensions
            .get::<ClientIp>()
            .cloned()
            .unwrap_or(ClientIp(String::new())))
    }
}

/// The user behind the request's access token; `401` without a valid one.
pub struct Authed(pub AuthedUser);

/// Like [`Authed`] for endpoints where the access token is optional.
pub struct MaybeAuthed(pub Option<AuthedUser>);

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

/// The access token from `Authorization: Bearer` or, as the spec still allows, the
/// `access_token` query parameter.
pub fn access_token(parts: &Parts) -> Result<Option<String>, HttpError> {
    if let Some(header) = parts.headers.get(http::header::AUTHORIZATION) {
        let value = header.to_str().map_err(|_| HttpError::missing_token())?;
        let token = value
            .strip_prefix("Bearer ")
            .ok_or_else(HttpError::missing_token)?;
        return Ok(Some(token.trim().to_owned()));
    }
    let query = Query::<TokenQuery>::try_from_uri(&parts.uri).ok();
    Ok(query.and_then(|q| q.0.access_token))
}

async fn authenticate(parts: &Parts, token: &str) -> Result<AuthedUser, HttpError> {
    let tenant = parts
        .extensions
        .get::<Tenant>()
        .ok_or_else(HttpError::unknown_host)?;
    let ip = parts
        .extensions
        .get::<ClientIp>()
        .map(|c| c.0.as_str())
        .unwrap_or_default();
    Ok(tenant.accounts().authenticate(token, ip).await?)
}

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, HttpError> {
        let token = access_token(parts)?.ok_or_else(HttpError::missing_token)?;
        authenticate(parts, &token).await.map(Authed)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MaybeAuthed {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, HttpError> {
        match access_token(parts)? {
            Some(token) => authenticate(parts, &token)
                .await
                .map(|u| MaybeAuthed(Some(u))),
            None => Ok(MaybeAuthed(None)),
        }
    }
}
