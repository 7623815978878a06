//! Restarts on the same data directory keep everything; the first-start admin; the process
//! contract (server.json, operator.token, exit code).

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::harness::*;

/// Parses the first-start lines of API.md from stdout: (admin user id, password).
fn first_start_admin(stdout: &str) -> (String, String) {
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in stdout:\n{stdout}"))
            .trim()
            .to_owned()
    };
    (line("Admin user:"), line("Admin password:"))
}

#[tokio::test]
async fn first_start_prints_admin_password_once() {
    let mut srv = TestServer::start().await;
    let out = srv.wait_stdout("Admin password:").await;
    assert!(
        out.contains("Created tenant localhost (hosts: localhost, 127.0.0.1), open registration"),
        "stdout:\n{out}"
    );
    let (user, password) = first_start_admin(&out);
    assert_eq!(user, "@admin:localhost");
    assert!(password.len() >= 12, "weak generated password {password:?}");
    let s = srv.login("localhost", "admin", &password).await;
    assert_eq!(s.user_id, "@admin:localhost");

    srv.clear_stdout();
    srv.restart().await;
    // Give a (wrong) second print a moment to show up, then check it didn't.
    srv.on("localhost")
        .get("/_matrix/client/versions")
        .await
        .ok();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let out = srv.stdout();
    assert!(
        !out.contains("Admin password"),
        "admin password printed again:\n{out}"
    );
    assert!(
        !out.contains("Created tenant"),
        "default tenant created again:\n{out}"
    );
    srv.login("localhost", "admin", &password).await;
    let list = srv.op().get(&format!("{OP}/tenants")).await.ok();
    assert_eq!(list["tenants"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn data_survives_restart() {
    let mut srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    let alice = srv.register("localhost", "alice", "pw-alice-1").await;
    let carol = srv.register("a.test", "carol", "pw-carol-1").await;
    let api = srv.on("localhost");
    api.as_user(&alice)
        .put(
            &format!("{CS}/profile/{}/displayname", enc(&alice.user_id)),
            json!({"displayname": "Alice"}),
        )
        .await
        .ok();
    srv.create_registration_token("a.test", json!({"token": "keep", "uses_allowed": 2}))
        .await;
    srv.patch_tenant("a.test", json!({"registration": "token", "max_users": 50}))
        .await;
    let url = srv.url.clone();

    let status = srv.stop().await;
    assert!(status.success(), "SIGTERM exit status {status}");
    assert_eq!(status.code(), Some(0));
    assert!(
        !srv.data_dir.join("server.json").exists(),
        "server.json left behind after a clean shutdown"
    );
    // Make sure the old process is gone: the port no longer answers.
    assert!(
        http_client()
            .get(format!("{url}/_matrix/client/versions"))
            .send()
            .await
            .is_err()
    );

    srv.restart_after_stop().await;
    let api = srv.on("localhost");
    let me = api.as_user(&alice).whoami().await.ok();
    assert_eq!(me["user_id"], "@alice:localhost");
    assert_eq!(me["device_id"], alice.device_id.as_str());
    api.login("alice", "pw-alice-1").await;
    let profile = api
        .as_user(&alice)
        .get(&format!("{CS}/profile/{}", enc(&alice.user_id)))
        .await
        .ok();
    assert_eq!(profile["displayname"], "Alice");

    srv.on("a.test").as_user(&carol).whoami().await.ok();
    srv.login("a.test", "carol", "pw-carol-1").await;
    let t = srv.get_tenant("a.test").await;
    assert_eq!(t["registration"], "token", "{t}");
    assert_eq!(t["max_users"], 50, "{t}");
    let tokens = srv
        .op()
        .get(&format!("{OP}/tenants/a.test/registration_tokens"))
        .await
        .ok();
    assert_eq!(
        tokens["registration_tokens"][0]["token"], "keep",
        "{tokens}"
    );
    srv.on("a.test")
        .register_with_token("dave", "pw-dave-1", "keep")
        .await;
    // Usernames stay taken.
    let resp = api
        .get(&format!("{CS}/register/available?username=alice"))
        .await;
    assert_error(&resp, 400, "M_USER_IN_USE");
}

#[tokio::test]
async fn logout_and_deletion_survive_restart() {
    let mut srv = TestServer::start().await;
    srv.create_tenant("gone.test", &["gone.test"], "open").await;
    let a = srv.register("localhost", "alice", "pw-alice-1").await;
    let b = srv.login("localhost", "alice", "pw-alice-1").await;
    srv.on("localhost")
        .as_user(&b)
        .post(&format!("{CS}/logout"), json!({}))
        .await
        .ok();
    srv.op()
        .delete(&format!("{OP}/tenants/gone.test"))
        .await
        .ok();

    srv.restart().await;
    srv.on("localhost").as_user(&a).whoami().await.ok();
    assert_error(
        &srv.on("localhost").as_user(&b).whoami().await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(
        &srv.on("gone.test").get("/_matrix/client/versions").await,
        404,
        "M_UNRECOGNIZED",
    );
}

#[tokio::test]
async fn generated_operator_token_file() {
    let mut srv = TestServer::start_with(Options::default().with_generated_operator_token()).await;
    let path = srv.data_dir.join("operator.token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "operator.token mode {mode:o}");
    let token = srv.operator_token.clone();
    assert!(token.len() >= 32, "operator token too short: {token:?}");
    assert_ne!(token, OPERATOR_TOKEN);
    srv.op().get(&format!("{OP}/tenants")).await.ok();
    assert_error(
        &srv.op_anon()
            .auth(OPERATOR_TOKEN)
            .get(&format!("{OP}/tenants"))
            .await,
        401,
        "M_UNKNOWN_TOKEN",
    );

    // The same token is kept across restarts.
    srv.restart().await;
    assert_eq!(srv.operator_token, token);
    srv.op().get(&format!("{OP}/tenants")).await.ok();

    let server_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(srv.data_dir.join("server.json")).unwrap())
            .unwrap();
    assert_eq!(server_json["url"], srv.url.as_str());
    assert_eq!(server_json["operator_url"], srv.operator_url.as_str());
    assert_ne!(server_json["operator_url"], server_json["url"]);
    assert_eq!(server_json["pid"], srv.pid());
}

#[tokio::test]
async fn sigint_shuts_down_cleanly() {
    let mut srv = TestServer::start().await;
    let alice = srv.register("localhost", "alice", "pw-alice-1").await;
    let status = srv.stop_with("-INT").await;
    assert_eq!(status.code(), Some(0), "SIGINT exit status {status}");
    assert!(!srv.data_dir.join("server.json").exists());
    srv.restart_after_stop().await;
    srv.on("localhost").as_user(&alice).whoami().await.ok();
}

/// A request in flight when SIGTERM arrives still gets its answer.
#[tokio::test]
async fn in_flight_request_finishes_on_sigterm() {
    // Costly password hashing makes a login take a while.
    let mut srv = TestServer::start_with(
        Options::default()
            .env("MAAS_PASSWORDS__MEMORY_KIB", "4096")
            .env("MAAS_PASSWORDS__ITERATIONS", "4"),
    )
    .await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    let started = std::time::Instant::now();
    srv.login("localhost", "alice", "pw-alice-1").await;
    let login_time = started.elapsed();

    let req = http_client()
        .post(format!("{}{CS}/login", srv.url))
        .header("Host", "localhost")
        .json(&login_body("alice", "pw-alice-1"));
    let pending = tokio::spawn(async move {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        resp.text().await.map(|body| (status, body))
    });
    // Let the request reach the server and start hashing.
    tokio::time::sleep(login_time / 3).await;
    let status = srv.stop().await;
    assert_eq!(status.code(), Some(0));
    let (code, body) = pending.await.unwrap().unwrap_or_else(|e| {
        panic!("in-flight request cut off by shutdown (login takes {login_time:?}): {e}")
    });
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("access_token"), "{body}");
}

/// Access tokens are stored hashed and passwords as argon2id: neither appears in clear in any
/// file of the data directory.
#[tokio::test]
async fn secrets_are_not_stored_in_clear() {
    let mut srv = TestServer::start().await;
    let password = "Clear-Text-Password-4711";
    let s = srv.register("localhost", "alice", password).await;
    assert!(
        s.access_token.len() >= 32,
        "access token too short for 256 bits: {:?}",
        s.access_token
    );
    // Stop so that everything is flushed to disk.
    let status = srv.stop().await;
    assert!(status.success());

    let blobs = srv.stored_bytes();
    let mut saw_argon2id = false;
    for (name, bytes) in &blobs {
        let find = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!find(&s.access_token), "access token in clear in {name}");
        assert!(!find(password), "password in clear in {name}");
        saw_argon2id |= find("$argon2id$");
    }
    let files: Vec<&String> = blobs.iter().map(|(name, _)| name).collect();
    assert!(saw_argon2id, "no argon2id hash found in {files:?}");
}
