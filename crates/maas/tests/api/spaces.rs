//! Space hierarchies (spec: Client-Server API, "Spaces", `GET /rooms/{roomId}/hierarchy`;
//! Server-Server API, `GET /hierarchy/{roomId}`): a space's rooms depth first and once each,
//! filtered by suggestion, depth and what the user may see, a page at a time; and the rooms of
//! another tenant's space, asked of that tenant over the in-process federation.

use reqwest::Method;
use serde_json::{Value, json};

use crate::federation_queries::{signing_key, x_matrix};
use crate::harness::*;
use crate::room_support::*;

const V1: &str = "/_matrix/client/v1";

/// Creates a public space (`creation_content.type` is `m.space`) named `name`, with `extra`
/// fields of `createRoom`.
async fn create_space(api: &Api<'_>, name: &str, extra: Value) -> String {
    let mut body = json!({
        "preset": "public_chat",
        "name": name,
        "creation_content": {"type": "m.space"},
    });
    merge(&mut body, extra);
    create_room(api, body).await
}

/// Creates a room named `name` with the `preset`, and `extra` fields of `createRoom`.
async fn create_named(api: &Api<'_>, preset: &str, name: &str, extra: Value) -> String {
    let mut body = json!({"preset": preset, "name": name});
    merge(&mut body, extra);
    create_room(api, body).await
}

fn merge(body: &mut Value, extra: Value) {
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
}

async fn add_child(api: &Api<'_>, space: &str, child: &str, content: Value) {
    put_state(api, space, "m.space.child", child, content).await;
}

async fn hierarchy_raw(api: &Api<'_>, room_id: &str, query: &str) -> Resp {
    api.get(&format!("{V1}/rooms/{}/hierarchy{query}", enc(room_id)))
        .await
}

async fn hierarchy(api: &Api<'_>, room_id: &str, query: &str) -> Value {
    hierarchy_raw(api, room_id, query).await.ok()
}

fn room_ids(page: &Value) -> Vec<String> {
    page["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("no rooms: {page}"))
        .iter()
        .map(|r| r["room_id"].as_str().expect("room_id").to_owned())
        .collect()
}

/// The entry of `room_id` in a page.
fn entry<'a>(page: &'a Value, room_id: &str) -> &'a Value {
    page["rooms"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|r| r["room_id"] == room_id))
        .unwrap_or_else(|| panic!("{room_id} not in {page}"))
}

/// The state keys of an entry's `children_state`, in order.
fn children_of(entry: &Value) -> Vec<String> {
    entry["children_state"]
        .as_array()
        .unwrap_or_else(|| panic!("no children_state: {entry}"))
        .iter()
        .map(|e| e["state_key"].as_str().expect("state_key").to_owned())
        .collect()
}

/// A summary's join rule; ruma leaves `public` out, as the spec allows.
fn join_rule(entry: &Value) -> &str {
    entry["join_rule"].as_str().unwrap_or("public")
}

/// Alice's space on `localhost`:
///
/// ```text
/// Space ── General (suggested)
///       ── Subspace ── Nested
///       │           └─ Space (a loop)
///       ── Private (invite only, encrypted)
///       ── Old (no `via`: removed)
/// ```
struct Tree {
    space: String,
    general: String,
    sub: String,
    nested: String,
    private: String,
}

impl Tree {
    /// Every room, depth first in the spec's order of children.
    fn all(&self) -> Vec<String> {
        [
            &self.space,
            &self.general,
            &self.sub,
            &self.nested,
            &self.private,
        ]
        .map(String::clone)
        .to_vec()
    }
}

