//! Media as an HTTP response: the bytes streamed from their file, and the headers that keep a
//! homeserver's host from serving a page (spec: "Security considerations" and "Serving inline
//! content" of the content repository): a sandboxing `Content-Security-Policy`,
//! `Content-Disposition` inline only for the spec's list of harmless types, `nosniff`, and
//! `Cross-Origin-Resource-Policy: cross-origin` for web clients.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::{HeaderValue, StatusCode, header};
use maas_core::media::Content;
use ruma::http_headers::{ContentDisposition, ContentDispositionType};
use tokio_util::io::ReaderStream;

use crate::body::BodyTimeout;
use crate::error::{HttpError, Result};

/// The policy the spec recommends for served media.
pub const CONTENT_SECURITY_POLICY: &str = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

/// Types the spec lists as safe to serve `inline`; everything else is an attachment.
const INLINE_TYPES: &[&str] = &[
    "text/css",
    "text/plain",
    "text/csv",
    "application/json",
    "application/ld+json",
    "image/jpeg",
    "image/gif",
    "image/png",
    "image/apng",
    "image/webp",
    "image/avif",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "audio/mp4",
    "audio/webm",
    "audio/aac",
    "audio/mpeg",
    "audio/ogg",
    "audio/wave",
    "audio/wav",
    "audio/x-wav",
    "audio/x-pn-wav",
    "audio/flac",
    "audio/x-flac",
];

const OCTET_STREAM: &str = "application/octet-stream";

/// Bytes read from the file per chunk of the response.
const CHUNK_BYTES: usize = 64 * 1024;

/// How a download is cached: authenticated media only by the client, the rest by anyone.
#[derive(Clone, Copy)]
pub enum Caching {
    Private,
    Public,
}

/// The response serving `content`, named `file_name` when given (the download-with-name
/// endpoints), else by its stored name.
pub fn media_response(content: Content, file_name: Option<&str>, caching: Caching) -> Response {
    let content_type = content
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok().map(|v| (t.to_owned(), v)));
    let (type_name, type_value) = content_type
        .unwrap_or_else(|| (OCTET_STREAM.into(), HeaderValue::from_static(OCTET_STREAM)));
    let name = file_name.map(str::to_owned).or(content.file_name.clone());
    let disposition = disposition(&type_name, name);
    let stream = ReaderStream::with_capacity(content.file, CHUNK_BYTES);
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, type_value);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(content.size));
    if let Ok(value) = HeaderValue::from_str(&disposition.to_string()) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    security_headers(headers);
    let cache = match caching {
        Caching::Private => "private, max-age=86400",
        Caching::Public => "public, max-age=86400, s-maxage=86400",
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    *response.status_mut() = StatusCode::OK;
    response
}

/// The headers every media response carries, error or not.
pub fn security_headers(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        http::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
}

/// `inline` for the spec's safe types (parameters such as `charset` aside), else `attachment`.
fn disposition(content_type: &str, file_name: Option<String>) -> ContentDisposition {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let kind = if INLINE_TYPES.contains(&essence.as_str()) {
        ContentDispositionType::Inline
    } else {
        ContentDispositionType::Attachment
    };
    ContentDisposition::new(kind).with_filename(file_name)
}

/// Bytes of a refused upload still read (and dropped) before answering, and how long for.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// An upload's body as the stream core reads, its deadline told as `TimedOut` (core knows
/// nothing of this crate's body types).
pub fn upload_stream(
    body: Body,
) -> impl Stream<Item = std::result::Result<Bytes, std::io::Error>> + Send + Unpin {
    body.into_data_stream().map_err(|e| {
        let timed_out = std::error::Error::source(&e).is_some_and(|s| s.is::<BodyTimeout>());
        let kind = if timed_out {
            std::io::ErrorKind::TimedOut
        } else {
            std::io::ErrorKind::Other
        };
        std::io::Error::new(kind, e.to_string())
    })
}

/// An upload refused before its body was read whole (too large, rate limited, an unknown
/// media id …): the rest is read and dropped (a bounded amount, for a bounded time) before the
/// answer goes out. A client still sending would otherwise find the connection closed under it
/// and never read the error.
pub async fn drained_on_refusal<T, S>(
    result: maas_core::Result<T>,
    body: &mut S,
) -> maas_core::Result<T>
where
    S: Stream<Item = std::result::Result<Bytes, std::io::Error>> + Unpin,
{
    if result.is_err() {
        let drain = async {
            let mut drained = 0;
            while let Some(Ok(piece)) = body.next().await {
                drained += piece.len();
                if drained > DRAIN_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    }
    result
}

/// The `Content-Type` a client gave its upload; absent or unreadable is no type.
pub fn upload_content_type(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A thumbnail's width or height as a `u32`: `M_INVALID_PARAM` for 0 or beyond.
pub fn dimension(value: ruma::UInt, name: &str) -> Result<u32> {
    u32::try_from(u64::from(value))
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| HttpError::invalid_param(format!("{name} must be a positive size")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_types_are_inline() {
        for safe in [
            "image/png",
            "text/plain; charset=utf-8",
            "IMAGE/JPEG",
            "video/mp4",
        ] {
            let d = disposition(safe, None).to_string();
            assert!(d.starts_with("inline"), "{safe}: {d}");
        }
        for unsafe_type in [
            "text/html",
            "image/svg+xml",
            "application/javascript",
            "text/xml",
            "",
        ] {
            let d = disposition(unsafe_type, None).to_string();
            assert!(d.starts_with("attachment"), "{unsafe_type}: {d}");
        }
    }

    #[test]
    fn file_names_are_quoted_or_encoded() {
        let d = disposition("text/plain", Some("a \"b\".txt".into())).to_string();
        assert!(d.starts_with("inline; filename="), "{d}");
        let d = disposition("application/pdf", Some("résumé.pdf".into())).to_string();
        assert!(d.contains("filename*=utf-8''"), "{d}");
    }
}
