//! The Matrix Client-Server calls the scenarios make (register with its user-interactive auth
//! flow, login, createRoom, join, send, sync, joined_members, media upload, download and
//! thumbnails) and the operator calls of maas, over one pooled HTTP/1.1 client. Every call
//! reports the time on the wire only: requests are built first.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

/// Long-polls wait up to 30 s on the server; anything slower than this is a hung request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest error body kept in an error; the recorder truncates further.
const ERROR_BODY_BYTES: usize = 2048;
/// A register flow needs at most a handful of stages; more means a loop we must not follow.
const MAX_UIA_ROUNDS: usize = 4;
/// What we fall back to when a 429 names no delay.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("HTTP {status}: {body}")]
    Status {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    #[error("transport error: {0}")]
    Transport(String),
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl CallError {
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, CallError::Status { status: 429, .. })
    }

    /// How long to wait before retrying, for answers worth retrying (429 only).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Status {
                status: 429,
                retry_after,
                ..
            } => Some(retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
            _ => None,
        }
    }
}

fn transport(error: reqwest::Error) -> CallError {
    // The chain carries the useful part ("connection refused"), the top level only "error
    // sending request".
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    CallError::Transport(text)
}

/// A value and the time its request(s) spent between sending and the last body byte.
#[derive(Debug)]
pub struct Timed<T> {
    pub value: T,
    pub latency: Duration,
    pub bytes: usize,
}

impl<T> Timed<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Timed<U> {
        Timed {
            value: f(self.value),
            latency: self.latency,
            bytes: self.bytes,
        }
    }
}

/// A logged-in user.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: String,
    pub access_token: String,
}

/// What a `/sync` answer tells the scenarios.
#[derive(Debug)]
pub struct SyncSummary {
    pub next_batch: String,
    /// Timeline event ids of every joined room.
    pub event_ids: Vec<String>,
    pub joined_rooms: usize,
}

/// Query of a `/sync` request.
#[derive(Clone, Debug, Default)]
pub struct SyncQuery {
    pub since: Option<String>,
    pub timeout_ms: Option<u64>,
    /// A filter definition (inline JSON) or id.
    pub filter: Option<String>,
}

/// What a media download or thumbnail answered; the body itself is not kept.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    /// Body bytes received.
    pub length: u64,
    pub content_type: Option<String>,
}

/// Which media endpoints to read from: the authenticated ones of spec v1.11
/// (`/_matrix/client/v1/media/…`, token required) or the deprecated unauthenticated ones
/// (`/_matrix/media/v3/…`), for servers that predate authenticated media.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaApi {
    Authenticated,
    Legacy,
}

impl MediaApi {
    fn path<'a>(self, endpoint: &'a str, media: &'a Mxc) -> Vec<&'a str> {
        let prefix: &[&str] = match self {
            MediaApi::Authenticated => &["_matrix", "client", "v1", "media"],
            MediaApi::Legacy => &["_matrix", "media", "v3"],
        };
        let mut segments = prefix.to_vec();
        segments.extend([
            endpoint,
            media.server_name.as_str(),
            media.media_id.as_str(),
        ]);
        segments
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MediaApi::Authenticated => "/_matrix/client/v1/media",
            MediaApi::Legacy => "/_matrix/media/v3",
        }
    }
}

/// An `mxc://{serverName}/{mediaId}` URI, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mxc {
    pub server_name: String,
    pub media_id: String,
}

impl Mxc {
    pub fn parse(uri: &str) -> Result<Self, CallError> {
        let bad = || CallError::Protocol(format!("content_uri {uri:?} is not mxc://server/id"));
        let rest = uri.strip_prefix("mxc://").ok_or_else(bad)?;
        let (server_name, media_id) = rest.split_once('/').ok_or_else(bad)?;
        if server_name.is_empty() || media_id.is_empty() || media_id.contains('/') {
            return Err(bad());
        }
        Ok(Self {
            server_name: server_name.to_owned(),
            media_id: media_id.to_owned(),
        })
    }
}

/// A thumbnail size as the query of a thumbnail request names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThumbnailSize {
    pub width: u32,
    pub height: u32,
    /// `crop` or `scale`.
    pub method: &'static str,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Bytes,
    elapsed: Duration,
}

/// One homeserver as seen by clients: base URL, optional `Host` header, shared connection pool.
/// Cloning is cheap and shares the pool.
#[derive(Clone, Debug)]
pub struct Homeserver {
    http: reqwest::Client,
    base: Url,
    host: Option<HeaderValue>,
}

