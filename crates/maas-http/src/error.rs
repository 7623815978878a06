//! Matrix errors at the HTTP edge: every failure, from core or from parsing, becomes the spec's
//! `{"errcode", "error"}` body with its status, here and nowhere else.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use maas_core::{Error, UiaChallenge};
use serde_json::{Map, Value, json};

#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    errcode: &'static str,
    message: String,
    extra: Map<String, Value>,
}

pub type Result<T, E = HttpError> = std::result::Result<T, E>;

impl HttpError {
    pub fn new(status: StatusCode, errcode: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            errcode,
            message: message.into(),
            extra: Map::new(),
        }
    }

    pub fn unrecognized(status: StatusCode) -> Self {
        Self::new(status, "M_UNRECOGNIZED", "Unrecognized request")
    }

    pub fn unknown_host() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "M_UNRECOGNIZED",
            "No homeserver is served on this host",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "M_FORBIDDEN", message)
    }

    pub fn missing_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "M_MISSING_TOKEN",
            "Missing access token",
        )
    }

    pub fn unknown_token() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "M_UNKNOWN_TOKEN",
            "Unknown access token",
        );
        e.extra.insert("soft_logout".into(), Value::Bool(false));
        e
    }

    pub fn not_json() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_NOT_JSON", "Content not JSON")
    }

    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_BAD_JSON", message)
    }

    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_INVALID_PARAM", message)
    }

    pub fn missing_param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_MISSING_PARAM", message)
    }

    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "M_TOO_LARGE",
            "Request body is too large",
        )
    }

    /// A fault on this side, such as core's output not fitting a response type: logged and
    /// answered as `500`, never blamed on the request.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into()).into()
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn errcode(&self) -> &'static str {
        self.errcode
    }

    /// Re-labels a client-API error for the operator API, where taken names are conflicts.
    pub fn for_operator(mut self) -> Self {
        if self.errcode == "M_USER_IN_USE" {
            self.status = StatusCode::CONFLICT;
        }
        self
    }

    fn uia(challenge: &UiaChallenge) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "", "");
        let flows: Vec<Value> = challenge
            .flows
            .iter()
            .map(|f| json!({ "stages": f }))
            .collect();
        e.extra.insert("flows".into(), Value::Array(flows));
        e.extra.insert("params".into(), challenge.params.clone());
        e.extra
            .insert("session".into(), Value::String(challenge.session.clone()));
        if !challenge.completed.is_empty() {
            e.extra
                .insert("completed".into(), json!(challenge.completed));
        }
        if let Some((errcode, message)) = &challenge.error {
            e.errcode = errcode;
            e.message = message.clone();
        }
        e
    }
}

