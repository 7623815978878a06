//! The content repository (spec: Client-Server API, "Content repository"; ruma
//! `authenticated_media` and `media`): the authenticated `/_matrix/client/v1/media/*` endpoints
//! and the deprecated `/_matrix/media/*` ones. Bodies stream both ways, so these handlers read
//! and write bytes themselves rather than through ruma's request and response types, and every
//! download goes out with the headers that keep media from running as a page ([`serve`]).

mod create_content;
mod create_content_async;
mod create_mxc_uri;
mod get_content;
mod get_content_thumbnail;
mod get_media_config;
mod get_media_preview;
pub(crate) mod serve;

pub(crate) use get_content_thumbnail::thumbnail_request;

use axum::Router;

use crate::routes::AppRouter;

pub fn routes() -> AppRouter {
    let router = Router::new();
    let router = create_content::routes(router);
    let router = create_content_async::routes(router);
    let router = create_mxc_uri::routes(router);
    let router = get_content::routes(router);
    let router = get_content_thumbnail::routes(router);
    let router = get_media_config::routes(router);
    get_media_preview::routes(router)
}

/// Whether `path` is an upload, whose body may be as large as the tenant's media allow and
/// take longer than a JSON body to arrive.
pub fn is_upload(path: &str) -> bool {
    let mut segments = path.trim_start_matches('/').split('/');
    matches!(
        (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next()
        ),
        (Some("_matrix"), Some("media"), Some(_), Some("upload"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_told_by_their_path() {
        assert!(is_upload("/_matrix/media/v3/upload"));
        assert!(is_upload("/_matrix/media/r0/upload"));
        assert!(is_upload("/_matrix/media/v3/upload/example.org/abc"));
        assert!(!is_upload("/_matrix/media/v3/download/example.org/abc"));
        assert!(!is_upload("/_matrix/client/v3/upload"));
        assert!(!is_upload("/_matrix/media"));
    }
}
