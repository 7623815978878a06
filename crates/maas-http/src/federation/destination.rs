//! Which tenant a federation request is for (spec v1.15, Server-Server API, "Request
//! Authentication"): the `destination` of its `X-Matrix` authorization, else its `Host`, which
//! is all servers older than v1.3 send. The signature is not checked here.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use maas_core::Platform;
use ruma::OwnedServerName;
use ruma::api::federation::authentication::XMatrix;

use crate::context::{enter, request_host};
use crate::error::HttpError;

/// Resolves the tenant of a federation request by its `X-Matrix` destination, falling back
/// to `Host`; unknown ones get `404 M_UNRECOGNIZED` like unknown hosts.
pub async fn tenant_by_destination(
    State(platform): State<Arc<Platform>>,
    req: Request,
    next: Next,
) -> Response {
    // Checked even when the destination decides: a request with two `Host`s is malformed
    // whatever it is for (RFC 9112 §3.2).
    let host = match request_host(&req) {
        Ok(host) => host,
        Err(e) => return e.into_response(),
    };
    let found = match x_matrix_destination(req.headers()) {
        Err(e) => return e.into_response(),
        Ok(Some(destination)) => platform.tenant_for_server_name(destination.as_str()).await,
        Ok(None) => by_host_or_server_name(&platform, &host, authority(&req).as_deref()).await,
    };
    enter(&platform, found, req, next).await
}

/// The tenant named by the request's authority (its port included: `127.0.0.1:8448` is a
/// server name of its own), else the one answering on `host`, else the one named `host`:
/// without delegation, or through SRV records, other servers send the server name as `Host`
/// (spec: "Resolving server names"). The exact server name comes first, so a tenant named by
/// an address and port is not taken for another that answers on that address.
async fn by_host_or_server_name(
    platform: &Platform,
    host: &str,
    authority: Option<&str>,
) -> maas_core::Result<Option<maas_core::Tenant>> {
    if let Some(authority) = authority
        && let Some(tenant) = platform.tenant_for_server_name(authority).await?
    {
        return Ok(Some(tenant));
    }
    if let Some(tenant) = platform.tenant_for_host(host).await? {
        return Ok(Some(tenant));
    }
    platform.tenant_for_server_name(host).await
}

/// The authority the request names, port included: an absolute-form target's, else `Host`.
fn authority(req: &Request) -> Option<String> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str().to_owned());
    }
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    Some(host.trim_end_matches('.').to_owned())
}

/// The `destination` of the request's `X-Matrix` authorization: `None` when there is no such
/// authorization (other schemes are for authentication to judge) or it names no destination.
fn x_matrix_destination(headers: &HeaderMap) -> Result<Option<OwnedServerName>, HttpError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.find(|v| is_x_matrix(v)) else {
        return Ok(None);
    };
    let x_matrix = XMatrix::try_from(value).map_err(|e| malformed(&e))?;
    Ok(x_matrix.destination)
}

/// Whether an `Authorization` value is of the `X-Matrix` scheme (case-insensitive, RFC 9110).
fn is_x_matrix(value: &HeaderValue) -> bool {
    let scheme = value.as_bytes().split(|b| *b == b' ').next();
    scheme.is_some_and(|s| s.eq_ignore_ascii_case(b"X-Matrix"))
}

/// The spec leaves the answer to a malformed `X-Matrix` open; Synapse's is `400 M_UNAUTHORIZED`.
fn malformed(error: &dyn std::fmt::Display) -> HttpError {
    HttpError::new(
        StatusCode::BAD_REQUEST,
        "M_UNAUTHORIZED",
        format!("Malformed X-Matrix authorization: {error}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            let value = HeaderValue::from_str(value).expect("a valid header value");
            headers.append(header::AUTHORIZATION, value);
        }
        headers
    }

    fn destination(values: &[&str]) -> Option<String> {
        x_matrix_destination(&headers(values))
            .expect("a well-formed header")
            .map(|d| d.to_string())
    }

    fn rejection(values: &[&str]) -> HttpError {
        x_matrix_destination(&headers(values)).expect_err("a malformed header")
    }

    const SIGNED: &str = r#"origin="remote.test",key="ed25519:k1",sig="c2lnbmF0dXJl""#;

    #[test]
    fn destination_is_read_from_x_matrix() {
        let header = format!(r#"X-Matrix {SIGNED},destination="a.test""#);
        assert_eq!(destination(&[&header]).as_deref(), Some("a.test"));
        let spaced = format!(r#"x-matrix destination="a.test:8448", {SIGNED}"#);
        assert_eq!(destination(&[&spaced]).as_deref(), Some("a.test:8448"));
    }

    #[test]
    fn no_destination_without_x_matrix() {
        assert_eq!(destination(&[]), None);
        assert_eq!(destination(&["Bearer some-token"]), None);
        assert_eq!(destination(&["X-Matrixx whatever"]), None);
        // Servers older than spec v1.3 send no destination.
        assert_eq!(destination(&[&format!("X-Matrix {SIGNED}")]), None);
    }

    #[test]
    fn x_matrix_is_found_among_other_authorizations() {
        let header = format!(r#"X-Matrix {SIGNED},destination="a.test""#);
        let found = destination(&["Bearer some-token", &header]);
        assert_eq!(found.as_deref(), Some("a.test"));
    }

    #[test]
    fn malformed_x_matrix_is_400_unauthorized() {
        let cases = [
            "X-Matrix".to_owned(),
            "X-Matrix ,,,=".to_owned(),
            r#"X-Matrix origin="remote.test",destination="a.test""#.to_owned(),
            format!(r#"X-Matrix {SIGNED},destination="not a server name""#),
            format!(r#"X-Matrix {SIGNED},destination="a.test",destination="b.test""#),
            r#"X-Matrix origin="remote.test",key="ed25519:k1",sig="not base64!""#.to_owned(),
        ];
        for case in &cases {
            let error = rejection(&[case]);
            assert_eq!(
                (error.status(), error.errcode()),
                (StatusCode::BAD_REQUEST, "M_UNAUTHORIZED"),
                "{case}"
            );
        }
    }
}