async fn tree(api: &Api<'_>) -> Tree {
    let space = create_space(api, "Space", json!({"topic": "Everything"})).await;
    let general = create_named(api, "public_chat", "General", json!({"topic": "Talk"})).await;
    let sub = create_space(api, "Subspace", json!({})).await;
    let nested = create_named(api, "public_chat", "Nested", json!({})).await;
    let encrypted = json!({"initial_state": [{
        "type": "m.room.encryption",
        "state_key": "",
        "content": {"algorithm": "m.megolm.v1.aes-sha2"},
    }]});
    let private = create_named(api, "private_chat", "Private", encrypted).await;
    let old = create_named(api, "public_chat", "Old", json!({})).await;
    let via = json!(["localhost"]);
    add_child(
        api,
        &space,
        &general,
        json!({"via": via, "order": "a", "suggested": true}),
    )
    .await;
    add_child(api, &space, &sub, json!({"via": via, "order": "b"})).await;
    add_child(api, &space, &private, json!({"via": via, "order": "c"})).await;
    add_child(api, &space, &old, json!({})).await;
    add_child(api, &sub, &nested, json!({"via": via})).await;
    add_child(api, &sub, &space, json!({"via": via})).await;
    Tree {
        space,
        general,
        sub,
        nested,
        private,
    }
}

#[tokio::test]
async fn a_space_lists_its_rooms_depth_first_and_each_once() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let tree = tree(&api).await;

    let page = hierarchy(&api, &tree.space, "").await;
    assert_eq!(room_ids(&page), tree.all(), "{page}");
    assert!(page["next_batch"].is_null(), "{page}");

    let space = entry(&page, &tree.space);
    assert_eq!(space["name"], "Space");
    assert_eq!(space["topic"], "Everything");
    assert_eq!(space["room_type"], "m.space");
    assert_eq!(join_rule(space), "public");
    assert_eq!(space["num_joined_members"], 1);
    assert_eq!(space["world_readable"], false);
    assert_eq!(space["guest_can_join"], false);
    assert_eq!(space["room_version"], "12");
    // The child without `via` is no child.
    assert_eq!(
        children_of(space),
        [
            tree.general.as_str(),
            tree.sub.as_str(),
            tree.private.as_str()
        ]
    );
    let first = &space["children_state"][0];
    assert_eq!(first["type"], "m.space.child");
    assert_eq!(first["sender"], alice.user_id.as_str());
    assert!(first["origin_server_ts"].is_u64(), "{first}");
    assert_eq!(first["content"]["via"], json!(["localhost"]));
    assert_eq!(first["content"]["suggested"], true);

    let general = entry(&page, &tree.general);
    assert_eq!(general["name"], "General");
    assert_eq!(general["topic"], "Talk");
    assert!(general["room_type"].is_null(), "{general}");
    assert_eq!(children_of(general), Vec::<String>::new());
    // The loop back to the space is in the subspace's state, but the space is shown once.
    assert_eq!(
        children_of(entry(&page, &tree.sub)),
        [tree.nested.as_str(), tree.space.as_str()]
    );
    let private = entry(&page, &tree.private);
    assert_eq!(join_rule(private), "invite");
    assert_eq!(private["encryption"], "m.megolm.v1.aes-sha2");
}

#[tokio::test]
async fn suggested_only_and_max_depth_narrow_the_walk() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let tree = tree(&api).await;

    let suggested = hierarchy(&api, &tree.space, "?suggested_only=true").await;
    assert_eq!(
        room_ids(&suggested),
        [tree.space.as_str(), tree.general.as_str()],
        "{suggested}"
    );
    assert_eq!(
        children_of(entry(&suggested, &tree.space)),
        [tree.general.as_str()]
    );

    let root_only = hierarchy(&api, &tree.space, "?max_depth=0").await;
    assert_eq!(room_ids(&root_only), [tree.space.as_str()], "{root_only}");
    // The root's children are still told of, though not walked into.
    assert_eq!(children_of(entry(&root_only, &tree.space)).len(), 3);

    let one_level = hierarchy(&api, &tree.space, "?max_depth=1").await;
    assert_eq!(
        room_ids(&one_level),
        [
            tree.space.as_str(),
            tree.general.as_str(),
            tree.sub.as_str(),
            tree.private.as_str()
        ],
        "{one_level}"
    );
}