impl Homeserver {
    /// `base` must already have passed the loopback check. A `localhost` URL is pinned to
    /// 127.0.0.1 so that no resolver is asked.
    pub fn new(base: Url, host: Option<&str>, pool_size: usize) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(pool_size)
            .tcp_nodelay(true)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if base.host_str() == Some("localhost") {
            let port = base.port_or_known_default().unwrap_or(80);
            builder = builder.resolve("localhost", ([127, 0, 0, 1], port).into());
        }
        let http = builder.build()?;
        let host = host.map(HeaderValue::from_str).transpose()?;
        Ok(Self { http, base, host })
    }

    /// The same server and pool, sending another `Host` (maas routes tenants by it).
    pub fn for_host(&self, host: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: self.http.clone(),
            base: self.base.clone(),
            host: Some(HeaderValue::from_str(host)?),
        })
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A request with the `Host` header and the access token, if any; no body yet.
    fn builder(&self, method: Method, url: Url, token: Option<&str>) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, url);
        if let Some(host) = &self.host {
            req = req.header(HOST, host.clone());
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req
    }

    fn build(
        &self,
        method: Method,
        url: Url,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<reqwest::Request, CallError> {
        let mut req = self.builder(method, url, token);
        if let Some(body) = body {
            req = req.json(body);
        }
        req.build().map_err(transport)
    }

    async fn exchange(&self, req: reqwest::Request) -> Result<Reply, CallError> {
        let start = Instant::now();
        let resp = self.http.execute(req).await.map_err(transport)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(transport)?;
        Ok(Reply {
            status,
            headers,
            body,
            elapsed: start.elapsed(),
        })
    }

    /// Sends a request and reads a 2xx body chunk by chunk, counting bytes without keeping
    /// them: media bodies can be large, and holding them would measure our allocator too.
    /// An error answer is read whole (it is small) and becomes [`CallError::Status`].
    async fn exchange_counted(&self, req: reqwest::Request) -> Result<Timed<Fetched>, CallError> {
        let start = Instant::now();
        let mut resp = self.http.execute(req).await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map_err(transport)?;
            return Err(status_error(&Reply {
                status,
                headers,
                body,
                elapsed: start.elapsed(),
            }));
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut length: u64 = 0;
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            length += chunk.len() as u64;
        }
        Ok(Timed {
            value: Fetched {
                status: status.as_u16(),
                length,
                content_type,
            },
            latency: start.elapsed(),
            bytes: usize::try_from(length).unwrap_or(usize::MAX),
        })
    }

    /// `POST /_matrix/media/v3/upload?filename=…` with `body` as the file; returns the
    /// `content_uri`. `Bytes` is reference-counted, so repeated uploads of one buffer copy
    /// nothing on our side.
    pub async fn upload(
        &self,
        token: &str,
        body: Bytes,
        content_type: &str,
        filename: &str,
    ) -> Result<Timed<String>, CallError> {
        let url = self.url(
            &["_matrix", "media", "v3", "upload"],
            &[("filename", filename)],
        );
        let req = self
            .builder(Method::POST, url, Some(token))
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .build()
            .map_err(transport)?;
        let timed = into_json(self.exchange(req).await?)?;
        let uri = string_field(&timed.value, "content_uri")?;
        Ok(timed.map(|_| uri))
    }

    /// `GET …/download/{serverName}/{mediaId}`, the body read to its end.
    pub async fn download(
        &self,
        token: &str,
        api: MediaApi,
        media: &Mxc,
    ) -> Result<Timed<Fetched>, CallError> {
        let segments = api.path("download", media);
        let req = self
            .builder(Method::GET, self.url(&segments, &[]), Some(token))
            .build()
            .map_err(transport)?;
        self.exchange_counted(req).await
    }

    /// `GET …/thumbnail/{serverName}/{mediaId}?width=&height=&method=`, the body read to its
    /// end.
    pub async fn thumbnail(
        &self,
        token: &str,
        api: MediaApi,
        media: &Mxc,
        size: ThumbnailSize,
    ) -> Result<Timed<Fetched>, CallError> {
        let segments = api.path("thumbnail", media);
        let (width, height) = (size.width.to_string(), size.height.to_string());
        let query = [
            ("width", width.as_str()),
            ("height", height.as_str()),
            ("method", size.method),
        ];
        let req = self
            .builder(Method::GET, self.url(&segments, &query), Some(token))
            .build()
            .map_err(transport)?;
        self.exchange_counted(req).await
    }

    /// Sends a request and parses a 2xx JSON answer; anything else is an error.
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Timed<Value>, CallError> {
        let req = self.build(method, self.url(segments, query), token, body)?;
        let reply = self.exchange(req).await?;
        into_json(reply)
    }

    /// `GET /_matrix/client/versions`: needs no account, answers on every homeserver.
    pub async fn versions(&self) -> Result<Timed<()>, CallError> {
        let segments = ["_matrix", "client", "versions"];
        Ok(self
            .call(Method::GET, &segments, &[], None, None)
            .await?
            .map(|_| ()))
    }

    /// `GET /_matrix/client/v3/login`: the login flows, cheap and unauthenticated.
    pub async fn login_flows(&self) -> Result<Timed<()>, CallError> {
        let segments = ["_matrix", "client", "v3", "login"];
        Ok(self
            .call(Method::GET, &segments, &[], None, None)
            .await?
            .map(|_| ()))
    }

    /// `POST /_matrix/client/v3/register`, completing the user-interactive auth stages we can
    /// (`m.login.registration_token` when given a token, `m.login.dummy`). The latency is the
    /// sum of every round trip of the flow, as a client experiences registration.
    pub async fn register(
        &self,
        localpart: &str,
        password: &str,
        registration_token: Option<&str>,
    ) -> Result<Timed<Session>, CallError> {
        let segments = ["_matrix", "client", "v3", "register"];
        let mut body = json!({
            "username": localpart,
            "password": password,
            "initial_device_display_name": "maas-bench",
        });
        let mut latency = Duration::ZERO;
        let mut bytes = 0;
        for _ in 0..MAX_UIA_ROUNDS {
            let req = self.build(Method::POST, self.url(&segments, &[]), None, Some(&body))?;
            let reply = self.exchange(req).await?;
            latency += reply.elapsed;
            bytes += reply.body.len();
            if reply.status != StatusCode::UNAUTHORIZED {
                let session = into_json(reply).and_then(|t| session_of(&t.value))?;
                return Ok(Timed {
                    value: session,
                    latency,
                    bytes,
                });
            }
            let challenge: Value = serde_json::from_slice(&reply.body)
                .map_err(|e| CallError::Protocol(format!("register 401 is not JSON: {e}")))?;
            body["auth"] = next_uia_stage(&challenge, registration_token)?;
        }
        Err(CallError::Protocol(
            "registration did not finish after the offered auth stages".into(),
        ))
    }

    /// `POST /_matrix/client/v3/login` with a password.
    pub async fn login(&self, user: &str, password: &str) -> Result<Timed<Session>, CallError> {
        let segments = ["_matrix", "client", "v3", "login"];
        let body = json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
            "initial_device_display_name": "maas-bench",
        });
        let timed = self
            .call(Method::POST, &segments, &[], None, Some(&body))
            .await?;
        let session = session_of(&timed.value)?;
        Ok(timed.map(|_| session))
    }

    /// `POST /_matrix/client/v3/createRoom`; returns the room id.
    pub async fn create_room(&self, token: &str, body: &Value) -> Result<Timed<String>, CallError> {
        let segments = ["_matrix", "client", "v3", "createRoom"];
        let timed = self
            .call(Method::POST, &segments, &[], Some(token), Some(body))
            .await?;
        let room_id = string_field(&timed.value, "room_id")?;
        Ok(timed.map(|_| room_id))
    }

    /// `POST /_matrix/client/v3/join/{roomIdOrAlias}`.
    pub async fn join(&self, token: &str, room_id: &str) -> Result<Timed<()>, CallError> {
        let segments = ["_matrix", "client", "v3", "join", room_id];
        let body = json!({});
        Ok(self
            .call(Method::POST, &segments, &[], Some(token), Some(&body))
            .await?
            .map(|_| ()))
    }

    /// `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`; returns the event id.
    pub async fn send_text(
        &self,
        token: &str,
        room_id: &str,
        txn_id: &str,
        text: &str,
    ) -> Result<Timed<String>, CallError> {
        let segments = [
            "_matrix",
            "client",
            "v3",
            "rooms",
            room_id,
            "send",
            "m.room.message",
            txn_id,
        ];
        let body = json!({"msgtype": "m.text", "body": text});
        let timed = self
            .call(Method::PUT, &segments, &[], Some(token), Some(&body))
            .await?;
        let event_id = string_field(&timed.value, "event_id")?;
        Ok(timed.map(|_| event_id))
    }

    /// `GET /_matrix/client/v3/rooms/{roomId}/joined_members`; returns how many it lists.
    pub async fn joined_members(
        &self,
        token: &str,
        room_id: &str,
    ) -> Result<Timed<usize>, CallError> {
        let segments = [
            "_matrix",
            "client",
            "v3",
            "rooms",
            room_id,
            "joined_members",
        ];
        let timed = self
            .call(Method::GET, &segments, &[], Some(token), None)
            .await?;
        let joined = timed
            .value
            .get("joined")
            .and_then(Value::as_object)
            .map(serde_json::Map::len)
            .ok_or_else(|| CallError::Protocol("answer has no object `joined`".into()))?;
        Ok(timed.map(|_| joined))
    }

    /// Builds a `/sync` request without sending it, so a caller can note when it goes out.
    pub fn prepare_sync(
        &self,
        token: &str,
        query: &SyncQuery,
    ) -> Result<reqwest::Request, CallError> {
        let timeout = query.timeout_ms.map(|t| t.to_string());
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some(since) = &query.since {
            pairs.push(("since", since));
        }
        if let Some(timeout) = &timeout {
            pairs.push(("timeout", timeout));
        }
        if let Some(filter) = &query.filter {
            pairs.push(("filter", filter));
        }
        let url = self.url(&["_matrix", "client", "v3", "sync"], &pairs);
        self.build(Method::GET, url, Some(token), None)
    }

    /// Sends a request from [`Homeserver::prepare_sync`].
    pub async fn run_sync(&self, req: reqwest::Request) -> Result<Timed<SyncSummary>, CallError> {
        let timed = into_json(self.exchange(req).await?)?;
        let summary = sync_summary(&timed.value)?;
        Ok(timed.map(|_| summary))
    }

    pub async fn sync(
        &self,
        token: &str,
        query: &SyncQuery,
    ) -> Result<Timed<SyncSummary>, CallError> {
        let req = self.prepare_sync(token, query)?;
        self.run_sync(req).await
    }
}

