//! Request authentication (spec: Server-Server API, "Request Authentication"): every
//! federation request but the key and version endpoints carries an `X-Matrix` authorization,
//! signed by a key of its origin, for this tenant as its destination.

use http::HeaderMap;
use ruma::OwnedServerName;
use ruma::api::federation::authentication::XMatrix;

use crate::{Error, Result, Tenant, now_ms};

/// The origin of `request` once its `X-Matrix` signature verified with the origin's key for
/// `tenant` as destination; `401 M_UNAUTHORIZED` otherwise.
pub async fn authenticate<B: AsRef<[u8]>>(
    tenant: &Tenant,
    request: &http::Request<B>,
) -> Result<OwnedServerName> {
    let x_matrix = x_matrix(request.headers())?;
    let me = tenant.server_name();
    if let Some(destination) = &x_matrix.destination
        && destination != me
    {
        return Err(Error::Unauthorized(format!(
            "The request was signed for {destination}, not {me}"
        )));
    }
    if x_matrix.origin == me {
        return Err(Error::Unauthorized(format!(
            "{me} does not send federation requests to itself"
        )));
    }
    let keys = tenant
        .federation()
        .public_keys(&x_matrix.origin, &[x_matrix.key.as_str()], now_ms())
        .await?;
    x_matrix
        .verify_request(request, me, &keys)
        .map_err(|e| Error::Unauthorized(format!("Invalid X-Matrix signature: {e}")))?;
    Ok(x_matrix.origin)
}

/// The first `X-Matrix` authorization among the request's `Authorization` headers.
fn x_matrix(headers: &HeaderMap) -> Result<XMatrix> {
    let mut found = None;
    for value in headers.get_all(http::header::AUTHORIZATION) {
        let is_x_matrix = value
            .as_bytes()
            .split(|b| *b == b' ')
            .next()
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"X-Matrix"));
        if is_x_matrix {
            found = Some(value);
            break;
        }
    }
    let value = found.ok_or_else(|| {
        Error::Unauthorized("Missing X-Matrix authorization of the requesting server".into())
    })?;
    XMatrix::try_from(value)
        .map_err(|e| Error::Unauthorized(format!("Malformed X-Matrix authorization: {e}")))
}
