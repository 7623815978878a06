//! `GET /pushrules/`, `GET /pushrules/global/`, `GET|PUT|DELETE
//! /pushrules/global/{kind}/{ruleId}` and its `enabled` and `actions`.

use serde_json::{Value, json};

use crate::harness::*;

const RULES: &str = "/_matrix/client/v3/pushrules";

/// The rule ids of one kind of a ruleset, in order.
fn ids(global: &Value, kind: &str) -> Vec<String> {
    global[kind]
        .as_array()
        .unwrap_or_else(|| panic!("no {kind} rules in {global}"))
        .iter()
        .map(|r| r["rule_id"].as_str().unwrap().to_owned())
        .collect()
}

fn rule<'a>(global: &'a Value, kind: &str, id: &str) -> &'a Value {
    global[kind]
        .as_array()
        .and_then(|rules| rules.iter().find(|r| r["rule_id"] == id))
        .unwrap_or_else(|| panic!("no {kind} rule {id} in {global}"))
}

#[tokio::test]
async fn default_ruleset_is_the_specs() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let a = api.register("alice", "pw-alice-1").await;
    let me = api.as_user(&a);

    assert_error(&api.get(&format!("{RULES}/")).await, 401, "M_MISSING_TOKEN");

    let body = me.get(&format!("{RULES}/")).await.ok();
    let global = &body["global"];
    let overrides = ids(global, "override");
    assert_eq!(overrides[0], ".m.rule.master", "{global}");
    for id in [
        ".m.rule.suppress_notices",
        ".m.rule.invite_for_me",
        ".m.rule.member_event",
        ".m.rule.is_user_mention",
        ".m.rule.contains_display_name",
        ".m.rule.is_room_mention",
        ".m.rule.roomnotif",
        ".m.rule.tombstone",
        ".m.rule.reaction",
        ".m.rule.room.server_acl",
        ".m.rule.suppress_edits",
    ] {
        assert!(overrides.iter().any(|o| o == id), "{id} missing: {global}");
    }
    let underrides = ids(global, "underride");
    for id in [
        ".m.rule.call",
        ".m.rule.encrypted_room_one_to_one",
        ".m.rule.room_one_to_one",
        ".m.rule.message",
        ".m.rule.encrypted",
    ] {
        assert!(underrides.iter().any(|u| u == id), "{id} missing: {global}");
    }
    let master = rule(global, "override", ".m.rule.master");
    assert_eq!(master["default"], true);
    assert_eq!(master["enabled"], false);
    assert_eq!(master["actions"], json!([]));
    let user_name = rule(global, "content", ".m.rule.contains_user_name");
    assert_eq!(user_name["pattern"], "alice");
    let invite = rule(global, "override", ".m.rule.invite_for_me");
    assert!(
        invite["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["key"] == "state_key" && c["pattern"] == a.user_id),
        "{invite}"
    );
    assert_eq!(
        rule(global, "underride", ".m.rule.message")["actions"],
        json!(["notify"])
    );

    // `/pushrules/global/` is the same ruleset without the wrapper.
    let scoped = me.get(&format!("{RULES}/global/")).await.ok();
    assert_eq!(&scoped, global);

    // One rule at a time.
    let body = me
        .get(&format!("{RULES}/global/override/.m.rule.is_user_mention"))
        .await
        .ok();
    assert_eq!(body["rule_id"], ".m.rule.is_user_mention");
    assert_eq!(body["default"], true);
    assert_eq!(body["enabled"], true);
    assert!(body["conditions"].is_array(), "{body}");
    let body = me
        .get(&format!(
            "{RULES}/global/content/.m.rule.contains_user_name"
        ))
        .await
        .ok();
    assert_eq!(body["pattern"], "alice", "{body}");
}