fn into_json(reply: Reply) -> Result<Timed<Value>, CallError> {
    if !reply.status.is_success() {
        return Err(status_error(&reply));
    }
    let value = if reply.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&reply.body)
            .map_err(|e| CallError::Protocol(format!("answer is not JSON: {e}")))?
    };
    Ok(Timed {
        value,
        latency: reply.elapsed,
        bytes: reply.body.len(),
    })
}

fn status_error(reply: &Reply) -> CallError {
    let cut = reply.body.len().min(ERROR_BODY_BYTES);
    let body = String::from_utf8_lossy(&reply.body[..cut]).into_owned();
    CallError::Status {
        status: reply.status.as_u16(),
        retry_after: retry_after(reply),
        body,
    }
}

/// `retry_after_ms` of a Matrix 429 body, else the `Retry-After` header (seconds).
fn retry_after(reply: &Reply) -> Option<Duration> {
    let from_body = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| v.get("retry_after_ms").and_then(Value::as_u64))
        .map(Duration::from_millis);
    from_body.or_else(|| {
        reply
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    })
}

fn string_field(value: &Value, field: &str) -> Result<String, CallError> {
    value
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| CallError::Protocol(format!("answer has no string field `{field}`")))
}

fn session_of(value: &Value) -> Result<Session, CallError> {
    Ok(Session {
        user_id: string_field(value, "user_id")?,
        access_token: string_field(value, "access_token")?,
    })
}