#[tokio::test]
async fn pages_follow_one_another_and_bad_tokens_are_refused() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let tree = tree(&api).await;

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut query = "?limit=2".to_owned();
    loop {
        let page = hierarchy(&api, &tree.space, &query).await;
        let ids = room_ids(&page);
        assert!(!ids.is_empty() && ids.len() <= 2, "{page}");
        seen.extend(ids);
        pages += 1;
        match page["next_batch"].as_str() {
            Some(token) => query = format!("?limit=2&from={}", enc(token)),
            None => break,
        }
        assert!(pages < 10, "no end to the pages: {seen:?}");
    }
    assert_eq!(seen, tree.all());
    assert_eq!(pages, 3);

    let first = hierarchy(&api, &tree.space, "?limit=1").await;
    let token = enc(first["next_batch"].as_str().expect("next_batch"));
    for query in [
        format!("?from={token}&max_depth=1"),
        format!("?from={token}&suggested_only=true"),
        "?from=not-a-token".to_owned(),
        "?limit=0".to_owned(),
    ] {
        let resp = hierarchy_raw(&api, &tree.space, &query).await;
        assert_error(&resp, 400, "M_INVALID_PARAM");
    }
    // A token is for the room it was made for.
    let resp = hierarchy_raw(&api, &tree.sub, &format!("?from={token}")).await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    // Another page size is fine.
    let rest = hierarchy(&api, &tree.space, &format!("?from={token}&limit=10")).await;
    assert_eq!(room_ids(&rest), tree.all()[1..], "{rest}");
}

#[tokio::test]
async fn a_user_sees_only_the_rooms_they_may_see() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let as_bob = srv.on("localhost").as_user(&bob);
    let tree = tree(&api).await;
    let members_only = create_named(
        &api,
        "private_chat",
        "Members of the subspace",
        json!({"initial_state": [{
            "type": "m.room.join_rules",
            "state_key": "",
            "content": {
                "join_rule": "restricted",
                "allow": [{"type": "m.room_membership", "room_id": tree.sub}],
            },
        }]}),
    )
    .await;
    let readable = create_named(
        &api,
        "private_chat",
        "Readable",
        json!({"initial_state": [{
            "type": "m.room.history_visibility",
            "state_key": "",
            "content": {"history_visibility": "world_readable"},
        }]}),
    )
    .await;
    let via = json!(["localhost"]);
    add_child(
        &api,
        &tree.space,
        &members_only,
        json!({"via": via, "order": "d"}),
    )
    .await;
    add_child(
        &api,
        &tree.space,
        &readable,
        json!({"via": via, "order": "e"}),
    )
    .await;

    // Bob is in none of the rooms: he sees the public and world-readable ones.
    let page = hierarchy(&as_bob, &tree.space, "").await;
    let public = [
        tree.space.as_str(),
        tree.general.as_str(),
        tree.sub.as_str(),
        tree.nested.as_str(),
        readable.as_str(),
    ];
    assert_eq!(room_ids(&page), public, "{page}");
    assert_eq!(entry(&page, &readable)["world_readable"], true);
    // Still told of as children of the space.
    assert_eq!(children_of(entry(&page, &tree.space)).len(), 5);

    // Invited, or joined to the room a restricted room allows, he sees those too.
    invite(&api, &tree.private, &bob.user_id).await;
    join(&as_bob, &tree.sub).await;
    let page = hierarchy(&as_bob, &tree.space, "").await;
    let mut expected = tree.all();
    expected.extend([members_only.clone(), readable.clone()]);
    assert_eq!(room_ids(&page), expected, "{page}");
    let restricted = entry(&page, &members_only);
    assert_eq!(restricted["join_rule"], "restricted");
    assert_eq!(restricted["allowed_room_ids"], json!([tree.sub]));
}

