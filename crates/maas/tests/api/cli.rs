//! The CLI (`maas tenant|user|token …`) driving a running server through the operator API.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// Runs `maas <args>` in `cwd` with `env`, bounded in time.
async fn maas(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = clean_command(env!("CARGO_BIN_EXE_maas"));
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    match tokio::time::timeout(Duration::from_secs(20), cmd.output()).await {
        Ok(out) => out.expect("running maas"),
        Err(_) => panic!("`maas {}` didn't finish within 20 s", args.join(" ")),
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn assert_success(out: &Output, args: &str) {
    assert!(
        out.status.success(),
        "`maas {args}` failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[track_caller]
fn json_of(out: &Output, args: &str) -> Value {
    assert_success(out, args);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("`maas {args}` printed no JSON ({e}):\n{}", stdout(out)))
}

/// Runs `maas` against `srv`'s data dir (server.json + generated operator.token).
struct Cli<'a> {
    srv: &'a TestServer,
}

impl Cli<'_> {
    async fn run(&self, args: &[&str]) -> Output {
        let dir = self.srv.data_dir.to_str().unwrap();
        let mut full = vec!["--data-dir", dir];
        full.extend_from_slice(args);
        maas(self.srv.data_dir.parent().unwrap(), &[], &full).await
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert_success(&out, &args.join(" "));
        stdout(&out)
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.push("--json");
        let out = self.run(&full).await;
        json_of(&out, &full.join(" "))
    }
}

#[tokio::test]
async fn cli_tenant_lifecycle() {
    let srv = TestServer::start_with(Options::default().with_generated_operator_token()).await;
    let cli = Cli { srv: &srv };

    let out = cli
        .ok(&[
            "tenant",
            "create",
            "cli.test",
            "--host",
            "cli.test",
            "--registration",
            "open",
        ])
        .await;
    assert!(
        out.contains("cli.test"),
        "readable output should name the tenant:\n{out}"
    );
    let t = srv.get_tenant("cli.test").await;
    assert_eq!(t["registration"], "open", "{t}");
    assert_eq!(t["hosts"], serde_json::json!(["cli.test"]));
    srv.register("cli.test", "alice", "pw-alice-1").await;

    // --json, and --data-dir after the subcommand.
    let dir = srv.data_dir.to_str().unwrap();
    let out = maas(
        srv.data_dir.parent().unwrap(),
        &[],
        &["tenant", "list", "--json", "--data-dir", dir],
    )
    .await;
    let list = json_of(&out, "tenant list --json --data-dir");
    let names: Vec<_> = list["tenants"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|t| t["server_name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&"cli.test".to_owned()) && names.contains(&"localhost".to_owned()),
        "{list}"
    );
    let out = cli.ok(&["tenant", "list"]).await;
    assert!(
        out.contains("cli.test") && out.contains("localhost"),
        "{out}"
    );

    let shown = cli.json(&["tenant", "show", "cli.test"]).await;
    assert_eq!(shown["server_name"], "cli.test");
    assert_eq!(shown["user_count"], 2, "{shown}");

    cli.ok(&["tenant", "suspend", "cli.test"]).await;
    assert_eq!(srv.get_tenant("cli.test").await["suspended"], true);
    cli.ok(&["tenant", "resume", "cli.test"]).await;
    assert_eq!(srv.get_tenant("cli.test").await["suspended"], false);

    // Creation through --json returns the generated admin, which logs in.
    let created = cli
        .json(&["tenant", "create", "json.test", "--registration", "closed"])
        .await;
    let pw = created["admin"]["password"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    srv.login("json.test", "admin", pw).await;

    // Errors of the API fail the command.
    let out = cli.run(&["tenant", "create", "cli.test"]).await;
    assert!(
        !out.status.success(),
        "duplicate tenant creation succeeded: {}",
        stdout(&out)
    );
    let out = cli.run(&["tenant", "show", "nope.test"]).await;
    assert!(!out.status.success());

    // Deletion needs --yes.
    let out = cli.run(&["tenant", "delete", "cli.test"]).await;
    assert!(!out.status.success(), "delete without --yes succeeded");
    srv.get_tenant("cli.test").await;
    srv.on("cli.test")
        .get("/_matrix/client/versions")
        .await
        .ok();
    cli.ok(&["tenant", "delete", "cli.test", "--yes"]).await;
    assert_error(
        &srv.op().get(&format!("{OP}/tenants/cli.test")).await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &srv.on("cli.test").get("/_matrix/client/versions").await,
        404,
        "M_UNRECOGNIZED",
    );
}

#[tokio::test]
async fn cli_users_and_tokens() {
    let srv = TestServer::start_with(Options::default().with_generated_operator_token()).await;
    let cli = Cli { srv: &srv };
    srv.create_tenant("cli.test", &["cli.test"], "token").await;

    cli.ok(&[
        "user",
        "create",
        "cli.test",
        "bob",
        "--password",
        "pw-bob-1",
    ])
    .await;
    let bob = srv.login("cli.test", "bob", "pw-bob-1").await;
    assert_eq!(bob.user_id, "@bob:cli.test");

    let created = cli
        .json(&["user", "create", "cli.test", "carol", "--admin"])
        .await;
    assert_eq!(created["admin"], true, "{created}");
    let pw = created["password"]
        .as_str()
        .unwrap_or_else(|| panic!("no generated password: {created}"));
    srv.login("cli.test", "carol", pw).await;

    let list = cli.json(&["user", "list", "cli.test"]).await;
    let users = list["users"].as_array().unwrap_or_else(|| panic!("{list}"));
    assert!(
        users.iter().any(|u| u["user_id"] == "@bob:cli.test"),
        "{list}"
    );
    let out = cli.ok(&["user", "list", "cli.test"]).await;
    assert!(out.contains("bob") && out.contains("carol"), "{out}");

    cli.ok(&[
        "user",
        "reset-password",
        "cli.test",
        "bob",
        "--password",
        "pw-bob-2",
    ])
    .await;
    assert_error(
        &srv.on("cli.test")
            .login_raw(login_body("bob", "pw-bob-1"))
            .await,
        403,
        "M_FORBIDDEN",
    );
    srv.login("cli.test", "bob", "pw-bob-2").await;
    assert_error(
        &srv.on("cli.test").as_user(&bob).whoami().await,
        401,
        "M_UNKNOWN_TOKEN",
    );

    let out = cli.run(&["user", "deactivate", "cli.test", "bob"]).await;
    assert!(!out.status.success(), "deactivate without --yes succeeded");
    srv.login("cli.test", "bob", "pw-bob-2").await;
    cli.ok(&["user", "deactivate", "cli.test", "bob", "--yes"])
        .await;
    let resp = srv
        .on("cli.test")
        .login_raw(login_body("bob", "pw-bob-2"))
        .await;
    assert_error(&resp, 403, "M_USER_DEACTIVATED");

    let token = cli
        .json(&["token", "create", "cli.test", "--uses", "1"])
        .await;
    let t = token["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{token}"))
        .to_owned();
    assert_eq!(token["uses_allowed"], 1, "{token}");
    let out = cli
        .ok(&["token", "create", "cli.test", "--token", "readable-tok"])
        .await;
    assert!(out.contains("readable-tok"), "{out}");
    let list = cli.json(&["token", "list", "cli.test"]).await;
    let tokens = list["registration_tokens"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(tokens.len(), 2, "{list}");
    srv.on("cli.test")
        .register_with_token("dave", "pw-dave-1", &t)
        .await;
    let list = cli.json(&["token", "list", "cli.test"]).await;
    let used = list["registration_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["token"] == t.as_str())
        .cloned();
    assert_eq!(used.unwrap()["completed"], 1, "{list}");
}

#[tokio::test]
async fn cli_with_url_and_token_from_env() {
    let srv = TestServer::start().await; // configured token, no operator.token file
    let cwd = srv.data_dir.parent().unwrap();
    let url = srv.operator_url.as_str();

    let out = maas(
        cwd,
        &[("MAAS_OPERATOR_TOKEN", OPERATOR_TOKEN)],
        &["--url", url, "tenant", "list", "--json"],
    )
    .await;
    let list = json_of(&out, "--url URL tenant list --json");
    assert_eq!(list["tenants"][0]["server_name"], "localhost", "{list}");

    let out = maas(
        cwd,
        &[("MAAS_OPERATOR_TOKEN", OPERATOR_TOKEN)],
        &[
            "tenant",
            "create",
            "env.test",
            "--registration",
            "open",
            "--url",
            url,
        ],
    )
    .await;
    assert_success(&out, "tenant create env.test --url URL");
    srv.register("env.test", "alice", "pw-1").await;

    // The data dir's server.json gives the address; the token still comes from the env.
    let dir = srv.data_dir.to_str().unwrap();
    let out = maas(
        cwd,
        &[("MAAS_OPERATOR_TOKEN", OPERATOR_TOKEN)],
        &["tenant", "show", "env.test", "--json", "--data-dir", dir],
    )
    .await;
    assert_eq!(json_of(&out, "tenant show --data-dir")["user_count"], 2);

    // A wrong token fails, saying why.
    let out = maas(
        cwd,
        &[("MAAS_OPERATOR_TOKEN", "wrong-token")],
        &["--url", url, "tenant", "list"],
    )
    .await;
    assert!(!out.status.success(), "wrong token accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("M_UNKNOWN_TOKEN") || err.to_lowercase().contains("token"),
        "stderr: {err}"
    );
    // No server found: no server.json in ./maas-data of an empty directory.
    let empty = tempfile::tempdir().unwrap();
    let out = maas(
        empty.path(),
        &[("MAAS_OPERATOR_TOKEN", OPERATOR_TOKEN)],
        &["tenant", "list"],
    )
    .await;
    assert!(
        !out.status.success(),
        "listing without a server succeeded: {}",
        stdout(&out)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_refused(out: &Output, args: &str, needle: &str) {
    assert!(
        !out.status.success(),
        "`maas {args}` succeeded:\n{}",
        stdout(out)
    );
    assert!(
        stderr(out).contains(needle),
        "`maas {args}`: stderr should mention {needle:?}:\n{}",
        stderr(out)
    );
}

/// Settings that can't work are refused, by the CLI and by the API, and change nothing.
#[tokio::test]
async fn cli_refuses_bad_settings() {
    let srv = TestServer::start_with(Options::default().with_generated_operator_token()).await;
    let cli = Cli { srv: &srv };

    let args = [
        "tenant",
        "create",
        "bad.test",
        "--client-base-url",
        "http://",
    ];
    assert_refused(&cli.run(&args).await, &args.join(" "), "client_base_url");
    let args = ["tenant", "create", "bad.test", "--max-users", "0"];
    assert_refused(&cli.run(&args).await, &args.join(" "), "--max-users");
    let args = ["tenant", "set", "localhost", "--max-users", "0"];
    assert_refused(&cli.run(&args).await, &args.join(" "), "--max-users");
    let args = ["token", "create", "localhost", "--uses", "0"];
    assert_refused(&cli.run(&args).await, &args.join(" "), "--uses");
    assert_error(
        &srv.op().get(&format!("{OP}/tenants/bad.test")).await,
        404,
        "M_NOT_FOUND",
    );

    // The API refuses them too, whoever the client.
    let create = |body: Value| {
        let srv = &srv;
        async move { srv.op().post(&format!("{OP}/tenants"), body).await }
    };
    for bad in [
        serde_json::json!({"server_name": "bad.test", "max_users": 0}),
        serde_json::json!({"server_name": "bad.test", "client_base_url": "http://"}),
        serde_json::json!({"server_name": "bad.test", "client_base_url": "https://a b.test"}),
        serde_json::json!({"server_name": "bad.test", "client_base_url": "https://:443/"}),
    ] {
        assert_error(&create(bad.clone()).await, 400, "M_INVALID_PARAM");
    }
    assert_error(
        &srv.op().get(&format!("{OP}/tenants/bad.test")).await,
        404,
        "M_NOT_FOUND",
    );
    let patch = srv
        .op()
        .patch(
            &format!("{OP}/tenants/localhost"),
            serde_json::json!({"max_users": 0}),
        )
        .await;
    assert_error(&patch, 400, "M_INVALID_PARAM");
    let tokens = format!("{OP}/tenants/localhost/registration_tokens");
    let resp = srv
        .op()
        .post(&tokens, serde_json::json!({"uses_allowed": 0}))
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let list = srv.op().get(&tokens).await.ok();
    assert_eq!(list["registration_tokens"], serde_json::json!([]), "{list}");
    let tenant = srv.get_tenant("localhost").await;
    assert_eq!(tenant["max_users"], Value::Null, "{tenant}");
    // A client base URL with a host is fine.
    let base = "https://matrix.example.test";
    cli.ok(&["tenant", "set", "localhost", "--client-base-url", base])
        .await;
    assert_eq!(srv.get_tenant("localhost").await["client_base_url"], base);
}

/// A quota below the current number of users is allowed (users are never removed by it), but
/// the answer says what it means: no new users until the count is below the quota.
#[tokio::test]
async fn cli_warns_of_a_quota_below_the_user_count() {
    let srv = TestServer::start_with(Options::default().with_generated_operator_token()).await;
    let cli = Cli { srv: &srv };
    srv.register("localhost", "alice", "pw-alice-1").await;
    srv.register("localhost", "bob", "pw-bob-1").await;

    let args = ["tenant", "set", "localhost", "--max-users", "2"];
    let out = cli.run(&args).await;
    assert_success(&out, &args.join(" "));
    let err = stderr(&out);
    assert!(
        err.contains("warning:") && err.contains("3 users") && err.contains("max_users 2"),
        "stderr:\n{err}"
    );
    let patch = srv
        .patch_tenant("localhost", serde_json::json!({"max_users": 1}))
        .await;
    assert_eq!(patch["max_users"], 1, "{patch}");
    let warnings = patch["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings: {patch}"));
    assert_eq!(warnings.len(), 1, "{patch}");
    let resp = srv
        .on("localhost")
        .register_raw(serde_json::json!({"username": "carol", "password": "pw-carol-1"}))
        .await;
    assert_error(&resp, 403, "M_RESOURCE_LIMIT_EXCEEDED");
    // Within the quota, no warning.
    let patch = srv
        .patch_tenant("localhost", serde_json::json!({"max_users": 10}))
        .await;
    assert!(patch.get("warnings").is_none(), "{patch}");
}

#[tokio::test]
async fn cli_url_without_scheme_and_flag_help() {
    let srv = TestServer::start().await;
    let cwd = srv.data_dir.parent().unwrap();
    let bare = srv.operator_url.trim_start_matches("http://").to_owned();
    let out = maas(
        cwd,
        &[("MAAS_OPERATOR_TOKEN", OPERATOR_TOKEN)],
        &["--url", &bare, "tenant", "list", "--json"],
    )
    .await;
    let list = json_of(&out, "--url HOST:PORT tenant list --json");
    assert_eq!(list["tenants"][0]["server_name"], "localhost", "{list}");

    // The public listener is not the operator API: the error says where that is.
    let out = maas(
        cwd,
        &[("MAAS_OPERATOR_TOKEN", OPERATOR_TOKEN)],
        &["--url", &srv.url, "tenant", "list"],
    )
    .await;
    assert_refused(&out, "--url PUBLIC tenant list", "operator.listen");

    for bad in ["ftp://127.0.0.1:1", "http://", "http:// x"] {
        let out = maas(
            cwd,
            &[("MAAS_OPERATOR_TOKEN", OPERATOR_TOKEN)],
            &["--url", bad, "tenant", "list"],
        )
        .await;
        assert_refused(&out, &format!("--url {bad} tenant list"), "--url");
    }

    let out = maas(cwd, &[], &["tenant", "set", "--help"]).await;
    assert_success(&out, "tenant set --help");
    let help = stdout(&out);
    let line = help
        .lines()
        .skip_while(|l| !l.contains("--federation-server"))
        .take(3)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        line.contains("m.server"),
        "no help for --federation-server:\n{help}"
    );
}

/// Quotas set with `maas tenant set` reach the tenant, `maas tenant show` reads them with the
/// usage, and `none` removes them.
#[tokio::test]
async fn cli_quotas_and_usage() {
    let srv = TestServer::start_with(Options::default().with_generated_operator_token()).await;
    let cli = Cli { srv: &srv };
    srv.create_tenant("q.test", &["q.test"], "open").await;
    let set = [
        "tenant",
        "set",
        "q.test",
        "--max-rooms",
        "5",
        "--storage-quota",
        "1G",
        "--max-messages-per-second",
        "10",
    ];
    cli.ok(&set).await;
    let shown = cli.json(&["tenant", "show", "q.test"]).await;
    let expected = serde_json::json!({
        "max_rooms": 5, "max_storage_bytes": 1_073_741_824, "max_messages_per_second": 10
    });
    assert_eq!(shown["quotas"], expected, "{shown}");
    let out = cli.ok(&["tenant", "show", "q.test"]).await;
    for needle in ["0 of 5", "of 1 GiB", "10 per second"] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }

    let args = ["tenant", "set", "q.test", "--max-messages-per-second", "0"];
    assert_refused(&cli.run(&args).await, &args.join(" "), "suspend");
    let unset = [
        "tenant",
        "set",
        "q.test",
        "--max-rooms",
        "none",
        "--storage-quota",
        "none",
        "--max-messages-per-second",
        "none",
    ];
    cli.ok(&unset).await;
    let shown = cli.json(&["tenant", "show", "q.test"]).await;
    let none = serde_json::json!({
        "max_rooms": null, "max_storage_bytes": null, "max_messages_per_second": null
    });
    assert_eq!(shown["quotas"], none, "{shown}");
}

/// Media settings given with size units reach the tenant in bytes, and `maas media` lists,
/// quarantines and deletes an upload named by its content URI.
#[tokio::test]
async fn cli_media_settings_and_commands() {
    let srv = TestServer::start_with(Options::default().with_generated_operator_token()).await;
    let cli = Cli { srv: &srv };
    srv.create_tenant("media.test", &["media.test"], "open")
        .await;

    cli.ok(&[
        "tenant",
        "set",
        "media.test",
        "--max-upload-size",
        "1M",
        "--media-quota",
        "10M",
    ])
    .await;
    let shown = cli.json(&["tenant", "show", "media.test"]).await;
    let media = &shown["media"];
    assert_eq!(media["max_upload_bytes"], 1_048_576, "{shown}");
    assert_eq!(media["quota_bytes"], 10_485_760, "{shown}");
    assert_eq!(media["user_quota_bytes"], Value::Null, "{shown}");
    assert_eq!(media["usage_bytes"], 0, "{shown}");
    let out = cli.ok(&["tenant", "show", "media.test"]).await;
    assert!(
        out.contains("1 MiB") && out.contains("0 B of 10 MiB"),
        "readable sizes expected:\n{out}"
    );

    // An empty tenant lists nothing.
    let listed = cli.json(&["media", "list", "media.test"]).await;
    assert_eq!(listed["media"], serde_json::json!([]), "{listed}");
    assert_eq!(listed["usage_bytes"], 0, "{listed}");
    let out = cli.ok(&["media", "list", "media.test"]).await;
    assert!(out.starts_with("No media.\n"), "{out}");

    // One upload: listed, quarantined, released, deleted, all by its content URI.
    let alice = srv.register("media.test", "alice", "pw-alice-1").await;
    let upload = srv
        .on("media.test")
        .as_user(&alice)
        .builder(reqwest::Method::POST, "/_matrix/media/v3/upload")
        .header("Content-Type", "text/plain")
        .body(vec![7u8; 1500]);
    let uploaded = TestServer::send(upload).await.ok();
    let mxc = uploaded["content_uri"]
        .as_str()
        .unwrap_or_else(|| panic!("{uploaded}"))
        .to_owned();
    let listed = cli
        .json(&["media", "list", "media.test", "--user", "alice"])
        .await;
    assert_eq!(listed["media"][0]["content_uri"], mxc.as_str(), "{listed}");
    assert_eq!(listed["usage_bytes"], 1500, "{listed}");
    let out = cli.ok(&["media", "list", "media.test"]).await;
    assert!(
        out.contains(&mxc) && out.contains("1.5 KiB") && out.contains("stored"),
        "{out}"
    );
    cli.ok(&["media", "quarantine", "media.test", &mxc]).await;
    let listed = cli.json(&["media", "list", "media.test"]).await;
    assert_eq!(listed["media"][0]["quarantined"], true, "{listed}");
    cli.ok(&["media", "quarantine", "media.test", &mxc, "--release"])
        .await;
    let listed = cli.json(&["media", "list", "media.test"]).await;
    assert_eq!(listed["media"][0]["quarantined"], false, "{listed}");
    cli.ok(&["media", "delete", "media.test", &mxc]).await;
    let listed = cli.json(&["media", "list", "media.test"]).await;
    assert_eq!(listed["media"], serde_json::json!([]), "{listed}");

    // Deleted media is unknown; a malformed URI is refused before any request.
    let args = ["media", "delete", "media.test", &mxc];
    assert_refused(&cli.run(&args).await, &args.join(" "), "M_NOT_FOUND");
    let args = ["media", "delete", "media.test", "media.test/abc"];
    assert_refused(&cli.run(&args).await, &args.join(" "), "not a content URI");

    let purged = cli
        .json(&["media", "purge-remote", "media.test", "--older-than", "30d"])
        .await;
    assert_eq!(purged["deleted"], 0, "{purged}");

    // `none` and `default` go back to no quota and the platform's limit.
    cli.ok(&[
        "tenant",
        "set",
        "media.test",
        "--media-quota",
        "none",
        "--max-upload-size",
        "default",
    ])
    .await;
    let media = &srv.get_tenant("media.test").await["media"];
    assert_eq!(media["quota_bytes"], Value::Null, "{media}");
    assert_eq!(media["max_upload_bytes"], 50 * 1024 * 1024, "{media}");
}
