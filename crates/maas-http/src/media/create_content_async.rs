//! `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}` (ruma `media::create_content_async`,
//! MSC2246): the bytes of a media id made earlier with `POST /_matrix/media/v1/create`.

use axum::Json;
use axum::body::Body;
use http::HeaderMap;
use maas_core::media::Upload;
use ruma::OwnedServerName;
use ruma::api::client::media::create_content_async;
use serde_json::{Value, json};

use super::create_content::UploadQuery;
use super::serve::{drained_on_refusal, upload_content_type, upload_stream};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::extract::{Path, Query};
use crate::routes::{AppRouter, route};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<create_content_async::v3::Request, _, _>(router, create_content_async)
}

/// `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`
async fn create_content_async(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Path((server_name, media_id)): Path<(String, String)>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    let server_name = OwnedServerName::try_from(server_name).map_err(|_| {
        HttpError::new(
            http::StatusCode::NOT_FOUND,
            "M_NOT_FOUND",
            "Unknown media id",
        )
    })?;
    let content_type = upload_content_type(&headers);
    let upload = Upload {
        content_type: content_type.as_deref(),
        file_name: query.filename.as_deref(),
    };
    let mut body = upload_stream(body);
    let uploaded = tenant
        .media()
        .upload_pending(&user, &server_name, &media_id, upload, &mut body)
        .await;
    drained_on_refusal(uploaded, &mut body).await?;
    Ok(Json(json!({})))
}