#[tokio::test]
async fn custom_rules_can_be_created_moved_and_deleted() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let a = api.register("alice", "pw-alice-1").await;
    let b = api.register("bob", "pw-bob-1").await;
    let me = api.as_user(&a);

    let first = json!({
        "conditions": [{"kind": "event_match", "key": "content.body", "pattern": "cake*"}],
        "actions": ["notify", {"set_tweak": "sound", "value": "bing"}]
    });
    let body = me
        .put(&format!("{RULES}/global/override/my.cake"), first.clone())
        .await
        .ok();
    assert_eq!(body, json!({}));
    let body = me
        .get(&format!("{RULES}/global/override/my.cake"))
        .await
        .ok();
    assert_eq!(body["rule_id"], "my.cake");
    assert_eq!(body["default"], false);
    assert_eq!(body["enabled"], true);
    assert_eq!(body["conditions"], first["conditions"]);
    assert_eq!(body["actions"], first["actions"]);
    // A new override rule comes right after the master rule.
    let global = me.get(&format!("{RULES}/")).await.ok()["global"].clone();
    assert_eq!(ids(&global, "override")[..2], [".m.rule.master", "my.cake"]);

    // `before` and `after` place a rule relative to another user-defined rule.
    let second = json!({"conditions": [], "actions": []});
    me.put(
        &format!("{RULES}/global/override/my.pie?after=my.cake"),
        second.clone(),
    )
    .await
    .ok();
    me.put(
        &format!("{RULES}/global/override/my.tart?before=my.cake"),
        second.clone(),
    )
    .await
    .ok();
    let global = me.get(&format!("{RULES}/")).await.ok()["global"].clone();
    assert_eq!(
        ids(&global, "override")[..4],
        [".m.rule.master", "my.tart", "my.cake", "my.pie"]
    );
    let resp = me
        .put(
            &format!("{RULES}/global/override/my.flan?after=no.such.rule"),
            second.clone(),
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let resp = me
        .put(
            &format!("{RULES}/global/override/my.flan?before=.m.rule.master"),
            second.clone(),
        )
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");

    // Replacing a rule keeps its place and replaces its content.
    let replaced = json!({"conditions": [], "actions": ["notify"]});
    me.put(&format!("{RULES}/global/override/my.cake"), replaced)
        .await
        .ok();
    let global = me.get(&format!("{RULES}/")).await.ok()["global"].clone();
    assert_eq!(
        ids(&global, "override")[..4],
        [".m.rule.master", "my.tart", "my.cake", "my.pie"]
    );
    assert_eq!(
        rule(&global, "override", "my.cake")["actions"],
        json!(["notify"])
    );

    // Room, sender and content rules.
    let room = "!somewhere:localhost";
    me.put(
        &format!("{RULES}/global/room/{}", enc(room)),
        json!({"actions": []}),
    )
    .await
    .ok();
    me.put(
        &format!("{RULES}/global/sender/{}", enc(&b.user_id)),
        json!({"actions": ["notify"]}),
    )
    .await
    .ok();
    me.put(
        &format!("{RULES}/global/content/my.word"),
        json!({"pattern": "lunch", "actions": ["notify"]}),
    )
    .await
    .ok();
    let global = me.get(&format!("{RULES}/")).await.ok()["global"].clone();
    assert_eq!(ids(&global, "room"), [room]);
    assert_eq!(ids(&global, "sender"), [b.user_id.as_str()]);
    assert_eq!(rule(&global, "content", "my.word")["pattern"], "lunch");
    let resp = me
        .put(
            &format!("{RULES}/global/room/not-a-room-id"),
            json!({"actions": []}),
        )
        .await;
    assert_eq!(resp.status, 400, "{}", resp.text);

    // The ruleset is the user's `m.push_rules` account data.
    let uid = enc(&a.user_id);
    let data = me
        .get(&format!("{CS}/user/{uid}/account_data/m.push_rules"))
        .await
        .ok();
    assert_eq!(data["global"], global);

    // Deleting.
    let body = me
        .delete(&format!("{RULES}/global/override/my.cake"))
        .await
        .ok();
    assert_eq!(body, json!({}));
    let resp = me.get(&format!("{RULES}/global/override/my.cake")).await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let resp = me.delete(&format!("{RULES}/global/override/my.cake")).await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    me.delete(&format!("{RULES}/global/room/{}", enc(room)))
        .await
        .ok();
    let global = me.get(&format!("{RULES}/")).await.ok()["global"].clone();
    assert_eq!(
        ids(&global, "override")[..3],
        [".m.rule.master", "my.tart", "my.pie"]
    );
    assert!(
        global.get("room").is_none_or(|r| r == &json!([])),
        "{global}"
    );

    // Bob's rules are his own.
    let global = api.as_user(&b).get(&format!("{RULES}/")).await.ok()["global"].clone();
    assert!(
        !ids(&global, "override")
            .iter()
            .any(|id| id.starts_with("my."))
    );
    assert!(
        global.get("sender").is_none_or(|r| r == &json!([])),
        "{global}"
    );
}

