//! `POST /_matrix/media/v3/upload` (ruma `media::create_content`): new media from the request's
//! body, streamed into the blob store as it arrives.

use axum::Json;
use axum::body::Body;
use http::HeaderMap;
use maas_core::media::Upload;
use ruma::api::client::media::create_content;
use serde::Deserialize;
use serde_json::{Value, json};

use super::serve::{drained_on_refusal, upload_content_type, upload_stream};
use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::extract::Query;
use crate::routes::{AppRouter, route};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<create_content::v3::Request, _, _>(router, create_content)
}

/// The query of an upload.
#[derive(Deserialize)]
pub(super) struct UploadQuery {
    pub filename: Option<String>,
}

/// `POST /_matrix/media/v3/upload`
async fn create_content(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    let content_type = upload_content_type(&headers);
    let upload = Upload {
        content_type: content_type.as_deref(),
        file_name: query.filename.as_deref(),
    };
    let mut body = upload_stream(body);
    let uploaded = tenant.media().upload(&user, upload, &mut body).await;
    let uri = drained_on_refusal(uploaded, &mut body).await?;
    Ok(Json(json!({ "content_uri": uri })))
}
