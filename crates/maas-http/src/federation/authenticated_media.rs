//! The content repository for other servers (spec: Server-Server API, "Content repository";
//! ruma `authenticated_media`): the tenant's own media as `multipart/mixed`, a JSON part of
//! metadata then the bytes, streamed from their file.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{HeaderValue, header};
use maas_core::media::{Access, Content};
use ruma::api::federation::authenticated_media::{get_content, get_content_thumbnail};
use ruma::http_headers::{ContentDisposition, ContentDispositionType};
use tokio_util::io::ReaderStream;

use crate::context::ForTenant;
use crate::error::Result;
use crate::media::serve::security_headers;
use crate::routes::{AppRouter, route};
use crate::ruma::Ruma;

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_content::v1::Request, _, _>(router, get_content);
    route::<get_content_thumbnail::v1::Request, _, _>(router, get_content_thumbnail)
}

/// `GET /_matrix/federation/v1/media/download/{mediaId}`
async fn get_content(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_content::v1::Request>,
) -> Result<Response> {
    let content = tenant
        .media()
        .for_federation(&req.media_id, req.timeout_ms)
        .await?;
    Ok(multipart(content))
}

/// `GET /_matrix/federation/v1/media/thumbnail/{mediaId}`
async fn get_content_thumbnail(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_content_thumbnail::v1::Request>,
) -> Result<Response> {
    let request =
        crate::media::thumbnail_request(req.width, req.height, req.method.as_ref(), req.animated)?;
    let access = Access {
        authenticated: true,
        allow_remote: false,
        wait: req.timeout_ms,
    };
    let server_name = tenant.server_name().to_owned();
    let content = tenant
        .media()
        .thumbnail(&server_name, &req.media_id, request, access)
        .await?;
    Ok(multipart(content))
}

/// The spec's two parts: `{}` of metadata, then the file with its type and disposition.
fn multipart(content: Content) -> Response {
    let boundary = maas_core::media::boundary();
    let content_type = content
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    let disposition = ContentDisposition::new(ContentDispositionType::Attachment)
        .with_filename(content.file_name.clone());
    let head = format!(
        "\r\n--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Disposition: {disposition}\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let length = head.len() as u64 + content.size + tail.len() as u64;
    let file = ReaderStream::new(content.file);
    let body = stream::once(async move { Ok(Bytes::from(head)) })
        .chain(file)
        .chain(stream::once(async move { Ok(Bytes::from(tail)) }));
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("multipart/mixed; boundary={boundary}")) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    security_headers(headers);
    response
}
