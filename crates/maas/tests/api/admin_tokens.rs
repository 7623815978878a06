//! Registration tokens through Synapse's admin API (`/v1/registration_tokens`): created given or
//! generated, read, listed by validity, changed and deleted, with Synapse's shapes and errors;
//! the same tokens as registration and the operator API use, and each tenant's own.

use serde_json::{Value, json};

use crate::harness::*;

const TOKENS: &str = "/_synapse/admin/v1/registration_tokens";

/// Every field of a token, sorted.
const TOKEN_FIELDS: [&str; 5] = [
    "completed",
    "expiry_time",
    "pending",
    "token",
    "uses_allowed",
];

fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn token_path(token: &str) -> String {
    format!("{TOKENS}/{}", enc(token))
}

async fn listed(api: &Api<'_>, query: &str) -> Vec<String> {
    let body = api.get(&format!("{TOKENS}{query}")).await.ok();
    let mut tokens: Vec<String> = body["registration_tokens"]
        .as_array()
        .unwrap_or_else(|| panic!("no registration_tokens: {body}"))
        .iter()
        .map(|t| t["token"].as_str().unwrap_or_default().to_owned())
        .collect();
    tokens.sort();
    tokens
}

#[tokio::test]
async fn tokens_are_created_read_changed_and_deleted() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test").as_user(&admin);
    let new = format!("{TOKENS}/new");

    // Generated: 16 characters of the token alphabet unless `length` says otherwise.
    let generated = api.post(&new, json!({})).await.ok();
    assert_eq!(sorted_keys(&generated), TOKEN_FIELDS, "{generated}");
    let token = generated["token"].as_str().expect("a token");
    assert_eq!(token.len(), 16);
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._~-".contains(c)),
        "{token}"
    );
    assert_eq!(
        generated,
        json!({"token": token, "uses_allowed": null, "pending": 0, "completed": 0, "expiry_time": null})
    );
    let short = api.post(&new, json!({"length": 5})).await.ok();
    assert_eq!(short["token"].as_str().map(str::len), Some(5), "{short}");

    // Given, with limits.
    let expiry = now_ms() + 3_600_000;
    let body = json!({"token": "abc-1_x.y~z", "uses_allowed": 2, "expiry_time": expiry});
    let created = api.post(&new, body).await.ok();
    let expected = json!({
        "token": "abc-1_x.y~z", "uses_allowed": 2, "pending": 0, "completed": 0,
        "expiry_time": expiry,
    });
    assert_eq!(created, expected);
    assert_eq!(api.get(&token_path("abc-1_x.y~z")).await.ok(), expected);
    let again = api.post(&new, json!({"token": "abc-1_x.y~z"})).await;
    assert_error(&again, 400, "M_INVALID_PARAM");
    let zero = api
        .post(&new, json!({"token": "zero", "uses_allowed": 0}))
        .await
        .ok();
    assert_eq!(zero["uses_allowed"], 0);

    let mut all = vec!["abc-1_x.y~z".to_owned(), "zero".to_owned()];
    all.extend([
        token.to_owned(),
        short["token"].as_str().unwrap().to_owned(),
    ]);
    all.sort();
    assert_eq!(listed(&api, "").await, all);

    // Changed field by field; `{}` changes nothing and answers the token.
    let path = token_path("abc-1_x.y~z");
    let changed = api.put(&path, json!({"uses_allowed": 5})).await.ok();
    assert_eq!(changed["uses_allowed"], 5);
    assert_eq!(changed["expiry_time"], expiry);
    let changed = api.put(&path, json!({"expiry_time": null})).await.ok();
    assert_eq!(
        (
            changed["uses_allowed"].clone(),
            changed["expiry_time"].clone()
        ),
        (json!(5), Value::Null)
    );
    let changed = api
        .put(&path, json!({"uses_allowed": null, "expiry_time": expiry}))
        .await
        .ok();
    assert_eq!(
        (
            changed["uses_allowed"].clone(),
            changed["expiry_time"].clone()
        ),
        (Value::Null, json!(expiry))
    );
    assert_eq!(api.put(&path, json!({})).await.ok(), changed);
    assert_eq!(api.get(&path).await.ok(), changed);

    // Unknown tokens.
    let nope = token_path("nope");
    assert_error(&api.get(&nope).await, 404, "M_NOT_FOUND");
    assert_error(&api.put(&nope, json!({})).await, 404, "M_NOT_FOUND");
    assert_error(
        &api.put(&nope, json!({"uses_allowed": 1})).await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(&api.delete(&nope).await, 404, "M_NOT_FOUND");

    // Deleted once.
    assert_eq!(api.delete(&path).await.ok(), json!({}));
    assert_error(&api.get(&path).await, 404, "M_NOT_FOUND");
    assert_error(&api.delete(&path).await, 404, "M_NOT_FOUND");

    // A token may be called `new`; its path is that of creation.
    let named_new = api.post(&new, json!({"token": "new"})).await.ok();
    assert_eq!(named_new["token"], "new");
    assert_eq!(api.get(&new).await.ok(), named_new);
    let changed = api.put(&new, json!({"uses_allowed": 1})).await.ok();
    assert_eq!(changed["uses_allowed"], 1);
    assert_eq!(api.delete(&new).await.ok(), json!({}));
    assert_error(&api.get(&new).await, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn bad_token_requests_change_nothing() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test").as_user(&admin);
    let new = format!("{TOKENS}/new");
    let past = now_ms() - 1_000;
    for body in [
        json!({"token": 5}),
        json!({"token": ""}),
        json!({"token": "x".repeat(65)}),
        json!({"token": "bad!"}),
        json!({"token": "spa ce"}),
        json!({"length": "5"}),
        json!({"length": 0}),
        json!({"length": 65}),
        json!({"length": -3}),
        json!({"length": 1.5}),
        json!({"uses_allowed": -1}),
        json!({"uses_allowed": "1"}),
        json!({"uses_allowed": 1.5}),
        json!({"uses_allowed": true}),
        json!({"expiry_time": "soon"}),
        json!({"expiry_time": past}),
    ] {
        let resp = api.post(&new, body.clone()).await;
        assert_error(&resp, 400, "M_INVALID_PARAM");
        assert!(resp.body["error"].is_string(), "{body}: {}", resp.text);
    }
    assert_error(&api.post(&new, json!([1])).await, 400, "M_BAD_JSON");
    let not_json = api.builder(reqwest::Method::POST, &new).body("nope");
    assert_error(&TestServer::send(not_json).await, 400, "M_NOT_JSON");
    assert_eq!(listed(&api, "").await, Vec::<String>::new());

    api.post(&new, json!({"token": "keep", "uses_allowed": 3}))
        .await
        .ok();
    let path = token_path("keep");
    for body in [
        json!({"uses_allowed": -1}),
        json!({"uses_allowed": "x"}),
        json!({"expiry_time": 1.5}),
        json!({"expiry_time": past}),
        json!({"uses_allowed": 1, "expiry_time": past}),
    ] {
        assert_error(&api.put(&path, body).await, 400, "M_INVALID_PARAM");
    }
    let kept = api.get(&path).await.ok();
    assert_eq!(
        (kept["uses_allowed"].clone(), kept["expiry_time"].clone()),
        (json!(3), Value::Null)
    );
    assert_error(
        &api.get(&format!("{TOKENS}?valid=yes")).await,
        400,
        "M_INVALID_PARAM",
    );
}

#[tokio::test]
async fn tokens_register_users_and_are_listed_by_validity() {
    let srv = TestServer::start().await;
    let tenant = srv.create_tenant("tok.test", &["tok.test"], "token").await;
    let password = tenant["admin"]["password"].as_str().expect("password");
    let admin = srv.login("tok.test", "admin", password).await;
    let api = srv.on("tok.test").as_user(&admin);
    let new = format!("{TOKENS}/new");
    api.post(&new, json!({"token": "once", "uses_allowed": 1}))
        .await
        .ok();
    api.post(&new, json!({"token": "never", "uses_allowed": 0}))
        .await
        .ok();
    api.post(
        &new,
        json!({"token": "soon", "expiry_time": now_ms() + 1_500}),
    )
    .await
    .ok();
    api.post(&new, json!({"token": "forever"})).await.ok();
    api.post(&new, json!({"token": "gone"})).await.ok();
    api.delete(&token_path("gone")).await.ok();

    // The operator sees the tenant admin's tokens: they are the same tokens.
    let by_operator = srv
        .op()
        .get(&format!("{OP}/tenants/tok.test/registration_tokens"))
        .await
        .ok();
    let mut names: Vec<&str> = by_operator["registration_tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(|t| t["token"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["forever", "never", "once", "soon"]);

    srv.on("tok.test")
        .register_with_token("alice", "pw-alice-1", "once")
        .await;
    let once = api.get(&token_path("once")).await.ok();
    assert_eq!(
        (once["completed"].clone(), once["pending"].clone()),
        (json!(1), json!(0))
    );
    // A deleted token registers nobody.
    let resp = srv
        .on("tok.test")
        .uia(
            reqwest::Method::POST,
            &format!("{CS}/register"),
            json!({"username": "bob", "password": "pw-bob-1"}),
            &[token_stage("gone")],
        )
        .await;
    assert_eq!(resp.status, 401, "{}", resp.text);

    tokio::time::sleep(std::time::Duration::from_millis(1_600)).await;
    assert_eq!(listed(&api, "?valid=true").await, ["forever"]);
    assert_eq!(
        listed(&api, "?valid=false").await,
        ["never", "once", "soon"]
    );
    assert_eq!(listed(&api, "").await, ["forever", "never", "once", "soon"]);
}

#[tokio::test]
async fn tokens_are_for_the_tenants_own_admins() {
    let (srv, admin_a, admin_b) = tenants_with_admins().await;
    let api_a = srv.on("a.test").as_user(&admin_a);
    api_a
        .post(&format!("{TOKENS}/new"), json!({"token": "mine"}))
        .await
        .ok();
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let as_alice = srv.on("a.test").as_user(&alice);
    let anonymous = srv.on("a.test");
    let mine = token_path("mine");
    for (method, path) in [
        (reqwest::Method::GET, TOKENS.to_owned()),
        (reqwest::Method::POST, format!("{TOKENS}/new")),
        (reqwest::Method::GET, mine.clone()),
        (reqwest::Method::PUT, mine.clone()),
        (reqwest::Method::DELETE, mine.clone()),
    ] {
        let resp = as_alice.send(method.clone(), &path, Some(&json!({}))).await;
        assert_error(&resp, 403, "M_FORBIDDEN");
        let resp = anonymous.send(method, &path, Some(&json!({}))).await;
        assert_error(&resp, 401, "M_MISSING_TOKEN");
    }

    // `b.test` has its own tokens: `a.test`'s are unknown there, and a token of the same name
    // is another token.
    let api_b = srv.on("b.test").as_user(&admin_b);
    assert_eq!(listed(&api_b, "").await, Vec::<String>::new());
    assert_error(&api_b.get(&mine).await, 404, "M_NOT_FOUND");
    assert_error(&api_b.delete(&mine).await, 404, "M_NOT_FOUND");
    assert_error(
        &api_b.put(&mine, json!({"uses_allowed": 1})).await,
        404,
        "M_NOT_FOUND",
    );
    api_b
        .post(
            &format!("{TOKENS}/new"),
            json!({"token": "mine", "uses_allowed": 7}),
        )
        .await
        .ok();
    let in_a = api_a.get(&mine).await.ok();
    assert_eq!(in_a["uses_allowed"], Value::Null, "{in_a}");
    assert_eq!(listed(&api_a, "").await, ["mine"]);
}
