//! Downloads (ruma `authenticated_media::get_content{,_as_filename}` and the deprecated
//! `media::get_content{,_as_filename}`): the authenticated endpoints serve any media; the
//! deprecated, unauthenticated ones only what the tenant's freeze leaves them.

// The deprecated endpoints are still part of the spec, and served as it describes them.
#![allow(deprecated)]

use axum::response::Response;
use maas_core::media::Access;
use ruma::api::client::authenticated_media::{
    get_content as authed_get_content, get_content_as_filename as authed_get_content_as_filename,
};
use ruma::api::client::media::{get_content, get_content_as_filename};

use super::serve::{Caching, media_response};
use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::Ruma;

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<authed_get_content::v1::Request, _, _>(router, get_content_authed);
    let router = route::<authed_get_content_as_filename::v1::Request, _, _>(
        router,
        get_content_as_filename_authed,
    );
    let router = route::<get_content::v3::Request, _, _>(router, get_content);
    route::<get_content_as_filename::v3::Request, _, _>(router, get_content_as_filename)
}

fn authenticated(wait: std::time::Duration) -> Access {
    Access {
        authenticated: true,
        allow_remote: true,
        wait,
    }
}

fn unauthenticated(allow_remote: bool, wait: std::time::Duration) -> Access {
    Access {
        authenticated: false,
        allow_remote,
        wait,
    }
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`
async fn get_content_authed(
    ForTenant(tenant): ForTenant,
    Authed(_user): Authed,
    Ruma(req): Ruma<authed_get_content::v1::Request>,
) -> Result<Response> {
    let access = authenticated(req.timeout_ms);
    let content = tenant
        .media()
        .download(&req.server_name, &req.media_id, access)
        .await?;
    Ok(media_response(content, None, Caching::Private))
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}`
async fn get_content_as_filename_authed(
    ForTenant(tenant): ForTenant,
    Authed(_user): Authed,
    Ruma(req): Ruma<authed_get_content_as_filename::v1::Request>,
) -> Result<Response> {
    let access = authenticated(req.timeout_ms);
    let content = tenant
        .media()
        .download(&req.server_name, &req.media_id, access)
        .await?;
    Ok(media_response(
        content,
        Some(&req.filename),
        Caching::Private,
    ))
}

/// `GET /_matrix/media/v3/download/{serverName}/{mediaId}` (deprecated)
async fn get_content(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_content::v3::Request>,
) -> Result<Response> {
    let access = unauthenticated(req.allow_remote, req.timeout_ms);
    let content = tenant
        .media()
        .download(&req.server_name, &req.media_id, access)
        .await?;
    Ok(media_response(content, None, Caching::Public))
}

/// `GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}` (deprecated)
async fn get_content_as_filename(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_content_as_filename::v3::Request>,
) -> Result<Response> {
    let access = unauthenticated(req.allow_remote, req.timeout_ms);
    let content = tenant
        .media()
        .download(&req.server_name, &req.media_id, access)
        .await?;
    Ok(media_response(
        content,
        Some(&req.filename),
        Caching::Public,
    ))
}