#[tokio::test]
async fn enabled_and_actions_can_be_read_and_changed() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let a = api.register("alice", "pw-alice-1").await;
    let me = api.as_user(&a);

    let master = format!("{RULES}/global/override/.m.rule.master");
    let body = me.get(&format!("{master}/enabled")).await.ok();
    assert_eq!(body, json!({"enabled": false}));
    let body = me
        .put(&format!("{master}/enabled"), json!({"enabled": true}))
        .await
        .ok();
    assert_eq!(body, json!({}));
    assert_eq!(
        me.get(&format!("{master}/enabled")).await.ok(),
        json!({"enabled": true})
    );

    let message = format!("{RULES}/global/underride/.m.rule.message");
    assert_eq!(
        me.get(&format!("{message}/actions")).await.ok(),
        json!({"actions": ["notify"]})
    );
    let loud = json!(["notify", {"set_tweak": "sound", "value": "default"},
        {"set_tweak": "highlight"}]);
    me.put(&format!("{message}/actions"), json!({"actions": loud}))
        .await
        .ok();
    assert_eq!(
        me.get(&format!("{message}/actions")).await.ok(),
        json!({"actions": loud})
    );

    // Both changes stay on the server-default rules, which stay server-default.
    let global = me.get(&format!("{RULES}/")).await.ok()["global"].clone();
    let m = rule(&global, "override", ".m.rule.master");
    assert_eq!(
        (m["enabled"].clone(), m["default"].clone()),
        (json!(true), json!(true))
    );
    let m = rule(&global, "underride", ".m.rule.message");
    assert_eq!(m["actions"], loud);
    assert_eq!(m["default"], true);

    // The same on a user-defined rule.
    me.put(
        &format!("{RULES}/global/sender/{}", enc("@bob:localhost")),
        json!({"actions": ["notify"]}),
    )
    .await
    .ok();
    let bob = format!("{RULES}/global/sender/{}", enc("@bob:localhost"));
    me.put(&format!("{bob}/enabled"), json!({"enabled": false}))
        .await
        .ok();
    me.put(&format!("{bob}/actions"), json!({"actions": []}))
        .await
        .ok();
    let body = me.get(&bob).await.ok();
    assert_eq!(body["enabled"], false, "{body}");
    assert_eq!(body["actions"], json!([]), "{body}");
    // Replacing the rule keeps it disabled.
    me.put(&bob, json!({"actions": ["notify"]})).await.ok();
    assert_eq!(
        me.get(&format!("{bob}/enabled")).await.ok(),
        json!({"enabled": false})
    );
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let srv = TestServer::start().await;
    let api = srv.on("localhost");
    let a = api.register("alice", "pw-alice-1").await;
    let me = api.as_user(&a);

    // Unknown rules.
    for path in [
        "override/no.such.rule",
        "override/no.such.rule/enabled",
        "override/no.such.rule/actions",
        // A server-default rule of another kind.
        "override/.m.rule.message",
    ] {
        let resp = me.get(&format!("{RULES}/global/{path}")).await;
        assert_error(&resp, 404, "M_NOT_FOUND");
    }
    let resp = me
        .delete(&format!("{RULES}/global/underride/no.such.rule"))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let resp = me
        .put(
            &format!("{RULES}/global/underride/no.such.rule/enabled"),
            json!({"enabled": true}),
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
    let resp = me
        .put(
            &format!("{RULES}/global/underride/no.such.rule/actions"),
            json!({"actions": []}),
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");

    // Server-default rules can't be deleted, nor can rules with their prefix be created.
    let resp = me
        .delete(&format!("{RULES}/global/override/.m.rule.master"))
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let resp = me
        .delete(&format!("{RULES}/global/underride/.m.rule.message"))
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let resp = me
        .put(
            &format!("{RULES}/global/override/.m.rule.mine"),
            json!({"conditions": [], "actions": []}),
        )
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let resp = me
        .put(
            &format!("{RULES}/global/underride/.m.rule.message"),
            json!({"conditions": [], "actions": []}),
        )
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");

    // Unknown kinds.
    let resp = me.get(&format!("{RULES}/global/bogus/my.rule")).await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let resp = me
        .put(
            &format!("{RULES}/global/bogus/my.rule"),
            json!({"actions": []}),
        )
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let resp = me.delete(&format!("{RULES}/global/bogus/my.rule")).await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let resp = me
        .put(
            &format!("{RULES}/global/bogus/my.rule/enabled"),
            json!({"enabled": true}),
        )
        .await;
    assert_error(&resp, 400, "M_INVALID_PARAM");

    // Bodies that don't fit the kind.
    let resp = me
        .put(&format!("{RULES}/global/override/my.rule"), json!({}))
        .await;
    assert_error(&resp, 400, "M_BAD_JSON");
    let resp = me
        .put(
            &format!("{RULES}/global/content/my.rule"),
            json!({"actions": []}),
        )
        .await;
    assert_error(&resp, 400, "M_BAD_JSON");
    let resp = me
        .put(
            &format!("{RULES}/global/override/.m.rule.master/enabled"),
            json!({"enabled": "yes"}),
        )
        .await;
    assert_error(&resp, 400, "M_BAD_JSON");

    // Nothing of this changed the ruleset.
    let global = me.get(&format!("{RULES}/")).await.ok()["global"].clone();
    assert!(
        !ids(&global, "override")
            .iter()
            .any(|id| id == "my.rule" || id == ".m.rule.mine")
    );
    let uid = enc(&a.user_id);
    let resp = me
        .get(&format!("{CS}/user/{uid}/account_data/m.push_rules"))
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}
