//! The admin API's users endpoints (`/_synapse/admin/v{1,2,3}/users…`, devices, whois): Synapse's
//! shapes, errors and effects, per tenant — accounts created, changed, listed, deactivated and
//! erased; passwords; devices and sessions; suspension, shadow-bans, locks and rate limits as
//! the rest of the server obeys them; acting as a user; and what an admin reads about one.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;
use crate::room_support::*;

const V1: &str = "/_synapse/admin/v1";
const V2: &str = "/_synapse/admin/v2";
const V3: &str = "/_synapse/admin/v3";

fn user_path(user_id: &str) -> String {
    format!("{V2}/users/{}", enc(user_id))
}

fn v1_user(user_id: &str, what: &str) -> String {
    format!("{V1}/users/{}/{what}", enc(user_id))
}

/// The sorted keys of a JSON object.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn names(list: &Value) -> Vec<String> {
    list["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users in {list}"))
        .iter()
        .map(|u| u["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `PUT /v2/users/{userId}` by `admin`, asserting `status`.
async fn put_user(api: &Api<'_>, user_id: &str, body: Value, status: u16) -> Value {
    let resp = api.put(&user_path(user_id), body).await;
    assert_eq!(resp.status, status, "{}", resp.text);
    resp.body
}

/// A POST with no body at all (Synapse allows that where it reads an optional object).
async fn post_empty(api: &Api<'_>, path: &str) -> Resp {
    TestServer::send(api.builder(Method::POST, path)).await
}

const DETAIL_KEYS: [&str; 19] = [
    "admin",
    "appservice_id",
    "avatar_url",
    "consent_server_notice_sent",
    "consent_ts",
    "consent_version",
    "creation_ts",
    "deactivated",
    "displayname",
    "erased",
    "external_ids",
    "is_guest",
    "last_seen_ts",
    "locked",
    "name",
    "shadow_banned",
    "suspended",
    "threepids",
    "user_type",
];

const LIST_KEYS: [&str; 12] = [
    "admin",
    "avatar_url",
    "creation_ts",
    "deactivated",
    "displayname",
    "erased",
    "is_guest",
    "last_seen_ts",
    "locked",
    "name",
    "shadow_banned",
    "user_type",
];

#[tokio::test]
async fn user_endpoints_want_an_admin_of_the_tenant() {
    let (srv, a_admin, b_admin) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let paths = [
        format!("{V2}/users"),
        format!("{V3}/users"),
        user_path(&alice.user_id),
        format!("{V2}/users/{}/devices", enc(&alice.user_id)),
        v1_user(&alice.user_id, "joined_rooms"),
        v1_user(&alice.user_id, "override_ratelimit"),
        format!("{V1}/username_available?username=zed"),
    ];
    for path in &paths {
        assert_error(&api.get(path).await, 401, "M_MISSING_TOKEN");
        assert_error(&api.as_user(&alice).get(path).await, 403, "M_FORBIDDEN");
        // b.test's admin is nobody on a.test: the token is unknown there.
        assert_error(
            &api.as_user(&b_admin).get(path).await,
            401,
            "M_UNKNOWN_TOKEN",
        );
    }
    let resp = api
        .as_user(&alice)
        .put(&user_path("@zed:a.test"), json!({"password": "pw-zed-1"}))
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = api
        .as_user(&alice)
        .post(
            &format!("{V1}/deactivate/{}", enc(&a_admin.user_id)),
            json!({}),
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");

    // On its own host, b.test's admin sees only b.test's users, and a.test's are not local.
    let b = srv.on("b.test").as_user(&b_admin);
    let listed = b.get(&format!("{V2}/users")).await.ok();
    assert_eq!(names(&listed), ["@admin:b.test"], "{listed}");
    let resp = b.get(&user_path(&alice.user_id)).await;
    assert_error(&resp, 400, "M_UNKNOWN");
    assert_eq!(resp.body["error"], "Can only look up local users");
    let resp = b
        .put(&user_path(&alice.user_id), json!({"displayname": "x"}))
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");
    let resp = b
        .post(
            &format!("{V1}/deactivate/{}", enc(&alice.user_id)),
            json!({}),
        )
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");
    let resp = b.get(&v1_user(&alice.user_id, "accountdata")).await;
    assert_error(&resp, 400, "M_UNKNOWN");
    // Nothing changed on a.test.
    let details = api
        .as_user(&a_admin)
        .get(&user_path(&alice.user_id))
        .await
        .ok();
    assert_eq!(details["deactivated"], false, "{details}");
    assert_eq!(details["displayname"], Value::Null, "{details}");
}

#[tokio::test]
async fn put_creates_a_user_with_synapse_details() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test").as_user(&admin);
    let body = json!({
        "password": "pw-carol-1",
        "threepids": [{"medium": "email", "address": "Carol@Example.ORG"}],
        "external_ids": [{"auth_provider": "oidc-x", "external_id": "c/1"}],
        "avatar_url": "mxc://a.test/carol",
        "user_type": "bot",
    });
    let created = put_user(&api, "@carol:a.test", body, 201).await;
    assert_eq!(keys(&created), DETAIL_KEYS, "{created}");
    assert_eq!(created["name"], "@carol:a.test");
    // Synapse names a new user after its localpart.
    assert_eq!(created["displayname"], "carol");
    assert_eq!(created["avatar_url"], "mxc://a.test/carol");
    assert_eq!(created["admin"], false);
    assert_eq!(created["user_type"], "bot");
    assert_eq!(created["appservice_id"], Value::Null);
    assert_eq!(created["last_seen_ts"], Value::Null);
    assert_eq!(
        created["external_ids"],
        json!([{"auth_provider": "oidc-x", "external_id": "c/1"}])
    );
    let threepid = &created["threepids"][0];
    assert_eq!(threepid["medium"], "email");
    assert_eq!(threepid["address"], "carol@example.org");
    assert!(threepid["added_at"].as_i64().unwrap_or(0) > 1_000_000_000_000);
    assert!(threepid["validated_at"].as_i64().unwrap_or(0) > 1_000_000_000_000);
    // Seconds here, as Synapse's details (its list has milliseconds).
    let seconds = created["creation_ts"].as_i64().unwrap_or(0);
    assert!((now_ms() / 1000 - seconds).abs() < 60, "{created}");

    let carol = srv.login("a.test", "carol", "pw-carol-1").await;
    assert_eq!(carol.user_id, "@carol:a.test");
    let details = api.get(&user_path("@carol:a.test")).await.ok();
    assert!(details["last_seen_ts"].as_i64().is_some(), "{details}");

    // Lookups by third-party id and external identity.
    let found = api
        .get(&format!(
            "{V1}/threepid/email/users/{}",
            enc("carol@example.org")
        ))
        .await
        .ok();
    assert_eq!(found, json!({"user_id": "@carol:a.test"}));
    let found = api
        .get(&format!("{V1}/auth_providers/oidc-x/users/{}", enc("c/1")))
        .await
        .ok();
    assert_eq!(found, json!({"user_id": "@carol:a.test"}));
    let resp = api
        .get(&format!("{V1}/threepid/email/users/nobody%40x"))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    assert_eq!(resp.body["error"], "User not found");
    let resp = api
        .get(&format!("{V1}/auth_providers/oidc-x/users/c2"))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");

    // An admin can be created as such; a user needs no password.
    let dave = put_user(
        &api,
        "@dave:a.test",
        json!({"admin": true, "displayname": "Dave"}),
        201,
    )
    .await;
    assert_eq!(dave["admin"], true);
    assert_eq!(dave["displayname"], "Dave");
}

#[tokio::test]
async fn put_refuses_bad_requests_and_changes_nothing() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test").as_user(&admin);
    put_user(
        &api,
        "@erin:a.test",
        json!({"external_ids": [{"auth_provider": "p", "external_id": "e"}]}),
        201,
    )
    .await;
    let cases = [
        (json!({"admin": "yes"}), 400, "M_BAD_JSON"),
        (json!({"user_type": "wizard"}), 400, "M_UNKNOWN"),
        (json!({"password": 5}), 400, "M_UNKNOWN"),
        (json!({"logout_devices": "no"}), 400, "M_UNKNOWN"),
        (
            json!({"deactivated": true, "locked": true}),
            400,
            "M_UNKNOWN",
        ),
        (
            json!({"threepids": [{"medium": "email"}]}),
            400,
            "M_MISSING_PARAM",
        ),
        (
            json!({"threepids": [{"medium": "pager", "address": "1"}]}),
            400,
            "M_INVALID_PARAM",
        ),
        (
            json!({"avatar_url": "https://x/y.png"}),
            400,
            "M_INVALID_PARAM",
        ),
        (json!({"displayname": "x".repeat(300)}), 400, "M_UNKNOWN"),
    ];
    for (body, status, errcode) in cases {
        for user in ["@erin:a.test", "@newbie:a.test"] {
            let resp = api.put(&user_path(user), body.clone()).await;
            assert_error(&resp, status, errcode);
        }
    }
    let resp = api.put(&user_path("@newbie:a.test"), json!([1])).await;
    assert_error(&resp, 400, "M_BAD_JSON");
    // Another user's external id: 409, and nothing of the change is made.
    let resp = api
        .put(
            &user_path("@admin:a.test"),
            json!({"displayname": "Changed", "external_ids": [{"auth_provider": "p", "external_id": "e"}]}),
        )
        .await;
    assert_error(&resp, 409, "M_UNKNOWN");
    assert_eq!(resp.body["error"], "External id is already in use.");
    let resp = api
        .put(
            &user_path("@fred:a.test"),
            json!({"external_ids": [{"auth_provider": "p", "external_id": "e"}]}),
        )
        .await;
    assert_error(&resp, 409, "M_UNKNOWN");
    // Not a user id this server would give, and not a local one.
    let resp = api.put(&user_path("@Fred:a.test"), json!({})).await;
    assert_error(&resp, 400, "M_INVALID_USERNAME");
    let resp = api.put(&user_path("@fred:b.test"), json!({})).await;
    assert_error(&resp, 400, "M_UNKNOWN");
    assert_eq!(
        resp.body["error"],
        "This endpoint can only be used with local users"
    );
    // An admin can't demote themselves.
    let resp = api
        .put(&user_path(&admin.user_id), json!({"admin": false}))
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");
    assert_eq!(resp.body["error"], "You may not demote yourself.");

    let listed = api.get(&format!("{V2}/users")).await.ok();
    assert_eq!(
        names(&listed),
        ["@admin:a.test", "@erin:a.test"],
        "{listed}"
    );
    let me = api.get(&user_path(&admin.user_id)).await.ok();
    assert_eq!(me["admin"], true);
    assert_ne!(me["displayname"], "Changed");
    assert_eq!(me["external_ids"], json!([]));
}

#[tokio::test]
async fn put_changes_a_user() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let bob = api.register("bob", "pw-bob-1").await;
    let room = create_room(&api.as_user(&bob), json!({"preset": "public_chat"})).await;
    join(&api.as_user(&alice), &room).await;
    let admin_api = api.as_user(&admin);

    let changed = put_user(
        &admin_api,
        &alice.user_id,
        json!({
            "displayname": "Alice A.",
            "avatar_url": "mxc://a.test/alice",
            "threepids": [{"medium": "msisdn", "address": "447700900000"}],
            "external_ids": [{"auth_provider": "ldap", "external_id": "alice"}],
            "admin": true,
            "user_type": "support",
        }),
        200,
    )
    .await;
    assert_eq!(keys(&changed), DETAIL_KEYS);
    assert_eq!(changed["displayname"], "Alice A.");
    assert_eq!(changed["avatar_url"], "mxc://a.test/alice");
    assert_eq!(changed["admin"], true);
    assert_eq!(changed["user_type"], "support");
    assert_eq!(changed["threepids"][0]["address"], "447700900000");
    assert_eq!(changed["external_ids"][0]["auth_provider"], "ldap");
    // Her rooms see the new name.
    let member = state_content(&api.as_user(&bob), &room, "m.room.member", &alice.user_id).await;
    assert_eq!(member["displayname"], "Alice A.", "{member}");
    // She is an admin now.
    let resp = api.as_user(&alice).get(&format!("{V2}/users")).await;
    assert_eq!(resp.status, 200, "{}", resp.text);

    // `""` clears, `null` clears the type; a new password ends her sessions unless told not to.
    let changed = put_user(
        &admin_api,
        &alice.user_id,
        json!({"displayname": "", "avatar_url": "", "user_type": null, "threepids": [], "password": "pw-alice-2", "logout_devices": false}),
        200,
    )
    .await;
    assert_eq!(changed["displayname"], Value::Null);
    assert_eq!(changed["avatar_url"], Value::Null);
    assert_eq!(changed["user_type"], Value::Null);
    assert_eq!(changed["threepids"], json!([]));
    api.as_user(&alice).whoami().await.ok();
    put_user(
        &admin_api,
        &alice.user_id,
        json!({"password": "pw-alice-3"}),
        200,
    )
    .await;
    assert_error(&api.as_user(&alice).whoami().await, 401, "M_UNKNOWN_TOKEN");
    srv.login("a.test", "alice", "pw-alice-3").await;
    // A displayname that is no string is refused when changing.
    let resp = admin_api
        .put(&user_path(&alice.user_id), json!({"displayname": null}))
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn put_respects_the_tenants_user_quota() {
    let (srv, admin, _) = tenants_with_admins().await;
    srv.patch_tenant("a.test", json!({"max_users": 2})).await;
    let api = srv.on("a.test").as_user(&admin);
    put_user(&api, "@one:a.test", json!({}), 201).await;
    let resp = api.put(&user_path("@two:a.test"), json!({})).await;
    assert_error(&resp, 403, "M_RESOURCE_LIMIT_EXCEEDED");
    let listed = api.get(&format!("{V2}/users")).await.ok();
    assert_eq!(listed["total"], 2, "{listed}");
    // Changing an existing user is no new user.
    put_user(&api, "@one:a.test", json!({"displayname": "One"}), 200).await;
}

#[tokio::test]
async fn list_users_pages_filters_and_orders_as_synapse() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let admin_api = api.as_user(&admin);
    for (name, display) in [("zoe", "Alpha"), ("yann", "Zed"), ("xavi", "Mid")] {
        put_user(
            &admin_api,
            &format!("@{name}:a.test"),
            json!({"displayname": display, "password": format!("pw-{name}-1")}),
            201,
        )
        .await;
    }
    put_user(&admin_api, "@bot1:a.test", json!({"user_type": "bot"}), 201).await;
    let gone = json!({"deactivated": true});
    put_user(&admin_api, "@xavi:a.test", gone, 200).await;
    put_user(&admin_api, "@yann:a.test", json!({"locked": true}), 200).await;
    srv.login("a.test", "zoe", "pw-zoe-1").await;

    let list = |query: &str| {
        let admin_api = admin_api.clone();
        let path = format!("{V2}/users{query}");
        async move { admin_api.get(&path).await }
    };
    let all = list("").await.ok();
    assert_eq!(
        names(&all),
        ["@admin:a.test", "@bot1:a.test", "@zoe:a.test"]
    );
    assert_eq!(all["total"], 3);
    assert!(all.get("next_token").is_none(), "{all}");
    for user in all["users"].as_array().expect("users") {
        assert_eq!(keys(user), LIST_KEYS, "{user}");
    }
    let zoe = &all["users"][2];
    // Milliseconds in the list.
    assert!(
        zoe["creation_ts"].as_i64().unwrap_or(0) > 1_000_000_000_000,
        "{zoe}"
    );
    assert!(zoe["last_seen_ts"].as_i64().is_some(), "{zoe}");

    // Pages: `next_token` is a string offset while there is more.
    let page = list("?limit=2").await.ok();
    assert_eq!(names(&page), ["@admin:a.test", "@bot1:a.test"]);
    assert_eq!(page["next_token"], "2");
    assert_eq!(page["total"], 3);
    let page = list("?limit=2&from=2").await.ok();
    assert_eq!(names(&page), ["@zoe:a.test"]);
    assert!(page.get("next_token").is_none(), "{page}");

    // v2 `deactivated=true` adds deactivated users; v3 filters both ways.
    let page = list("?deactivated=true").await.ok();
    assert_eq!(page["total"], 4, "{page}");
    let v3 = |query: &str| {
        let admin_api = admin_api.clone();
        let path = format!("{V3}/users{query}");
        async move { admin_api.get(&path).await.ok() }
    };
    assert_eq!(names(&v3("?deactivated=true").await), ["@xavi:a.test"]);
    assert_eq!(v3("?deactivated=false").await["total"], 3);
    assert_eq!(v3("").await["total"], 4);
    // Locked users only when asked for.
    assert_eq!(
        names(&list("?locked=true&name=yann").await.ok()),
        ["@yann:a.test"]
    );
    assert_eq!(list("?name=yann").await.ok()["total"], 0);
    // Name matches localparts and display names, case-insensitively; user_id full ids.
    assert_eq!(names(&list("?name=ALPH").await.ok()), ["@zoe:a.test"]);
    assert_eq!(
        names(&list("?user_id=oe%3Aa.t").await.ok()),
        ["@zoe:a.test"]
    );
    assert_eq!(names(&list("?admins=true").await.ok()), ["@admin:a.test"]);
    assert_eq!(
        names(&list("?admins=false&not_user_type=bot").await.ok()),
        ["@zoe:a.test"]
    );
    assert_eq!(names(&list("?not_user_type=").await.ok()), ["@bot1:a.test"]);
    // Orders, ties by name; `dir=b` reverses.
    // Byte order, `null` (the first admin has no name) last going forwards, first backwards.
    assert_eq!(
        names(&list("?order_by=displayname").await.ok()),
        ["@zoe:a.test", "@bot1:a.test", "@admin:a.test"]
    );
    assert_eq!(
        names(&list("?order_by=displayname&dir=b").await.ok()),
        ["@admin:a.test", "@bot1:a.test", "@zoe:a.test"]
    );
    // bot1 never logged in.
    assert_eq!(
        names(&list("?order_by=last_seen_ts").await.ok()),
        ["@admin:a.test", "@zoe:a.test", "@bot1:a.test"]
    );

    for (query, errcode) in [
        ("?limit=-1", "M_INVALID_PARAM"),
        ("?from=x", "M_INVALID_PARAM"),
        ("?order_by=shoe_size", "M_INVALID_PARAM"),
        ("?dir=up", "M_INVALID_PARAM"),
        ("?guests=maybe", "M_INVALID_PARAM"),
    ] {
        assert_error(&list(query).await, 400, errcode);
    }
}

