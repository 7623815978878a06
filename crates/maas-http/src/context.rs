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
    let host = match request_host(&req) {
        Ok(host) => host,
        Err(e) => return e.into_response(),
    };
    let found = platform.tenant_for_host(&host).await;
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
    tenant.count_request();
    let (body_limit, body_deadline) = body_bounds(platform, &tenant, req.uri().path());
    if let Err(e) = refuse_announced_oversize(req.headers(), body_limit) {
        return e.into_response();
    }
    let mut req = with_body_deadline(req, body_deadline);
    let ip = client_ip(&req, platform.config().server.behind_proxy);
    let span = tracing::info_span!("request", tenant = %tenant.server_name(), method = %req.method(), path = %req.uri().path());
    let extensions = req.extensions_mut();
    extensions.insert(BodyLimit(body_limit));
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

/// How large a request's body may be and how long it may take to arrive: JSON bodies have
/// `limits`; a media upload may be as large as the tenant's media allow, and take longer.
fn body_bounds(platform: &Platform, tenant: &Tenant, path: &str) -> (usize, Duration) {
    if crate::media::is_upload(path) {
        let media = tenant.media();
        let limit = usize::try_from(media.max_upload_bytes()).unwrap_or(usize::MAX);
        return (limit, media.upload_timeout());
    }
    let limits = &platform.config().limits;
    (
        limits.max_request_bytes,
        Duration::from_secs(limits.body_read_timeout_secs),
    )
}

/// Discovery stays open while a tenant is suspended, so that clients and servers still find
/// the homeserver and learn from its API that it is closed.
fn is_discovery(path: &str) -> bool {
    path.starts_with("/.well-known/")
}

/// The host a request is for, as `host_without_port` normalises it (RFC 9112 §3.2): the
/// authority of an absolute-form target (or HTTP/2's `:authority`) wins over `Host`; without
/// either, the host is empty (HTTP/1.0 needs no `Host`), and no tenant answers on it.
///
/// More than one `Host`, a `Host` that is no authority, or none at all in HTTP/1.1 is `400`, as
/// RFC 9112 §3.2 requires: the request doesn't say which homeserver it is for. The spec has no
/// errcode for malformed HTTP; `M_INVALID_PARAM` is the one for a request parameter whose value
/// is invalid, and the host is the parameter that picks the homeserver.
pub fn request_host<B>(req: &http::Request<B>) -> Result<String, HttpError> {
    let mut hosts = req.headers().get_all(http::header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(bad_host("More than one Host header"));
    }
    if let Some(authority) = req.uri().authority() {
        return Ok(host_without_port(authority.host()));
    }
    match header {
        Some(value) if value.is_empty() => Ok(String::new()),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.parse::<http::uri::Authority>().ok())
            .map(|authority| host_without_port(authority.host()))
            .ok_or_else(|| bad_host("The Host header is no host name")),
        None if req.version() == http::Version::HTTP_11 => {
            Err(bad_host("An HTTP/1.1 request needs a Host header"))
        }
        None => Ok(String::new()),
    }
}

fn bad_host(message: &str) -> HttpError {
    HttpError::invalid_param(message)
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

/// The token of an `Authorization` value of the `Bearer` scheme. The scheme is case-insensitive
/// and is followed by one or more spaces (RFC 9110 §11.4, §11.1); `None` for other schemes.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("Bearer")
        .then_some(token.trim_matches(' '))
}

/// The access token from `Authorization: Bearer` or, as the spec still allows, the
/// `access_token` query parameter.
pub fn access_token(parts: &Parts) -> Result<Option<String>, HttpError> {
    if let Some(header) = parts.headers.get(http::header::AUTHORIZATION) {
        let value = header.to_str().map_err(|_| HttpError::missing_token())?;
        let token = bearer_token(value).ok_or_else(HttpError::missing_token)?;
        return Ok(Some(token.to_owned()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: http::Version, target: &str, hosts: &[&str]) -> http::Request<()> {
        let mut builder = http::Request::get(target).version(version);
        for host in hosts {
            builder = builder.header(http::header::HOST, *host);
        }
        builder.body(()).expect("a request")
    }

    fn host(target: &str, hosts: &[&str]) -> Result<String, HttpError> {
        request_host(&request(http::Version::HTTP_11, target, hosts))
    }

    #[test]
    fn the_host_is_read_from_the_host_header() {
        assert_eq!(
            host("/", &["Example.ORG:8008"]).ok().as_deref(),
            Some("example.org")
        );
        assert_eq!(
            host("/", &["example.org."]).ok().as_deref(),
            Some("example.org")
        );
        assert_eq!(host("/", &["[::1]:8008"]).ok().as_deref(), Some("[::1]"));
        assert_eq!(host("/", &[""]).ok().as_deref(), Some(""));
    }

    #[test]
    fn an_absolute_form_target_wins_over_host() {
        let found = host("http://a.test:8008/path", &["b.test"]);
        assert_eq!(found.ok().as_deref(), Some("a.test"));
        let found = host("http://user@[::1]/path", &[]);
        assert_eq!(found.ok().as_deref(), Some("[::1]"));
    }

    #[test]
    fn duplicate_bad_or_missing_hosts_are_400() {
        for (target, hosts) in [
            ("/", &["a.test", "b.test"][..]),
            ("/", &["a.test", "a.test"][..]),
            ("http://a.test/", &["a.test", "a.test"][..]),
            ("/", &["a test"][..]),
            ("/", &[][..]),
        ] {
            let error = host(target, hosts).expect_err("a bad host");
            assert_eq!(error.errcode(), "M_INVALID_PARAM", "{hosts:?}");
        }
        // HTTP/1.0 has no Host to require.
        let old = request(http::Version::HTTP_10, "/", &[]);
        assert_eq!(request_host(&old).ok().as_deref(), Some(""));
    }

    #[test]
    fn the_bearer_scheme_is_matched_without_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER   abc "), Some("abc"));
        assert_eq!(bearer_token("Bearer "), Some(""));
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("X-Matrix origin=a"), None);
    }
}
