//! Shared-secret registration (`/_synapse/admin/v1/register`): Synapse's own
//! `register_new_matrix_user` script (from PyPI, in the virtualenv the Synapse peer uses)
//! registers users who then log in; each tenant has its own secret, which the operator shows,
//! replaces and removes (API and CLI); and the requests the script doesn't send are answered
//! with Synapse's errors. MACs of hand-made requests are computed by Python's `hmac`, as the
//! script does.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::harness::*;

const REGISTER: &str = "/_synapse/admin/v1/register";

/// The virtualenv with Synapse (`$MAAS_TEST_SYNAPSE`, else `~/.cache/maas-synapse`, as the
/// Synapse peer of the federation tests), filled with `pip install matrix-synapse` when
/// missing.
async fn synapse_venv() -> PathBuf {
    let dir = std::env::var_os("MAAS_TEST_SYNAPSE").map_or_else(
        || Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/maas-synapse"),
        PathBuf::from,
    );
    if dir.join("bin/register_new_matrix_user").exists() {
        return dir;
    }
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .await
        .expect("python3 -m venv");
    assert!(created.success(), "python3 -m venv {}", dir.display());
    let pip = Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "matrix-synapse"])
        .status()
        .await
        .expect("pip install matrix-synapse");
    assert!(pip.success(), "pip install matrix-synapse");
    dir
}

/// Runs `register_new_matrix_user <args>`, bounded in time.
async fn register_new_matrix_user(args: &[&str]) -> Output {
    let script = synapse_venv().await.join("bin/register_new_matrix_user");
    let mut cmd = clean_command(script.to_str().expect("a UTF-8 path"));
    cmd.args(args)
        .stdin(Stdio::null())
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env("NO_PROXY", "*")
        .kill_on_drop(true);
    match tokio::time::timeout(Duration::from_secs(60), cmd.output()).await {
        Ok(out) => out.expect("running register_new_matrix_user"),
        Err(_) => panic!("register_new_matrix_user {args:?} didn't finish within 60 s"),
    }
}

fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn assert_registered(out: &Output) {
    assert!(
        out.status.success() && printed(out).contains("Success!"),
        "register_new_matrix_user failed ({}):\n{}",
        out.status,
        printed(out)
    );
}

/// The tenant's secret, as the operator sees it.
async fn secret_of(srv: &TestServer, server_name: &str) -> Value {
    let path = format!("{OP}/tenants/{}/shared_secret", enc(server_name));
    srv.op().get(&path).await.ok()["registration_shared_secret"].clone()
}