#[tokio::test]
async fn deactivation_ends_the_account_and_erase_marks_it() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let bob = api.register("bob", "pw-bob-1").await;
    let room = create_room(&api.as_user(&bob), json!({"preset": "public_chat"})).await;
    join(&api.as_user(&alice), &room).await;
    let admin_api = api.as_user(&admin);
    let path = format!("{V1}/deactivate/{}", enc(&alice.user_id));

    let resp = admin_api.post(&path, json!({"erase": "yes"})).await;
    assert_error(&resp, 400, "M_BAD_JSON");
    assert_eq!(
        resp.body["error"],
        "Param 'erase' must be a boolean, if given"
    );
    api.as_user(&alice).whoami().await.ok();

    let done = admin_api.post(&path, json!({"erase": true})).await.ok();
    assert_eq!(done, json!({"id_server_unbind_result": "success"}));
    assert_error(&api.as_user(&alice).whoami().await, 401, "M_UNKNOWN_TOKEN");
    let resp = api.login_raw(login_body("alice", "pw-alice-1")).await;
    assert_eq!(resp.status, 403, "{}", resp.text);
    let details = admin_api.get(&user_path(&alice.user_id)).await.ok();
    assert_eq!(details["deactivated"], true);
    assert_eq!(details["erased"], true);
    assert_eq!(details["displayname"], Value::Null);
    // She left her rooms.
    assert_eq!(
        membership_of(&api.as_user(&bob), &room, &alice.user_id).await,
        "leave"
    );

    // Reactivation, as Synapse: not erased, and a password to log in with.
    let back = put_user(
        &admin_api,
        &alice.user_id,
        json!({"deactivated": false, "password": "pw-alice-2"}),
        200,
    )
    .await;
    assert_eq!(back["deactivated"], false);
    assert_eq!(back["erased"], false);
    srv.login("a.test", "alice", "pw-alice-2").await;

    // Without a body at all, and for users that don't exist or aren't local.
    let resp = post_empty(
        &admin_api,
        &format!("{V1}/deactivate/{}", enc(&bob.user_id)),
    )
    .await;
    assert_eq!(resp.ok(), json!({"id_server_unbind_result": "success"}));
    let details = admin_api.get(&user_path(&bob.user_id)).await.ok();
    assert_eq!(details["erased"], false);
    let resp = admin_api
        .post(
            &format!("{V1}/deactivate/{}", enc("@nobody:a.test")),
            json!({}),
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let resp = admin_api
        .post(&format!("{V1}/deactivate/{}", enc("@x:b.test")), json!({}))
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");
    assert_eq!(resp.body["error"], "Can only deactivate local users");
}

