//! Prometheus metrics over HTTP: every request of the public and federation listeners is
//! counted and timed under one of a few endpoint groups (a fixed set, so the series stay few
//! whatever the paths), and `GET /metrics` serves the platform's series on a listener of its own.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use maas_core::Platform;

use crate::error::HttpError;

/// Prometheus's text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counts and times the request under its endpoint group.
pub(crate) async fn record(
    State(platform): State<Arc<Platform>>,
    req: Request,
    next: Next,
) -> Response {
    let group = endpoint_group(req.uri().path());
    let started = Instant::now();
    let response = next.run(req).await;
    platform
        .metrics()
        .observe_request(group, response.status().as_u16(), started.elapsed());
    response
}

/// The group a path belongs to: the API surface, with the client API's busiest parts apart.
fn endpoint_group(path: &str) -> &'static str {
    if let Some(rest) = path.strip_prefix("/_matrix/client/") {
        return client_group(rest);
    }
    if path.starts_with("/_matrix/media/") {
        return "media";
    }
    if path.starts_with("/_matrix/federation/") {
        return "federation";
    }
    if path.starts_with("/_matrix/key/") {
        return "federation_keys";
    }
    if path.starts_with("/_synapse/admin/") {
        return "admin";
    }
    if path.starts_with("/.well-known/") {
        return "well_known";
    }
    "other"
}

/// The client API's groups, from the path after `/_matrix/client/`.
fn client_group(rest: &str) -> &'static str {
    let (version, endpoint) = rest.split_once('/').unwrap_or((rest, ""));
    if version == "versions" {
        return "client_other";
    }
    let first = endpoint.split('/').next().unwrap_or("");
    match first {
        "sync" => "client_sync",
        "media" => "media",
        "login" | "logout" | "register" | "refresh" | "account" => "client_auth",
        "keys" | "sendToDevice" | "room_keys" => "client_e2ee",
        "rooms" if is_send(endpoint) => "client_send",
        "rooms" | "join" | "createRoom" => "client_rooms",
        _ => "client_other",
    }
}

/// `rooms/{roomId}/send|state|redact/…`: what writes an event.
fn is_send(endpoint: &str) -> bool {
    matches!(
        endpoint.split('/').nth(2),
        Some("send" | "state" | "redact")
    )
}

/// The metrics listener's application: `GET /metrics` and nothing else.
pub fn metrics_router(platform: Arc<Platform>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { HttpError::unrecognized(StatusCode::NOT_FOUND) })
        .with_state(platform)
}

/// `GET /metrics`
async fn metrics(State(platform): State<Arc<Platform>>) -> Response {
    match platform.render_metrics().await {
        Ok(text) => ([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response(),
        Err(e) => HttpError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fall_in_few_groups() {
        let cases = [
            ("/_matrix/client/v3/sync", "client_sync"),
            (
                "/_matrix/client/v3/rooms/!a:b/send/m.room.message/1",
                "client_send",
            ),
            (
                "/_matrix/client/v3/rooms/!a:b/state/m.room.name/",
                "client_send",
            ),
            ("/_matrix/client/v3/rooms/!a:b/messages", "client_rooms"),
            ("/_matrix/client/v3/createRoom", "client_rooms"),
            ("/_matrix/client/v3/login", "client_auth"),
            ("/_matrix/client/v3/keys/upload", "client_e2ee"),
            ("/_matrix/client/v1/media/download/a/b", "media"),
            ("/_matrix/client/versions", "client_other"),
            ("/_matrix/media/v3/upload", "media"),
            ("/_matrix/federation/v1/send/1", "federation"),
            ("/_matrix/key/v2/server", "federation_keys"),
            ("/_synapse/admin/v2/users", "admin"),
            ("/.well-known/matrix/client", "well_known"),
            ("/favicon.ico", "other"),
        ];
        for (path, group) in cases {
            assert_eq!(endpoint_group(path), group, "{path}");
        }
    }
}
