//! Thumbnails (ruma `authenticated_media::get_content_thumbnail` and the deprecated
//! `media::get_content_thumbnail`).

// The deprecated endpoints are still part of the spec, and served as it describes them.
#![allow(deprecated)]

use axum::response::Response;
use maas_core::media::Access;
use maas_core::media::thumbnail::{Method, Request};
use ruma::api::client::authenticated_media::get_content_thumbnail as authed_get_content_thumbnail;
use ruma::api::client::media::get_content_thumbnail;
use ruma::media::Method as RumaMethod;

use super::serve::{Caching, dimension, media_response};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::Ruma;

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<authed_get_content_thumbnail::v1::Request, _, _>(
        router,
        get_content_thumbnail_authed,
    );
    route::<get_content_thumbnail::v3::Request, _, _>(router, get_content_thumbnail)
}

/// The thumbnail asked for; `scale` when no method is given, as Synapse does.
pub(crate) fn thumbnail_request(
    width: ruma::UInt,
    height: ruma::UInt,
    method: Option<&RumaMethod>,
    animated: Option<bool>,
) -> Result<Request> {
    let method = match method.map(RumaMethod::as_str) {
        None | Some("scale") => Method::Scale,
        Some("crop") => Method::Crop,
        Some(other) => {
            return Err(HttpError::invalid_param(format!(
                "Unknown thumbnail method {other:?}"
            )));
        }
    };
    Ok(Request {
        width: dimension(width, "width")?,
        height: dimension(height, "height")?,
        method,
        animated: animated.unwrap_or(false),
    })
}

/// `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`
async fn get_content_thumbnail_authed(
    ForTenant(tenant): ForTenant,
    Authed(_user): Authed,
    Ruma(req): Ruma<authed_get_content_thumbnail::v1::Request>,
) -> Result<Response> {
    let request = thumbnail_request(req.width, req.height, req.method.as_ref(), req.animated)?;
    let access = Access {
        authenticated: true,
        allow_remote: true,
        wait: req.timeout_ms,
    };
    let content = tenant
        .media()
        .thumbnail(&req.server_name, &req.media_id, request, access)
        .await?;
    Ok(media_response(content, None, Caching::Private))
}

/// `GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}` (deprecated)
async fn get_content_thumbnail(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_content_thumbnail::v3::Request>,
) -> Result<Response> {
    let request = thumbnail_request(req.width, req.height, req.method.as_ref(), req.animated)?;
    let access = Access {
        authenticated: false,
        allow_remote: req.allow_remote,
        wait: req.timeout_ms,
    };
    let content = tenant
        .media()
        .thumbnail(&req.server_name, &req.media_id, request, access)
        .await?;
    Ok(media_response(content, None, Caching::Public))
}