#[tokio::test]
async fn reset_password_and_the_admin_flag() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let admin_api = api.as_user(&admin);
    let path = format!("{V1}/reset_password/{}", enc(&alice.user_id));

    let resp = admin_api.post(&path, json!({})).await;
    assert_error(&resp, 400, "M_MISSING_PARAM");
    assert_eq!(resp.body["error"], "Missing params: ['new_password']");
    let keep = json!({"new_password": "pw-alice-2", "logout_devices": false});
    assert_eq!(admin_api.post(&path, keep).await.ok(), json!({}));
    api.as_user(&alice).whoami().await.ok();
    let resp = api.login_raw(login_body("alice", "pw-alice-1")).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // By default the user's sessions end.
    let reset = json!({"new_password": "pw-alice-3"});
    assert_eq!(admin_api.post(&path, reset.clone()).await.ok(), json!({}));
    assert_error(&api.as_user(&alice).whoami().await, 401, "M_UNKNOWN_TOKEN");
    srv.login("a.test", "alice", "pw-alice-3").await;
    let resp = admin_api
        .post(
            &format!("{V1}/reset_password/{}", enc("@nobody:a.test")),
            reset,
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");

    // The older admin flag endpoint.
    let flag = v1_user(&alice.user_id, "admin");
    assert_eq!(admin_api.get(&flag).await.ok(), json!({"admin": false}));
    assert_eq!(
        admin_api.put(&flag, json!({"admin": true})).await.ok(),
        json!({})
    );
    assert_eq!(admin_api.get(&flag).await.ok(), json!({"admin": true}));
    let resp = admin_api.put(&flag, json!({})).await;
    assert_error(&resp, 400, "M_MISSING_PARAM");
    let resp = admin_api
        .put(&v1_user(&admin.user_id, "admin"), json!({"admin": false}))
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");
    let resp = admin_api
        .put(&v1_user("@x:b.test", "admin"), json!({"admin": true}))
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");
    let resp = admin_api
        .get(&v1_user("@nobody:a.test", "admin"))
        .await
        .ok();
    assert_eq!(resp, json!({"admin": false}));

    // Usernames, whatever the registration policy.
    srv.patch_tenant("a.test", json!({"registration": "closed"}))
        .await;
    let free = admin_api
        .get(&format!("{V1}/username_available?username=zed"))
        .await
        .ok();
    assert_eq!(free, json!({"available": true}));
    let resp = admin_api
        .get(&format!("{V1}/username_available?username=alice"))
        .await;
    assert_error(&resp, 400, "M_USER_IN_USE");
    let resp = admin_api
        .get(&format!("{V1}/username_available?username=a%20b"))
        .await;
    assert_error(&resp, 400, "M_INVALID_USERNAME");
    let resp = admin_api.get(&format!("{V1}/username_available")).await;
    assert_error(&resp, 400, "M_MISSING_PARAM");
}