#[tokio::test]
async fn a_space_the_user_may_not_see_is_forbidden() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost").as_user(&alice);
    let as_bob = srv.on("localhost").as_user(&bob);
    let private = create_space(&api, "Private space", json!({"preset": "private_chat"})).await;

    let resp = hierarchy_raw(&as_bob, &private, "").await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // The spec answers a room that doesn't exist alike, so ids tell nothing.
    let resp = hierarchy_raw(&as_bob, "!unknown:localhost", "").await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // Banned from a public space, a user doesn't see it either.
    let public = create_space(&api, "Public space", json!({})).await;
    join(&as_bob, &public).await;
    let ban = member_action(&api, &public, "ban", &bob.user_id, None).await;
    assert_eq!(ban.status, 200, "{}", ban.text);
    let resp = hierarchy_raw(&as_bob, &public, "").await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // Without a token, nobody gets anything.
    let resp = hierarchy_raw(&srv.on("localhost"), &public, "").await;
    assert_error(&resp, 401, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn a_child_no_server_answers_for_is_left_out() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let api = srv.on("localhost").as_user(&alice);
    let space = create_space(&api, "Space", json!({})).await;
    let general = create_named(&api, "public_chat", "General", json!({})).await;
    // Nothing listens on port 1; no tenant here knows the other room.
    add_child(
        &api,
        &space,
        "!away:127.0.0.1:1",
        json!({"via": ["127.0.0.1:1"]}),
    )
    .await;
    add_child(
        &api,
        &space,
        "!unknown:localhost",
        json!({"via": ["localhost"]}),
    )
    .await;
    add_child(&api, &space, &general, json!({"via": ["localhost"]})).await;

    let page = hierarchy(&api, &space, "").await;
    assert_eq!(
        room_ids(&page),
        [space.as_str(), general.as_str()],
        "{page}"
    );
    assert_eq!(children_of(entry(&page, &space)).len(), 3);
}

// ----- across tenants -----

/// Two tenants; Alice's space on a.test (in room version `version`):
///
/// ```text
/// Space ── Lobby (suggested)
///       ── Subspace ── Nested
///       ── Secret (invite only)
/// ```
struct Remote {
    srv: TestServer,
    alice: Session,
    bob: Session,
    space: String,
    lobby: String,
    sub: String,
    nested: String,
    secret: String,
}

async fn remote_tree(version: &str) -> Remote {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    let alice = srv.register("a.test", "alice", "password-alice").await;
    let bob = srv.register("b.test", "bob", "password-bob").await;
    let api = srv.on("a.test").as_user(&alice);
    let version = json!({"room_version": version});
    let space = create_space(&api, "Space", version.clone()).await;
    let lobby = create_named(&api, "public_chat", "Lobby", version.clone()).await;
    let sub = create_space(&api, "Subspace", version.clone()).await;
    let nested = create_named(&api, "public_chat", "Nested", version.clone()).await;
    let secret = create_named(&api, "private_chat", "Secret", version).await;
    let via = json!(["a.test"]);
    add_child(
        &api,
        &space,
        &lobby,
        json!({"via": via, "order": "a", "suggested": true}),
    )
    .await;
    add_child(&api, &space, &sub, json!({"via": via, "order": "b"})).await;
    add_child(&api, &space, &secret, json!({"via": via, "order": "c"})).await;
    add_child(&api, &sub, &nested, json!({"via": via})).await;
    Remote {
        srv,
        alice,
        bob,
        space,
        lobby,
        sub,
        nested,
        secret,
    }
}

#[tokio::test]
async fn a_user_lists_a_space_whose_rooms_are_on_another_tenant() {
    let remote = remote_tree("12").await;
    let as_bob = remote.srv.on("b.test").as_user(&remote.bob);
    // Bob's server is in the space, but in none of its rooms: it asks a.test for them.
    let joined = as_bob
        .post(
            &format!("{CS}/join/{}?via=a.test", enc(&remote.space)),
            json!({}),
        )
        .await;
    assert_eq!(joined.status, 200, "{}", joined.text);

    let page = hierarchy(&as_bob, &remote.space, "").await;
    assert_eq!(
        room_ids(&page),
        [
            remote.space.as_str(),
            remote.lobby.as_str(),
            remote.sub.as_str(),
            remote.nested.as_str()
        ],
        "{page}"
    );
    assert_eq!(entry(&page, &remote.space)["num_joined_members"], 2);
    let lobby = entry(&page, &remote.lobby);
    assert_eq!(lobby["name"], "Lobby");
    assert_eq!(lobby["num_joined_members"], 1);
    assert_eq!(entry(&page, &remote.sub)["room_type"], "m.space");
    assert_eq!(
        children_of(entry(&page, &remote.sub)),
        [remote.nested.as_str()]
    );
    assert_eq!(entry(&page, &remote.nested)["name"], "Nested");

    let suggested = hierarchy(&as_bob, &remote.space, "?suggested_only=true").await;
    assert_eq!(
        room_ids(&suggested),
        [remote.space.as_str(), remote.lobby.as_str()],
        "{suggested}"
    );

    // Invited to the secret room, Bob sees it: a.test now tells his server of it.
    let api = remote.srv.on("a.test").as_user(&remote.alice);
    invite(&api, &remote.secret, &remote.bob.user_id).await;
    let page = hierarchy(&as_bob, &remote.space, "").await;
    assert_eq!(entry(&page, &remote.secret)["name"], "Secret", "{page}");
}

