//! axum's path and query extractors with Matrix errors: axum refuses a bad path or query with a
//! `text/plain` body, and the spec wants `{"errcode", "error"}` for every error. Handlers that
//! parse a path or query themselves (rather than through a ruma request type) use these.

use axum::extract::FromRequestParts;
use axum::extract::rejection::{PathRejection, QueryRejection};

use crate::error::HttpError;

/// `axum::extract::Path` with `400 M_INVALID_PARAM` for a segment that doesn't parse.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(HttpError))]
pub struct Path<T>(pub T);

/// `axum::extract::Query` with `400 M_MISSING_PARAM` for a missing parameter and
/// `400 M_INVALID_PARAM` for one that doesn't parse.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(HttpError))]
pub struct Query<T>(pub T);

impl From<PathRejection> for HttpError {
    fn from(rejection: PathRejection) -> Self {
        // A route registered without the parameters its handler names is our fault (axum
        // answers 500 for it); every other path rejection is about the client's path.
        if rejection.status().is_server_error() {
            return HttpError::internal(rejection.body_text());
        }
        HttpError::invalid_param(rejection.body_text())
    }
}

impl From<QueryRejection> for HttpError {
    fn from(rejection: QueryRejection) -> Self {
        let text = rejection.body_text();
        // serde's wording for a required field that is absent.
        if text.contains("missing field") {
            HttpError::missing_param(text)
        } else {
            HttpError::invalid_param(text)
        }
    }
}