#[tokio::test]
async fn devices_and_whois() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let admin_api = api.as_user(&admin);
    let devices = format!("{V2}/users/{}/devices", enc(&alice.user_id));
    let device = |id: &str| format!("{devices}/{}", enc(id));

    let listed = admin_api.get(&devices).await.ok();
    assert_eq!(listed["total"], 1, "{listed}");
    let first = &listed["devices"][0];
    assert_eq!(
        keys(first),
        [
            "dehydrated",
            "device_id",
            "display_name",
            "last_seen_ip",
            "last_seen_ts",
            "last_seen_user_agent",
            "user_id"
        ]
    );
    assert_eq!(first["device_id"], alice.device_id.as_str());
    assert_eq!(first["user_id"], alice.user_id.as_str());
    assert_eq!(first["dehydrated"], false);

    let created = admin_api
        .post(&devices, json!({"device_id": "NEWDEV"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body, json!({}));
    // Again: nothing happens, still 201.
    let again = admin_api
        .post(&devices, json!({"device_id": "NEWDEV"}))
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_error(&admin_api.post(&devices, json!({})).await, 400, "M_UNKNOWN");
    let resp = admin_api.post(&devices, json!({"device_id": 7})).await;
    assert_error(&resp, 400, "M_UNKNOWN");
    assert_eq!(resp.body["error"], "device_id must be a string");

    let renamed = admin_api
        .put(&device("NEWDEV"), json!({"display_name": "Tablet"}))
        .await
        .ok();
    assert_eq!(renamed, json!({}));
    let shown = admin_api.get(&device("NEWDEV")).await.ok();
    assert_eq!(shown["display_name"], "Tablet");
    assert_eq!(shown["last_seen_ts"], Value::Null);
    let resp = admin_api.get(&device("NOPE")).await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    assert_eq!(resp.body["error"], "No device found");
    assert_error(
        &admin_api
            .put(&device("NOPE"), json!({"display_name": "x"}))
            .await,
        404,
        "M_NOT_FOUND",
    );

    // Deleting a device ends its session; a device she doesn't have is no error.
    assert_eq!(admin_api.delete(&device("NOPE")).await.ok(), json!({}));
    assert_eq!(
        admin_api.delete(&device(&alice.device_id)).await.ok(),
        json!({})
    );
    assert_error(&api.as_user(&alice).whoami().await, 401, "M_UNKNOWN_TOKEN");
    let bulk = format!("{V2}/users/{}/delete_devices", enc(&alice.user_id));
    assert_error(
        &admin_api.post(&bulk, json!({})).await,
        400,
        "M_MISSING_PARAM",
    );
    let resp = admin_api.post(&bulk, json!({"devices": ["NEWDEV"]})).await;
    assert_eq!(resp.ok(), json!({}));
    assert_eq!(admin_api.get(&devices).await.ok()["total"], 0);

    let nobody = format!("{V2}/users/{}/devices", enc("@nobody:a.test"));
    let resp = admin_api.get(&nobody).await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    assert_eq!(resp.body["error"], "Unknown user");
    let remote = format!("{V2}/users/{}/devices", enc("@x:b.test"));
    assert_error(&admin_api.get(&remote).await, 400, "M_UNKNOWN");

    // whois: admins ask about anyone, users about themselves.
    let alice = srv.login("a.test", "alice", "pw-alice-1").await;
    // Her device is seen (from an address) once she makes a request.
    api.as_user(&alice).whoami().await.ok();
    let bob = api.register("bob", "pw-bob-1").await;
    let whois = format!("{V1}/whois/{}", enc(&alice.user_id));
    let seen = admin_api.get(&whois).await.ok();
    assert_eq!(seen["user_id"], alice.user_id.as_str());
    let connections = &seen["devices"][""]["sessions"][0]["connections"];
    let connection = &connections[0];
    assert_eq!(
        keys(connection),
        ["ip", "last_seen", "user_agent"],
        "{seen}"
    );
    assert!(connection["last_seen"].as_i64().is_some(), "{seen}");
    api.as_user(&alice).get(&whois).await.ok();
    let client_whois = format!("{CS}/admin/whois/{}", enc(&alice.user_id));
    api.as_user(&alice).get(&client_whois).await.ok();
    assert_error(&api.as_user(&bob).get(&whois).await, 403, "M_FORBIDDEN");
    let resp = admin_api
        .get(&format!("{V1}/whois/{}", enc("@x:b.test")))
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");
}

#[tokio::test]
async fn a_suspended_user_may_read_and_leave_but_not_speak() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let bob = api.register("bob", "pw-bob-1").await;
    let bob_api = api.as_user(&bob);
    let alice_api = api.as_user(&alice);
    let room = create_room(&bob_api, json!({"preset": "public_chat"})).await;
    let other = create_room(&bob_api, json!({"preset": "public_chat"})).await;
    join(&alice_api, &room).await;
    let own = send_text(&alice_api, &room, "before").await;
    let bobs = send_text(&bob_api, &room, "bob's").await;
    let admin_api = api.as_user(&admin);
    let path = format!("{V1}/suspend/{}", enc(&alice.user_id));

    let resp = admin_api.put(&path, json!({})).await;
    assert_error(&resp, 400, "M_MISSING_PARAM");
    let resp = admin_api.put(&path, json!({"suspend": "yes"})).await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let done = admin_api.put(&path, json!({"suspend": true})).await.ok();
    assert_eq!(
        done,
        json!({format!("user_{}_suspended", alice.user_id): true})
    );
    let details = admin_api.get(&user_path(&alice.user_id)).await.ok();
    assert_eq!(details["suspended"], true);

    let resp = send_raw(
        &alice_api,
        &room,
        "m.room.message",
        json!({"body": "x", "msgtype": "m.text"}),
    )
    .await;
    assert_error(&resp, 403, "M_USER_SUSPENDED");
    assert_eq!(
        resp.body["error"],
        "Sending messages while account is suspended is not allowed."
    );
    assert_error(&join_raw(&alice_api, &other).await, 403, "M_USER_SUSPENDED");
    assert_error(
        &create_room_raw(&alice_api, json!({})).await,
        403,
        "M_USER_SUSPENDED",
    );
    let resp = alice_api
        .put(
            &format!("{CS}/profile/{}/displayname", enc(&alice.user_id)),
            json!({"displayname": "Loud"}),
        )
        .await;
    assert_error(&resp, 403, "M_USER_SUSPENDED");
    let redact = |event_id: &str| {
        format!(
            "{CS}/rooms/{}/redact/{}/{}",
            enc(&room),
            enc(event_id),
            txn_id()
        )
    };
    let resp = alice_api.put(&redact(&bobs), json!({})).await;
    assert_error(&resp, 403, "M_USER_SUSPENDED");
    // Her own events she may redact; reading and leaving stay open.
    alice_api.put(&redact(&own), json!({})).await.ok();
    alice_api
        .get(&format!("{CS}/rooms/{}/messages?dir=b", enc(&room)))
        .await
        .ok();
    alice_api.whoami().await.ok();

    assert_eq!(
        admin_api.put(&path, json!({"suspend": false})).await.ok(),
        json!({format!("user_{}_suspended", alice.user_id): false})
    );
    send_text(&alice_api, &room, "after").await;
    leave_raw(&alice_api, &room).await.ok();

    let resp = admin_api
        .put(
            &format!("{V1}/suspend/{}", enc("@nobody:a.test")),
            json!({"suspend": true}),
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let resp = admin_api
        .put(
            &format!("{V1}/suspend/{}", enc("@x:b.test")),
            json!({"suspend": true}),
        )
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");
}

#[tokio::test]
async fn a_shadow_banned_users_sends_reach_nobody() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let bob = api.register("bob", "pw-bob-1").await;
    let carol = api.register("carol", "pw-carol-1").await;
    let bob_api = api.as_user(&bob);
    let alice_api = api.as_user(&alice);
    let room = create_room(&bob_api, json!({"preset": "public_chat"})).await;
    join(&alice_api, &room).await;
    let admin_api = api.as_user(&admin);
    let path = v1_user(&alice.user_id, "shadow_ban");

    assert_eq!(admin_api.post(&path, json!({})).await.ok(), json!({}));
    assert_eq!(
        admin_api.get(&user_path(&alice.user_id)).await.ok()["shadow_banned"],
        true
    );
    // The send looks accepted: an event id, which no one can fetch.
    let ghost = send_text(&alice_api, &room, "spam").await;
    let resp = get_event_raw(&bob_api, &room, &ghost).await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let messages = bob_api
        .get(&format!(
            "{CS}/rooms/{}/messages?dir=b&limit=50",
            enc(&room)
        ))
        .await
        .ok();
    assert!(!messages.to_string().contains("spam"), "{messages}");
    // Invites look sent and reach nobody, in a room or with a new one.
    let resp = member_action(&alice_api, &room, "invite", &carol.user_id, None).await;
    assert_eq!(resp.ok(), json!({}));
    let own = create_room(&alice_api, json!({"invite": [carol.user_id]})).await;
    let carol_sync = sync(&api.as_user(&carol), None, None).await;
    let invited = &carol_sync["rooms"]["invite"];
    assert!(
        invited.get(&room).is_none() && invited.get(&own).is_none(),
        "{carol_sync}"
    );

    assert_eq!(admin_api.delete(&path).await.ok(), json!({}));
    let real = send_text(&alice_api, &room, "real").await;
    get_event_raw(&bob_api, &room, &real).await.ok();

    let resp = admin_api
        .post(&v1_user("@x:b.test", "shadow_ban"), json!({}))
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");
    assert_eq!(resp.body["error"], "Only local users can be shadow-banned");
}