#[tokio::test]
async fn a_user_previews_a_space_of_another_tenant_without_joining() {
    // Room ids of version 11 name their server: that is who is asked about the root.
    let remote = remote_tree("11").await;
    let as_bob = remote.srv.on("b.test").as_user(&remote.bob);
    let page = hierarchy(&as_bob, &remote.space, "").await;
    assert_eq!(
        room_ids(&page),
        [
            remote.space.as_str(),
            remote.lobby.as_str(),
            remote.sub.as_str(),
            remote.nested.as_str()
        ],
        "{page}"
    );
    assert_eq!(entry(&page, &remote.space)["room_version"], "11");

    let api = remote.srv.on("a.test").as_user(&remote.alice);
    let private = create_space(
        &api,
        "Private",
        json!({"preset": "private_chat", "room_version": "11"}),
    )
    .await;
    let resp = hierarchy_raw(&as_bob, &private, "").await;
    assert_error(&resp, 403, "M_FORBIDDEN");
}

async fn federation_get(
    remote: &Remote,
    key: &ruma::signatures::Ed25519KeyPair,
    path: &str,
) -> Resp {
    let auth = x_matrix("GET", path, None, "b.test", "a.test", key);
    let builder = remote
        .srv
        .on("a.test")
        .builder(Method::GET, path)
        .header("Authorization", auth);
    TestServer::send(builder).await
}

fn federation_path(room_id: &str, query: &str) -> String {
    format!("/_matrix/federation/v1/hierarchy/{}{query}", enc(room_id))
}

fn sorted(values: &Value) -> Vec<String> {
    let mut ids: Vec<String> = values
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {values}"))
        .iter()
        .map(|v| {
            v.as_str()
                .or_else(|| v["room_id"].as_str())
                .expect("room id")
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn another_server_is_told_of_a_space_and_the_children_it_may_see() {
    let remote = remote_tree("12").await;
    let key = signing_key(&remote.srv, "b.test").await;

    let answer = federation_get(&remote, &key, &federation_path(&remote.space, ""))
        .await
        .ok();
    assert_eq!(answer["room"]["room_id"], remote.space.as_str(), "{answer}");
    assert_eq!(answer["room"]["name"], "Space");
    assert_eq!(
        children_of(&answer["room"]),
        [
            remote.lobby.as_str(),
            remote.sub.as_str(),
            remote.secret.as_str()
        ]
    );
    let mut expected = vec![remote.lobby.clone(), remote.sub.clone()];
    expected.sort();
    assert_eq!(sorted(&answer["children"]), expected, "{answer}");
    assert_eq!(answer["inaccessible_children"], json!([remote.secret]));

    let suggested = federation_path(&remote.space, "?suggested_only=true");
    let answer = federation_get(&remote, &key, &suggested).await.ok();
    assert_eq!(
        sorted(&answer["children"]),
        [remote.lobby.as_str()],
        "{answer}"
    );

    // A room b.test can neither peek into nor join, and one a.test doesn't know: not found.
    for room_id in [remote.secret.as_str(), "!unknown:a.test"] {
        let resp = federation_get(&remote, &key, &federation_path(room_id, "")).await;
        assert_error(&resp, 404, "M_NOT_FOUND");
    }
    // Unsigned, it is refused like every federation request.
    let unsigned = remote
        .srv
        .on("a.test")
        .builder(Method::GET, &federation_path(&remote.space, ""));
    assert_error(&TestServer::send(unsigned).await, 401, "M_UNAUTHORIZED");

    // The space's server ACL shuts b.test out.
    let api = remote.srv.on("a.test").as_user(&remote.alice);
    let acl = json!({"allow": ["*"], "deny": ["b.test"], "allow_ip_literals": false});
    put_state(&api, &remote.space, "m.room.server_acl", "", acl).await;
    let resp = federation_get(&remote, &key, &federation_path(&remote.space, "")).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
}