/// The `auth` object for the next stage of a register flow that we can complete.
pub fn next_uia_stage(
    challenge: &Value,
    registration_token: Option<&str>,
) -> Result<Value, CallError> {
    let session = challenge.get("session").and_then(Value::as_str);
    let completed: Vec<&str> = challenge
        .get("completed")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let can_do = |stage: &str| match stage {
        "m.login.dummy" => true,
        "m.login.registration_token" => registration_token.is_some(),
        _ => false,
    };
    let flows = challenge
        .get("flows")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            CallError::Protocol(format!("register answered 401 without flows: {challenge}"))
        })?;
    let stage = flows
        .iter()
        .filter_map(|f| f.get("stages").and_then(Value::as_array))
        .map(|stages| stages.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .filter(|stages| stages.iter().all(|s| can_do(s)))
        .find_map(|stages| stages.into_iter().find(|s| !completed.contains(s)))
        .ok_or_else(|| {
            CallError::Protocol(format!("no register flow we can complete: {challenge}"))
        })?;
    let mut auth = json!({"type": stage});
    if let Some(session) = session {
        auth["session"] = json!(session);
    }
    if stage == "m.login.registration_token" {
        auth["token"] = json!(registration_token);
    }
    Ok(auth)
}

fn sync_summary(value: &Value) -> Result<SyncSummary, CallError> {
    let next_batch = string_field(value, "next_batch")?;
    let joined = value.pointer("/rooms/join").and_then(Value::as_object);
    let event_ids = joined
        .into_iter()
        .flat_map(|rooms| rooms.values())
        .filter_map(|room| room.pointer("/timeline/events").and_then(Value::as_array))
        .flatten()
        .filter_map(|event| event.get("event_id").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    Ok(SyncSummary {
        next_batch,
        event_ids,
        joined_rooms: joined.map_or(0, |j| j.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_dummy_stage_with_session() {
        let challenge = json!({"session": "s1", "flows": [{"stages": ["m.login.dummy"]}]});
        let auth = next_uia_stage(&challenge, None).expect("stage");
        assert_eq!(auth, json!({"type": "m.login.dummy", "session": "s1"}));
    }

    #[test]
    fn picks_token_stage_then_the_rest_of_the_flow() {
        let challenge = json!({
            "session": "s",
            "flows": [
                {"stages": ["m.login.email.identity"]},
                {"stages": ["m.login.registration_token", "m.login.dummy"]}
            ]
        });
        let auth = next_uia_stage(&challenge, Some("tok")).expect("stage");
        assert_eq!(auth["type"], "m.login.registration_token");
        assert_eq!(auth["token"], "tok");
        let mut second = challenge.clone();
        second["completed"] = json!(["m.login.registration_token"]);
        let auth = next_uia_stage(&second, Some("tok")).expect("stage");
        assert_eq!(auth["type"], "m.login.dummy");
    }

    #[test]
    fn refuses_flows_needing_what_we_lack() {
        let challenge = json!({"flows": [{"stages": ["m.login.registration_token"]}]});
        assert!(next_uia_stage(&challenge, None).is_err());
    }

    #[test]
    fn sync_summary_collects_timeline_ids() {
        let sync = json!({
            "next_batch": "s9",
            "rooms": {"join": {
                "!a:x": {"timeline": {"events": [{"event_id": "$1"}, {"event_id": "$2"}]}},
                "!b:x": {}
            }}
        });
        let s = sync_summary(&sync).expect("summary");
        assert_eq!(s.next_batch, "s9");
        assert_eq!(s.event_ids, vec!["$1", "$2"]);
        assert_eq!(s.joined_rooms, 2);
    }

    #[test]
    fn mxc_uris_split_into_server_and_id() {
        let mxc = Mxc::parse("mxc://localhost:8008/AbC123").expect("mxc");
        assert_eq!(mxc.server_name, "localhost:8008");
        assert_eq!(mxc.media_id, "AbC123");
        for bad in [
            "http://x/y",
            "mxc://x",
            "mxc:///y",
            "mxc://x/",
            "mxc://x/y/z",
        ] {
            assert!(Mxc::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn media_paths_of_both_apis() {
        let base = Url::parse("http://127.0.0.1:8008").expect("url");
        let hs = Homeserver::new(base, None, 1).expect("client");
        let mxc = Mxc::parse("mxc://localhost/abc").expect("mxc");
        let v1 = hs.url(&MediaApi::Authenticated.path("download", &mxc), &[]);
        assert_eq!(
            v1.as_str(),
            "http://127.0.0.1:8008/_matrix/client/v1/media/download/localhost/abc"
        );
        let v3 = hs.url(
            &MediaApi::Legacy.path("thumbnail", &mxc),
            &[("width", "96")],
        );
        assert_eq!(
            v3.as_str(),
            "http://127.0.0.1:8008/_matrix/media/v3/thumbnail/localhost/abc?width=96"
        );
    }

    #[test]
    fn path_segments_are_escaped() {
        let base = Url::parse("http://127.0.0.1:8008").expect("url");
        let hs = Homeserver::new(base, None, 1).expect("client");
        let url = hs.url(
            &["_matrix", "client", "v3", "join", "!r/x:example.org"],
            &[],
        );
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8008/_matrix/client/v3/join/!r%2Fx:example.org"
        );
    }
}