#[tokio::test]
async fn a_locked_user_is_refused_until_unlocked() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let admin_api = api.as_user(&admin);
    put_user(&admin_api, &alice.user_id, json!({"locked": true}), 200).await;

    let resp = api.as_user(&alice).whoami().await;
    assert_error(&resp, 401, "M_USER_LOCKED");
    assert_eq!(resp.body["soft_logout"], true, "{}", resp.text);
    let resp = api.login_raw(login_body("alice", "pw-alice-1")).await;
    assert_error(&resp, 401, "M_USER_LOCKED");
    // A wrong password says nothing of the lock.
    let resp = api.login_raw(login_body("alice", "wrong")).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let details = admin_api.get(&user_path(&alice.user_id)).await.ok();
    assert_eq!(details["locked"], true);

    put_user(&admin_api, &alice.user_id, json!({"locked": false}), 200).await;
    api.as_user(&alice).whoami().await.ok();
}

#[tokio::test]
async fn a_rate_limit_override_bounds_the_users_sends() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let alice_api = api.as_user(&alice);
    let room = create_room(&alice_api, json!({})).await;
    let admin_api = api.as_user(&admin);
    let path = v1_user(&alice.user_id, "override_ratelimit");

    assert_eq!(admin_api.get(&path).await.ok(), json!({}));
    let set = admin_api
        .post(&path, json!({"messages_per_second": 1, "burst_count": 1}))
        .await
        .ok();
    assert_eq!(set, json!({"messages_per_second": 1, "burst_count": 1}));
    assert_eq!(admin_api.get(&path).await.ok(), set);
    send_text(&alice_api, &room, "one").await;
    let resp = send_raw(
        &alice_api,
        &room,
        "m.room.message",
        json!({"body": "two", "msgtype": "m.text"}),
    )
    .await;
    assert_error(&resp, 429, "M_LIMIT_EXCEEDED");
    assert!(
        resp.body["retry_after_ms"].as_u64().is_some(),
        "{}",
        resp.text
    );

    // Both 0: no limit of her own.
    let empty = post_empty(&admin_api, &path).await.ok();
    assert_eq!(empty, json!({"messages_per_second": 0, "burst_count": 0}));
    for n in 0..5 {
        send_text(&alice_api, &room, &format!("free {n}")).await;
    }
    assert_eq!(admin_api.delete(&path).await.ok(), json!({}));
    assert_eq!(admin_api.get(&path).await.ok(), json!({}));

    let resp = admin_api
        .post(&path, json!({"messages_per_second": -1}))
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    assert_eq!(resp.body["error"], "-1 parameter must be a positive int");
    let resp = admin_api.post(&path, json!({"burst_count": "2"})).await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    assert_eq!(resp.body["error"], "'2' parameter must be a positive int");
    assert_eq!(admin_api.get(&path).await.ok(), json!({}));
    let resp = admin_api
        .get(&v1_user("@nobody:a.test", "override_ratelimit"))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn an_admin_can_act_as_a_user_without_a_device_of_theirs() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let admin_api = api.as_user(&admin);
    let path = v1_user(&alice.user_id, "login");

    let token = post_empty(&admin_api, &path).await.ok();
    assert_eq!(keys(&token), ["access_token"]);
    let token = token["access_token"].as_str().expect("token").to_owned();
    let me = api.auth(&token).whoami().await.ok();
    assert_eq!(me["user_id"], alice.user_id.as_str());
    // Alice doesn't see it among her devices.
    let devices = api.as_user(&alice).get(&format!("{CS}/devices")).await.ok();
    assert_eq!(
        devices["devices"].as_array().map(Vec::len),
        Some(1),
        "{devices}"
    );
    // Its own logout ends it.
    api.auth(&token)
        .post(&format!("{CS}/logout"), json!({}))
        .await
        .ok();
    assert_error(&api.auth(&token).whoami().await, 401, "M_UNKNOWN_TOKEN");
    api.as_user(&alice).whoami().await.ok();

    // One that has ended already, and the admin's logout everywhere.
    let past = admin_api
        .post(&path, json!({"valid_until_ms": 1_000}))
        .await
        .ok();
    let past = past["access_token"].as_str().expect("token");
    assert_error(&api.auth(past).whoami().await, 401, "M_UNKNOWN_TOKEN");
    let token = admin_api.post(&path, json!({})).await.ok();
    let token = token["access_token"].as_str().expect("token");
    api.auth(token).whoami().await.ok();

    let resp = admin_api
        .post(&path, json!({"valid_until_ms": "soon"}))
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");
    let resp = admin_api
        .post(&v1_user(&admin.user_id, "login"), json!({}))
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");
    assert_eq!(resp.body["error"], "Cannot use admin API to login as self");
    let resp = admin_api
        .post(&v1_user("@nobody:a.test", "login"), json!({}))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let resp = admin_api
        .post(&v1_user("@x:b.test", "login"), json!({}))
        .await;
    assert_error(&resp, 400, "M_UNKNOWN");

    // Alice logging out everywhere leaves the admin's session as her; the admin's ends it.
    api.as_user(&alice)
        .post(&format!("{CS}/logout/all"), json!({}))
        .await
        .ok();
    api.auth(token).whoami().await.ok();
    admin_api
        .post(&format!("{CS}/logout/all"), json!({}))
        .await
        .ok();
    assert_error(&api.auth(token).whoami().await, 401, "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn what_an_admin_reads_about_a_user() {
    let (srv, admin, _) = tenants_with_admins().await;
    let api = srv.on("a.test");
    let alice = api.register("alice", "pw-alice-1").await;
    let bob = api.register("bob", "pw-bob-1").await;
    let alice_api = api.as_user(&alice);
    let before = now_ms();
    let kept = create_room(&alice_api, json!({"preset": "public_chat"})).await;
    let left = create_room(&alice_api, json!({"preset": "public_chat"})).await;
    invite(&alice_api, &kept, &bob.user_id).await;
    leave_raw(&alice_api, &left).await.ok();
    alice_api
        .put(
            &format!(
                "{CS}/user/{}/account_data/org.example.global",
                enc(&alice.user_id)
            ),
            json!({"a": 1}),
        )
        .await
        .ok();
    alice_api
        .put(
            &format!(
                "{CS}/user/{}/rooms/{}/account_data/org.example.room",
                enc(&alice.user_id),
                enc(&kept)
            ),
            json!({"b": 2}),
        )
        .await
        .ok();
    let admin_api = api.as_user(&admin);

    let joined = admin_api
        .get(&v1_user(&alice.user_id, "joined_rooms"))
        .await
        .ok();
    assert_eq!(joined, json!({"joined_rooms": [kept], "total": 1}));
    let memberships = admin_api
        .get(&v1_user(&alice.user_id, "memberships"))
        .await
        .ok();
    assert_eq!(
        memberships,
        json!({"memberships": {kept.clone(): "join", left.clone(): "leave"}})
    );
    // Bob's invite shows among his memberships; users the tenant doesn't know have none.
    let bobs = admin_api
        .get(&v1_user(&bob.user_id, "memberships"))
        .await
        .ok();
    assert_eq!(bobs, json!({"memberships": {kept.clone(): "invite"}}));
    let nobody = admin_api
        .get(&v1_user("@nobody:b.test", "joined_rooms"))
        .await
        .ok();
    assert_eq!(nobody, json!({"joined_rooms": [], "total": 0}));

    let count = |what: &str, from_ts: i64| {
        let admin_api = admin_api.clone();
        let path = format!("{}?from_ts={from_ts}", v1_user(&alice.user_id, what));
        async move { admin_api.get(&path).await.ok() }
    };
    assert_eq!(
        count("sent_invite_count", before).await,
        json!({"invite_count": 1})
    );
    assert_eq!(
        count("sent_invite_count", now_ms() + 60_000).await,
        json!({"invite_count": 0})
    );
    assert_eq!(
        count("cumulative_joined_room_count", before).await,
        json!({"cumulative_joined_room_count": 2})
    );
    let resp = admin_api
        .get(&v1_user(&alice.user_id, "sent_invite_count"))
        .await;
    assert_error(&resp, 400, "M_MISSING_PARAM");
    let resp = admin_api
        .get(&format!(
            "{}?from_ts=-5",
            v1_user(&alice.user_id, "cumulative_joined_room_count")
        ))
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");

    let data = admin_api
        .get(&v1_user(&alice.user_id, "accountdata"))
        .await
        .ok();
    assert_eq!(
        data["account_data"]["global"]["org.example.global"],
        json!({"a": 1}),
        "{data}"
    );
    assert_eq!(
        data["account_data"]["rooms"][&kept]["org.example.room"],
        json!({"b": 2}),
        "{data}"
    );
    let resp = admin_api
        .get(&v1_user("@nobody:a.test", "accountdata"))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");

    // maas has no pushers: every user's list is empty.
    let pushers = admin_api
        .get(&v1_user(&alice.user_id, "pushers"))
        .await
        .ok();
    assert_eq!(pushers, json!({"pushers": [], "total": 0}));
    let resp = admin_api.get(&v1_user("@nobody:a.test", "pushers")).await;
    assert_error(&resp, 404, "M_NOT_FOUND");

    // Synapse's experimental features, none of which maas has to switch on.
    let features = format!("{V1}/experimental_features/{}", enc(&alice.user_id));
    let listed = admin_api.get(&features).await.ok();
    assert_eq!(
        listed,
        json!({"features": {"msc3881": false, "msc3575": false, "msc4222": false}})
    );
    let off = json!({"features": {"msc3575": false}});
    assert_eq!(admin_api.put(&features, off).await.ok(), json!({}));
    let on = json!({"features": {"msc3575": true}});
    assert_error(&admin_api.put(&features, on).await, 400, "M_UNKNOWN");
    let unknown = json!({"features": {"msc9999": false}});
    let resp = admin_api.put(&features, unknown).await;
    assert_error(&resp, 400, "M_UNKNOWN");
    assert_eq!(
        resp.body["error"],
        "'msc9999' is not recognised as a valid experimental feature."
    );
    let resp = admin_api.put(&features, json!({})).await;
    assert_error(&resp, 400, "M_UNKNOWN");
    assert_eq!(resp.body["error"], "You must provide features to set.");
    assert_eq!(admin_api.get(&features).await.ok(), listed);
}
