//! `GET|PUT /profile/{userId}/displayname|avatar_url`, `GET /profile/{userId}`.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn set_and_get_displayname_and_avatar() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let a = api.register("alice", "pw-alice-1").await;
    let me = api.as_user(&a);
    let uid = enc(&a.user_id);

    let resp = api
        .put(
            &format!("{CS}/profile/{uid}/displayname"),
            json!({"displayname": "Alice"}),
        )
        .await;
    assert_error(&resp, 401, "M_MISSING_TOKEN");

    let body = me
        .put(
            &format!("{CS}/profile/{uid}/displayname"),
            json!({"displayname": "Alice A."}),
        )
        .await
        .ok();
    assert_eq!(body, json!({}));
    let body = me
        .get(&format!("{CS}/profile/{uid}/displayname"))
        .await
        .ok();
    assert_eq!(body["displayname"], "Alice A.", "{body}");

    let body = me
        .put(
            &format!("{CS}/profile/{uid}/avatar_url"),
            json!({"avatar_url": "mxc://localhost/abcDEF123"}),
        )
        .await
        .ok();
    assert_eq!(body, json!({}));
    let body = me.get(&format!("{CS}/profile/{uid}/avatar_url")).await.ok();
    assert_eq!(body["avatar_url"], "mxc://localhost/abcDEF123", "{body}");

    let body = me.get(&format!("{CS}/profile/{uid}")).await.ok();
    assert_eq!(body["displayname"], "Alice A.", "{body}");
    assert_eq!(body["avatar_url"], "mxc://localhost/abcDEF123", "{body}");

    // Another user sees the same profile.
    let b = api.register("bob", "pw-bob-1").await;
    let body = api
        .as_user(&b)
        .get(&format!("{CS}/profile/{uid}"))
        .await
        .ok();
    assert_eq!(body["displayname"], "Alice A.", "{body}");

    // Changing the display name again replaces it.
    me.put(
        &format!("{CS}/profile/{uid}/displayname"),
        json!({"displayname": "Al"}),
    )
    .await
    .ok();
    let body = me
        .get(&format!("{CS}/profile/{uid}/displayname"))
        .await
        .ok();
    assert_eq!(body["displayname"], "Al", "{body}");
}

#[tokio::test]
async fn profile_of_another_user_is_read_only() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let a = api.register("alice", "pw-alice-1").await;
    let b = api.register("bob", "pw-bob-1").await;
    let uid = enc(&a.user_id);
    api.as_user(&a)
        .put(
            &format!("{CS}/profile/{uid}/displayname"),
            json!({"displayname": "Alice"}),
        )
        .await
        .ok();

    let resp = api
        .as_user(&b)
        .put(
            &format!("{CS}/profile/{uid}/displayname"),
            json!({"displayname": "pwned"}),
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let resp = api
        .as_user(&b)
        .put(
            &format!("{CS}/profile/{uid}/avatar_url"),
            json!({"avatar_url": "mxc://localhost/evil"}),
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let body = api
        .as_user(&a)
        .get(&format!("{CS}/profile/{uid}"))
        .await
        .ok();
    assert_eq!(body["displayname"], "Alice", "{body}");
    assert_ne!(
        body.get("avatar_url"),
        Some(&json!("mxc://localhost/evil")),
        "{body}"
    );
}

#[tokio::test]
async fn profile_of_unknown_user_is_404() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let a = api.register("alice", "pw-alice-1").await;
    let me = api.as_user(&a);
    let nobody = enc("@nobody:localhost");
    assert_error(
        &me.get(&format!("{CS}/profile/{nobody}")).await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &me.get(&format!("{CS}/profile/{nobody}/displayname")).await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &me.get(&format!("{CS}/profile/{nobody}/avatar_url")).await,
        404,
        "M_NOT_FOUND",
    );
    // A user of another tenant of this process is not a local user here.
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.register("a.test", "carol", "pw-carol-1").await;
    let resp = me
        .get(&format!(
            "{CS}/profile/{}/displayname",
            enc("@carol:localhost")
        ))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}
