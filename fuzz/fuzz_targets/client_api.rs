//! The Client-Server API as a hostile client uses it: arbitrary methods, paths, queries and
//! bodies against the whole router of a real tenant (SQLite in a temporary directory), with
//! and without a valid access token. No request may panic or get a 5xx answer: every bad input
//! is the client's error and gets a Matrix error.
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use axum::Router;
use http::{Method, Request, header};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use maas_core::Platform;
use maas_core::config::Config;
use maas_core::rooms::CreateRoom;
use maas_store::sqlite::SqliteBackend;
use ruma::api::client::session::login::v3::{LoginInfo, Password};
use ruma::api::client::uiaa::{MatrixUserIdentifier, UserIdentifier};
use tower::ServiceExt;

/// Paths of the Client-Server API; `{}` takes the next path segment of the input, or an id
/// that exists when the input's segment says so.
const TEMPLATES: &[&str] = &[
    "/_matrix/client/versions",
    "/_matrix/client/v3/login",
    "/_matrix/client/v3/logout",
    "/_matrix/client/v3/register",
    "/_matrix/client/v3/register/available",
    "/_matrix/client/v1/register/m.login.registration_token/validity",
    "/_matrix/client/v3/account/whoami",
    "/_matrix/client/v3/account/password",
    "/_matrix/client/v3/account/deactivate",
    "/_matrix/client/v3/capabilities",
    "/_matrix/client/v3/devices",
    "/_matrix/client/v3/devices/{}",
    "/_matrix/client/v3/delete_devices",
    "/_matrix/client/v3/profile/{}",
    "/_matrix/client/v3/profile/{}/displayname",
    "/_matrix/client/v3/createRoom",
    "/_matrix/client/v3/join/{}",
    "/_matrix/client/v3/rooms/{}/join",
    "/_matrix/client/v3/rooms/{}/invite",
    "/_matrix/client/v3/rooms/{}/ban",
    "/_matrix/client/v3/rooms/{}/leave",
    "/_matrix/client/v3/rooms/{}/forget",
    "/_matrix/client/v3/rooms/{}/members",
    "/_matrix/client/v3/rooms/{}/state",
    "/_matrix/client/v3/rooms/{}/state/{}/{}",
    "/_matrix/client/v3/rooms/{}/send/{}/{}",
    "/_matrix/client/v3/rooms/{}/redact/{}/{}",
    "/_matrix/client/v3/rooms/{}/event/{}",
    "/_matrix/client/v3/rooms/{}/messages",
    "/_matrix/client/v3/rooms/{}/context/{}",
    "/_matrix/client/v1/rooms/{}/relations/{}",
    "/_matrix/client/v1/rooms/{}/threads",
    "/_matrix/client/v1/rooms/{}/timestamp_to_event",
    "/_matrix/client/v3/rooms/{}/receipt/{}/{}",
    "/_matrix/client/v3/rooms/{}/read_markers",
    "/_matrix/client/v3/rooms/{}/typing/{}",
    "/_matrix/client/v3/rooms/{}/upgrade",
    "/_matrix/client/v3/directory/room/{}",
    "/_matrix/client/v3/directory/list/room/{}",
    "/_matrix/client/v3/publicRooms",
    "/_matrix/client/v3/user_directory/search",
    "/_matrix/client/v3/user/{}/filter",
    "/_matrix/client/v3/user/{}/filter/{}",
    "/_matrix/client/v3/user/{}/account_data/{}",
    "/_matrix/client/v3/user/{}/rooms/{}/tags/{}",
    "/_matrix/client/v3/presence/{}/status",
    "/_matrix/client/v3/pushrules/global/{}/{}",
    "/_matrix/client/v3/pushrules/global/{}/{}/enabled",
    "/_matrix/client/v3/keys/upload",
    "/_matrix/client/v3/keys/query",
    "/_matrix/client/v3/keys/claim",
    "/_matrix/client/v3/keys/changes",
    "/_matrix/client/v3/keys/device_signing/upload",
    "/_matrix/client/v3/keys/signatures/upload",
    "/_matrix/client/v3/sendToDevice/{}/{}",
    "/_matrix/client/v3/room_keys/version",
    "/_matrix/client/v3/room_keys/version/{}",
    "/_matrix/client/v3/room_keys/keys/{}/{}",
    "/_matrix/client/v3/sync",
    "/_matrix/federation/v1/version",
    "/_matrix/client/v3/rooms/{}/report/{}",
    "/_matrix/client/v3/rooms/{}/report",
    "/_matrix/client/v3/users/{}/report",
    "/_synapse/admin/v1/users/{}/admin",
    "/_synapse/admin/v2/users",
    "/_synapse/admin/v3/users",
    "/_synapse/admin/v2/users/{}",
    "/_synapse/admin/v2/users/{}/devices",
    "/_synapse/admin/v2/users/{}/devices/{}",
    "/_synapse/admin/v1/users/{}/joined_rooms",
    "/_synapse/admin/v1/users/{}/override_ratelimit",
    "/_synapse/admin/v1/whois/{}",
    "/_synapse/admin/v1/reset_password/{}",
    "/_synapse/admin/v1/username_available",
    "/_synapse/admin/v1/register",
    "/_synapse/admin/v1/rooms",
    "/_synapse/admin/v1/rooms/{}",
    "/_synapse/admin/v1/rooms/{}/members",
    "/_synapse/admin/v1/rooms/{}/messages",
    "/_synapse/admin/v1/rooms/{}/block",
    "/_synapse/admin/v1/rooms/{}/make_room_admin",
    "/_synapse/admin/v1/rooms/{}/timestamp_to_event",
    "/_synapse/admin/v2/rooms/delete_status/{}",
    "/_synapse/admin/v1/purge_history_status/{}",
    "/_synapse/admin/v1/event_reports",
    "/_synapse/admin/v1/event_reports/{}",
    "/_synapse/admin/v1/registration_tokens",
    "/_synapse/admin/v1/registration_tokens/{}",
    "/_synapse/admin/v1/send_server_notice",
    "/_synapse/admin/v1/scheduled_tasks",
    "/_synapse/admin/v1/federation/destinations",
];

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::OPTIONS,
];

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    template: u8,
    /// Path segments; one whose first byte is below 64 is replaced by an id that exists.
    segments: Vec<Vec<u8>>,
    query: String,
    body: Vec<u8>,
    authed: bool,
    /// With `authed`: the tenant's admin rather than a user, so the admin API is reached.
    as_admin: bool,
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: Router,
    token: String,
    admin_token: String,
    known: Vec<String>,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let (router, [token, admin_token], known) = runtime.block_on(setup(dir.path()));
        Harness {
            runtime,
            router,
            token,
            admin_token,
            known,
            _dir: dir,
        }
    })
}