/// The hex HMAC-SHA1 `register_new_matrix_user` sends, computed by Python's `hmac`.
async fn mac(
    secret: &str,
    nonce: &str,
    user: &str,
    password: &str,
    admin: bool,
    user_type: Option<&str>,
) -> String {
    let script = "import hashlib, hmac, sys\n\
                  k, *parts = sys.argv[1:]\n\
                  print(hmac.new(k.encode(), b'\\x00'.join(p.encode() for p in parts), hashlib.sha1).hexdigest())";
    let mut args = vec![
        secret,
        nonce,
        user,
        password,
        if admin { "admin" } else { "notadmin" },
    ];
    args.extend(user_type);
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&args)
        .output()
        .await
        .expect("python3");
    assert!(out.status.success(), "{}", printed(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn nonce(api: &Api<'_>) -> String {
    let body = api.get(REGISTER).await.ok();
    body["nonce"]
        .as_str()
        .unwrap_or_else(|| panic!("no nonce: {body}"))
        .to_owned()
}

#[tokio::test]
async fn register_new_matrix_user_registers_users_who_log_in() {
    let srv = TestServer::start().await;
    // `localhost` answers on 127.0.0.1, the host of the server's URL.
    let secret = secret_of(&srv, "localhost").await;
    let secret = secret.as_str().expect("every new tenant has a secret");
    assert!(secret.len() >= 32, "{secret}");
    let url = srv.url.clone();

    let out = register_new_matrix_user(&[
        "-u",
        "alice",
        "-p",
        "pw-alice-1",
        "--no-admin",
        "-k",
        secret,
        &url,
    ])
    .await;
    assert_registered(&out);
    let out =
        register_new_matrix_user(&["-u", "Bob", "-p", "pw-bob-1", "--admin", "-k", secret, &url])
            .await;
    assert_registered(&out);
    // From a configuration file, as on a Synapse host.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("homeserver.yaml");
    std::fs::write(
        &config,
        format!("registration_shared_secret: \"{secret}\"\n"),
    )
    .expect("config");
    let config = config.to_str().expect("a UTF-8 path");
    let out = register_new_matrix_user(&[
        "-u",
        "carol",
        "-p",
        "pw-carol-1",
        "--no-admin",
        "-t",
        "bot",
        "-c",
        config,
        &url,
    ])
    .await;
    assert_registered(&out);

    // They log in with their passwords; the admin flag is as asked (the username is
    // lower-cased, as Synapse does).
    let alice = srv.login("localhost", "alice", "pw-alice-1").await;
    let bob = srv.login("localhost", "bob", "pw-bob-1").await;
    srv.login("localhost", "carol", "pw-carol-1").await;
    assert_eq!(bob.user_id, "@bob:localhost");
    let as_bob = srv.on("localhost").as_user(&bob);
    for (user, admin) in [
        ("@alice:localhost", false),
        ("@bob:localhost", true),
        ("@carol:localhost", false),
    ] {
        let path = format!("/_synapse/admin/v1/users/{}/admin", enc(user));
        assert_eq!(
            as_bob.get(&path).await.ok(),
            json!({"admin": admin}),
            "{user}"
        );
    }
    let as_alice = srv.on("localhost").as_user(&alice);
    assert_error(
        &as_alice
            .get("/_synapse/admin/v1/users/@bob:localhost/admin")
            .await,
        403,
        "M_FORBIDDEN",
    );
    // Their display name is their localpart.
    let profile = srv
        .on("localhost")
        .get(&format!("{CS}/profile/{}", enc("@alice:localhost")))
        .await
        .ok();
    assert_eq!(profile["displayname"], "alice");

    // A taken name fails, unless the script is told it may exist.
    let out =
        register_new_matrix_user(&["-u", "alice", "-p", "x", "--no-admin", "-k", secret, &url])
            .await;
    assert!(!out.status.success(), "{}", printed(&out));
    assert!(printed(&out).contains("400"), "{}", printed(&out));
    let out = register_new_matrix_user(&[
        "-u",
        "alice",
        "-p",
        "x",
        "--no-admin",
        "--exists-ok",
        "-k",
        secret,
        &url,
    ])
    .await;
    assert!(out.status.success(), "{}", printed(&out));
    assert!(
        printed(&out).contains("User already exists"),
        "{}",
        printed(&out)
    );
    // The old password still logs in: nothing changed.
    srv.login("localhost", "alice", "pw-alice-1").await;

    // A wrong secret registers nobody.
    let out = register_new_matrix_user(&[
        "-u", "mallory", "-p", "pw-m-1", "--admin", "-k", "wrong", &url,
    ])
    .await;
    assert!(!out.status.success(), "{}", printed(&out));
    assert!(
        printed(&out).contains("HMAC incorrect"),
        "{}",
        printed(&out)
    );
    let login = srv
        .on("localhost")
        .login_raw(login_body("mallory", "pw-m-1"))
        .await;
    assert_error(&login, 403, "M_FORBIDDEN");
}

#[tokio::test]
async fn each_tenant_has_its_own_secret_which_the_operator_replaces_and_removes() {
    let srv = TestServer::start().await;
    srv.create_tenant("b.test", &["b.test"], "closed").await;
    let local = secret_of(&srv, "localhost").await;
    let other = secret_of(&srv, "b.test").await;
    let (local, other) = (
        local.as_str().expect("a secret"),
        other.as_str().expect("a secret"),
    );
    assert_ne!(local, other);
    // Not in the tenant object, nor in the list of tenants.
    for shown in [
        srv.get_tenant("localhost").await,
        srv.op().get(&format!("{OP}/tenants")).await.ok(),
    ] {
        assert!(!shown.to_string().contains(local), "{shown}");
    }
    let url = srv.url.clone();

    // `b.test`'s secret registers nobody on `localhost`.
    let out = register_new_matrix_user(&[
        "-u",
        "eve",
        "-p",
        "pw-eve-1",
        "--no-admin",
        "-k",
        other,
        &url,
    ])
    .await;
    assert!(
        printed(&out).contains("HMAC incorrect"),
        "{}",
        printed(&out)
    );

    // A new secret: the old one no longer works, the new one does.
    let path = format!("{OP}/tenants/localhost/shared_secret");
    let replaced = srv.op().post(&path, json!({})).await.ok();
    let new = replaced["registration_shared_secret"]
        .as_str()
        .expect("a new secret");
    assert_ne!(new, local);
    assert_eq!(secret_of(&srv, "localhost").await, new);
    let out = register_new_matrix_user(&[
        "-u",
        "eve",
        "-p",
        "pw-eve-1",
        "--no-admin",
        "-k",
        local,
        &url,
    ])
    .await;
    assert!(
        printed(&out).contains("HMAC incorrect"),
        "{}",
        printed(&out)
    );
    let out =
        register_new_matrix_user(&["-u", "eve", "-p", "pw-eve-1", "--no-admin", "-k", new, &url])
            .await;
    assert_registered(&out);
    // `b.test` kept its own.
    assert_eq!(secret_of(&srv, "b.test").await, other);

    // Removed: shared-secret registration is off, before the body is even read.
    let removed = srv.op().delete(&path).await.ok();
    assert_eq!(removed, json!({"registration_shared_secret": null}));
    assert_eq!(secret_of(&srv, "localhost").await, Value::Null);
    let out =
        register_new_matrix_user(&["-u", "frank", "-p", "pw-f-1", "--no-admin", "-k", new, &url])
            .await;
    assert!(
        printed(&out).contains("Shared secret registration is not enabled"),
        "{}",
        printed(&out)
    );
    let api = srv.on("localhost");
    let not_json = api.builder(reqwest::Method::POST, REGISTER).body("nope");
    let resp = TestServer::send(not_json).await;
    assert_error(&resp, 400, "M_UNKNOWN");
    assert_eq!(
        resp.body["error"],
        "Shared secret registration is not enabled"
    );
    // A nonce is handed out all the same, as Synapse does.
    nonce(&api).await;

    // The operator API wants the operator, and a known tenant.
    assert_error(&srv.op_anon().get(&path).await, 401, "M_MISSING_TOKEN");
    let unknown = format!("{OP}/tenants/nope.test/shared_secret");
    assert_error(&srv.op().get(&unknown).await, 404, "M_NOT_FOUND");
    assert_error(
        &srv.op().post(&unknown, json!({})).await,
        404,
        "M_NOT_FOUND",
    );
}

#[tokio::test]
async fn registration_requests_are_checked_as_synapse_does() {
    let srv = TestServer::start().await;
    srv.create_tenant("b.test", &["b.test"], "closed").await;
    let secret = secret_of(&srv, "localhost").await;
    let secret = secret.as_str().expect("a secret").to_owned();
    let api = srv.on("localhost");

    let n = nonce(&api).await;
    assert_eq!(n.len(), 128, "{n}");
    assert!(n.chars().all(|c| c.is_ascii_hexdigit()), "{n}");
    let refused = async |body: Value, status: u16, errcode: &str, error: &str| {
        let resp = api.post(REGISTER, body.clone()).await;
        assert_error(&resp, status, errcode);
        assert_eq!(resp.body["error"], error, "{body}");
    };
    refused(json!({}), 400, "M_BAD_JSON", "nonce must be specified").await;
    refused(
        json!({"nonce": "made-up"}),
        400,
        "M_UNKNOWN",
        "unrecognised nonce",
    )
    .await;
    // A nonce is used up by the first request that names it, whatever else is wrong with it.
    refused(
        json!({"nonce": n}),
        400,
        "M_BAD_JSON",
        "username must be specified",
    )
    .await;
    refused(
        json!({"nonce": n, "username": "x", "password": "x", "mac": "x"}),
        400,
        "M_UNKNOWN",
        "unrecognised nonce",
    )
    .await;
    let fields = async |extra: Value| {
        let mut body = json!({"nonce": nonce(&api).await});
        for (k, v) in extra.as_object().expect("an object") {
            body[k] = v.clone();
        }
        body
    };
    refused(
        fields(json!({"username": "x".repeat(513)})).await,
        400,
        "M_UNKNOWN",
        "Invalid username",
    )
    .await;
    refused(
        fields(json!({"username": 5})).await,
        400,
        "M_UNKNOWN",
        "Invalid username",
    )
    .await;
    refused(
        fields(json!({"username": "a\u{0}b"})).await,
        400,
        "M_UNKNOWN",
        "Invalid username",
    )
    .await;
    refused(
        fields(json!({"username": "dave"})).await,
        400,
        "M_BAD_JSON",
        "password must be specified",
    )
    .await;
    refused(
        fields(json!({"username": "dave", "password": ["x"]})).await,
        400,
        "M_UNKNOWN",
        "Invalid password",
    )
    .await;
    refused(
        fields(json!({"username": "dave", "password": "p", "user_type": "wizard"})).await,
        400,
        "M_UNKNOWN",
        "Invalid user type",
    )
    .await;
    refused(
        fields(json!({"username": "dave", "password": "p"})).await,
        400,
        "M_BAD_JSON",
        "mac must be specified",
    )
    .await;
    refused(
        fields(json!({"username": "dave", "password": "p", "mac": "00"})).await,
        403,
        "M_FORBIDDEN",
        "HMAC incorrect",
    )
    .await;
    // The MAC covers the admin flag: a MAC for an ordinary user doesn't make an admin.
    let n = nonce(&api).await;
    let ordinary = mac(&secret, &n, "dave", "pw-dave-1", false, None).await;
    let body = json!({"nonce": n, "username": "dave", "password": "pw-dave-1", "admin": true, "mac": ordinary});
    refused(body, 403, "M_FORBIDDEN", "HMAC incorrect").await;
    // A nonce of another tenant is unknown here.
    let theirs = nonce(&srv.on("b.test")).await;
    let body = json!({"nonce": theirs, "username": "dave", "password": "pw-dave-1", "mac": mac(&secret, &theirs, "dave", "pw-dave-1", false, None).await});
    refused(body, 400, "M_UNKNOWN", "unrecognised nonce").await;
    // A valid MAC for a name the server refuses.
    let n = nonce(&api).await;
    let body = json!({"nonce": n, "username": "bad name", "password": "pw-1", "mac": mac(&secret, &n, "bad name", "pw-1", false, None).await});
    let resp = api.post(REGISTER, body).await;
    assert_error(&resp, 400, "M_INVALID_USERNAME");
    assert_error(&api.post(REGISTER, json!([])).await, 400, "M_BAD_JSON");
    let not_json = api.builder(reqwest::Method::POST, REGISTER).body("{");
    assert_error(&TestServer::send(not_json).await, 400, "M_NOT_JSON");
    // None of that made a user.
    for user in ["dave", "x"] {
        let login = api.login_raw(login_body(user, "pw-dave-1")).await;
        assert_error(&login, 403, "M_FORBIDDEN");
    }

    // What the script doesn't send, Synapse takes: a display name, a user type, a device, and
    // no login at all.
    let n = nonce(&api).await;
    let body = json!({
        "nonce": n, "username": "dave", "password": "pw-dave-1", "admin": true,
        "user_type": "bot", "displayname": "Dave the Bot", "device_id": "DAVEDEVICE",
        "mac": mac(&secret, &n, "dave", "pw-dave-1", true, Some("bot")).await,
    });
    let registered = api.post(REGISTER, body).await.ok();
    let mut keys: Vec<&String> = registered.as_object().expect("an object").keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["access_token", "device_id", "home_server", "user_id"],
        "{registered}"
    );
    assert_eq!(registered["user_id"], "@dave:localhost");
    assert_eq!(registered["home_server"], "localhost");
    assert_eq!(registered["device_id"], "DAVEDEVICE");
    let token = registered["access_token"].as_str().expect("a token");
    let whoami = api.auth(token).whoami().await.ok();
    assert_eq!(whoami["user_id"], "@dave:localhost");
    let profile = api
        .get(&format!("{CS}/profile/{}", enc("@dave:localhost")))
        .await
        .ok();
    assert_eq!(profile["displayname"], "Dave the Bot");
    let admin = api
        .auth(token)
        .get("/_synapse/admin/v1/users/@dave:localhost/admin")
        .await
        .ok();
    assert_eq!(admin, json!({"admin": true}));

    let n = nonce(&api).await;
    let body = json!({
        "nonce": n, "username": "erin", "password": "pw-erin-1", "inhibit_login": true,
        "mac": mac(&secret, &n, "erin", "pw-erin-1", false, None).await,
    });
    let registered = api.post(REGISTER, body).await.ok();
    assert_eq!(
        registered,
        json!({"user_id": "@erin:localhost", "home_server": "localhost"})
    );
    srv.login("localhost", "erin", "pw-erin-1").await;
}

/// `maas tenant shared-secret` shows, replaces and removes the secret.
#[tokio::test]
async fn the_cli_shows_replaces_and_removes_the_secret() {
    let srv = TestServer::start_with(Options::default().with_generated_operator_token()).await;
    let cli = async |args: &[&str]| -> String {
        let dir = srv.data_dir.to_str().expect("a UTF-8 path");
        let mut cmd = clean_command(env!("CARGO_BIN_EXE_maas"));
        cmd.args(["--data-dir", dir])
            .args(args)
            .current_dir(srv.data_dir.parent().expect("a parent"))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
            .await
            .expect("maas in time")
            .expect("running maas");
        assert!(out.status.success(), "maas {args:?}: {}", printed(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = cli(&["tenant", "shared-secret", "localhost"]).await;
    let secret = secret_of(&srv, "localhost").await;
    assert_eq!(shown.trim(), secret.as_str().expect("a secret"));
    let json: Value =
        serde_json::from_str(&cli(&["tenant", "shared-secret", "localhost", "--json"]).await)
            .expect("JSON");
    assert_eq!(json, json!({"registration_shared_secret": secret}));

    let rotated = cli(&["tenant", "shared-secret", "localhost", "--rotate"]).await;
    assert_ne!(rotated.trim(), secret.as_str().unwrap());
    assert_eq!(secret_of(&srv, "localhost").await, rotated.trim());
    let disabled = cli(&["tenant", "shared-secret", "localhost", "--disable"]).await;
    assert!(
        disabled.contains("shared-secret registration is off"),
        "{disabled}"
    );
    assert_eq!(secret_of(&srv, "localhost").await, Value::Null);
    assert!(
        cli(&["tenant", "shared-secret", "localhost"])
            .await
            .contains("no registration shared secret")
    );
}