impl From<Error> for HttpError {
    fn from(error: Error) -> Self {
        use StatusCode as S;
        match error {
            Error::Forbidden(m) => Self::forbidden(m),
            Error::NotFound(m) => Self::new(S::NOT_FOUND, "M_NOT_FOUND", m),
            Error::InvalidParam(m) => Self::invalid_param(m),
            Error::MissingParam(m) => Self::missing_param(m),
            Error::InvalidUsername(m) => Self::new(S::BAD_REQUEST, "M_INVALID_USERNAME", m),
            Error::BadJson(m) => Self::bad_json(m),
            Error::InvalidSignature(m) => Self::new(S::BAD_REQUEST, "M_INVALID_SIGNATURE", m),
            Error::Unauthorized(m) => Self::new(S::UNAUTHORIZED, "M_UNAUTHORIZED", m),
            Error::RemoteUnavailable(m) => Self::new(S::BAD_GATEWAY, "M_UNKNOWN", m),
            Error::UnsupportedRoomVersion(_) => Self::new(
                S::BAD_REQUEST,
                "M_UNSUPPORTED_ROOM_VERSION",
                error.to_string(),
            ),
            Error::IncompatibleRoomVersion(ref version) => {
                let mut e = Self::new(
                    S::BAD_REQUEST,
                    "M_INCOMPATIBLE_ROOM_VERSION",
                    error.to_string(),
                );
                e.extra.insert("room_version".into(), json!(version));
                e
            }
            Error::WrongRoomKeysVersion(ref current) => {
                let mut e = Self::new(S::FORBIDDEN, "M_WRONG_ROOM_KEYS_VERSION", error.to_string());
                e.extra.insert("current_version".into(), json!(current));
                e
            }
            Error::AliasExists => Self::new(S::CONFLICT, "M_UNKNOWN", error.to_string()),
            Error::RoomInUse => Self::new(S::BAD_REQUEST, "M_ROOM_IN_USE", error.to_string()),
            Error::Unknown(m) => Self::new(S::BAD_REQUEST, "M_UNKNOWN", m),
            Error::TooLarge(m) => Self::new(S::PAYLOAD_TOO_LARGE, "M_TOO_LARGE", m),
            Error::RemoteTooLarge(m) => Self::new(S::BAD_GATEWAY, "M_TOO_LARGE", m),
            Error::NotYetUploaded => {
                Self::new(S::GATEWAY_TIMEOUT, "M_NOT_YET_UPLOADED", error.to_string())
            }
            Error::CannotOverwriteMedia => {
                Self::new(S::CONFLICT, "M_CANNOT_OVERWRITE_MEDIA", error.to_string())
            }
            Error::ResourceLimitExceeded {
                message,
                admin_contact,
            } => {
                let mut e = Self::new(S::FORBIDDEN, "M_RESOURCE_LIMIT_EXCEEDED", message);
                e.extra
                    .insert("admin_contact".into(), Value::String(admin_contact));
                e
            }
            Error::RequestTimeout(m) => Self::new(S::REQUEST_TIMEOUT, "M_UNKNOWN", m),
            Error::UserInUse => Self::new(S::BAD_REQUEST, "M_USER_IN_USE", error.to_string()),
            Error::UnknownToken => Self::unknown_token(),
            Error::UserDeactivated => {
                Self::new(S::FORBIDDEN, "M_USER_DEACTIVATED", error.to_string())
            }
            Error::UserLocked => {
                let mut e = Self::new(S::UNAUTHORIZED, "M_USER_LOCKED", error.to_string());
                e.extra.insert("soft_logout".into(), Value::Bool(true));
                e
            }
            Error::UserSuspended(m) => Self::new(S::FORBIDDEN, "M_USER_SUSPENDED", m),
            Error::GuestAccessForbidden => {
                Self::new(S::FORBIDDEN, "M_GUEST_ACCESS_FORBIDDEN", error.to_string())
            }
            Error::LimitExceeded { retry_after_ms } => {
                let mut e = Self::new(S::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED", error.to_string());
                e.extra
                    .insert("retry_after_ms".into(), json!(retry_after_ms));
                e
            }
            Error::UiaRequired(challenge) => Self::uia(&challenge),
            Error::UnknownUiaSession => Self::new(S::BAD_REQUEST, "M_UNKNOWN", error.to_string()),
            Error::UnknownLoginType(m) => Self::new(S::BAD_REQUEST, "M_UNKNOWN", m),
            Error::TenantSuspended => Self::new(S::FORBIDDEN, "M_FORBIDDEN", error.to_string()),
            Error::Conflict(m) => Self::new(S::CONFLICT, "M_CONFLICT", m),
            Error::Store(_) | Error::Internal(_) => {
                tracing::error!(error = %error, "internal error");
                Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    "M_UNKNOWN",
                    "Internal server error",
                )
            }
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        if !self.errcode.is_empty() {
            body.insert("errcode".into(), Value::String(self.errcode.to_owned()));
            body.insert("error".into(), Value::String(self.message));
        }
        let retry_secs = body
            .get("retry_after_ms")
            .and_then(Value::as_u64)
            .map(|ms| ms.div_ceil(1000));
        let mut response = (self.status, Json(Value::Object(body))).into_response();
        let retry_value = retry_secs.and_then(|s| HeaderValue::from_str(&s.to_string()).ok());
        if let Some(value) = retry_value {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, value);
        }
        response
    }
}