/// A tenant `localhost` with a user (logged in) in a room of theirs, and its admin (logged
/// in); returns the router, both tokens and ids that exist.
async fn setup(dir: &std::path::Path) -> (Router, [String; 2], Vec<String>) {
    let mut config = Config::default();
    config.server.data_dir = dir.to_path_buf();
    config.operator.token = Some("fuzz-operator-token".into());
    config.passwords.memory_kib = 64;
    config.passwords.iterations = 1;
    config.rate_limits.enabled = false;
    let backend = SqliteBackend::open(dir).await.expect("backend");
    let platform = Platform::start(config, Arc::new(backend))
        .await
        .expect("platform");
    let created = platform
        .bootstrap_default_tenant()
        .await
        .expect("tenant")
        .expect("a new tenant");
    let tenant = platform
        .tenant_by_server_name("localhost")
        .await
        .expect("tenant");
    let accounts = tenant.accounts();
    accounts
        .create_user("fuzz", Some("fuzz-password-1"), false, None)
        .await
        .expect("user");
    let login = |user: &str, password: &str| {
        let identifier = UserIdentifier::Matrix(MatrixUserIdentifier::new(user.into()));
        LoginInfo::Password(Password::new(identifier, password.into()))
    };
    let session = accounts
        .login(&login("fuzz", "fuzz-password-1"), None, None, "127.0.0.1")
        .await
        .expect("login");
    let admin = accounts
        .login(
            &login(&created.admin_user_id, &created.admin_password),
            None,
            None,
            "127.0.0.1",
        )
        .await
        .expect("admin login");
    let room_id = tenant
        .rooms()
        .create(&session.user_id, CreateRoom::default())
        .await
        .expect("room");
    let known = vec![
        room_id.to_string(),
        session.user_id.to_string(),
        session.device_id.to_string(),
        "m.room.message".to_owned(),
        "#alias:localhost".to_owned(),
    ];
    let tokens = [session.access_token, admin.access_token];
    (maas_http::router(platform), tokens, known)
}

fn path_of(harness: &Harness, input: &Input) -> String {
    let template = TEMPLATES[usize::from(input.template) % TEMPLATES.len()];
    let mut segments = input.segments.iter();
    let mut path = String::new();
    for (i, part) in template.split("{}").enumerate() {
        if i > 0 {
            let segment = segments
                .next()
                .map_or_else(String::new, |s| match s.first() {
                    Some(b) if *b < 64 => {
                        harness.known[usize::from(*b) % harness.known.len()].clone()
                    }
                    _ => percent_encode(s),
                });
            path.push_str(&segment);
        }
        path.push_str(part);
    }
    if !input.query.is_empty() {
        path.push('?');
        path.push_str(
            &percent_encode(input.query.as_bytes())
                .replace("%3D", "=")
                .replace("%26", "&"),
        );
    }
    path
}

/// Every byte but unreserved ones as `%XX`, so any input is a valid request target.
fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(*b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fuzz_target!(|input: Input| {
    let harness = harness();
    let method = METHODS[usize::from(input.method) % METHODS.len()].clone();
    let path = path_of(harness, &input);
    let mut request = Request::builder()
        .method(method.clone())
        .uri(&path)
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json");
    if input.authed {
        let token = if input.as_admin {
            &harness.admin_token
        } else {
            &harness.token
        };
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let Ok(request) = request.body(axum::body::Body::from(input.body.clone())) else {
        return;
    };
    let router = harness.router.clone();
    let (status, body) = harness.runtime.block_on(async move {
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = response.into_body().collect().await.map(|b| b.to_bytes());
        (status, body.unwrap_or_default())
    });
    assert!(
        !status.is_server_error(),
        "{method} {path} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
});
