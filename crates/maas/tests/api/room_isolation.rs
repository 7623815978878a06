//! Two tenants used at once, each with its own rooms: nothing of one is visible on the other.

use serde_json::{Value, json};

use crate::harness::*;
use crate::room_support::*;

/// Asserts a refusal (403 or 404 with the matching errcode) that doesn't leak `secret`.
#[track_caller]
fn assert_hidden(resp: &Resp, secret: &str, what: &str) {
    assert!(
        matches!(
            (resp.status, resp.errcode()),
            (403, "M_FORBIDDEN") | (404, "M_NOT_FOUND")
        ),
        "{what}: expected 403/404, got {} {}",
        resp.status,
        resp.text
    );
    assert!(!resp.text.contains(secret), "{what} leaked: {}", resp.text);
}

#[tokio::test]
async fn rooms_of_one_tenant_are_invisible_on_another() {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    let a = srv.on("a.test");
    let b = srv.on("b.test");
    let alice = a.register("alice", "pw-a-alice").await;
    let amy = a.register("amy", "pw-a-amy").await;
    // Same localparts on b.test.
    let b_alice_s = b.register("alice", "pw-b-alice").await;
    let b_amy_s = b.register("amy", "pw-b-amy").await;
    let (a_alice, a_amy) = (a.as_user(&alice), a.as_user(&amy));
    let (b_alice, b_amy) = (b.as_user(&b_alice_s), b.as_user(&b_amy_s));

    // Both tenants, interleaved: same alias localpart, public rooms, messages.
    let room_a = create_room(
        &a_alice,
        json!({"preset": "public_chat", "name": "A secret name", "room_alias_name": "general",
               "visibility": "public", "topic": "A secret topic"}),
    )
    .await;
    let room_b = create_room(
        &b_alice,
        json!({"preset": "public_chat", "name": "B room", "room_alias_name": "general",
               "visibility": "public"}),
    )
    .await;
    assert_ne!(room_a, room_b);
    join(&a_amy, "#general:a.test").await;
    join(&b_amy, "#general:b.test").await;
    let ev_a = send_text(&a_amy, &room_a, "A secret message").await;
    let ev_b = send_text(&b_amy, &room_b, "B message").await;
    let private_a = create_room(&a_alice, json!({"preset": "private_chat"})).await;
    invite(&a_alice, &private_a, &amy.user_id).await;

    // Aliases resolve within their tenant only.
    assert_eq!(
        a.get(&format!("{CS}/directory/room/{}", enc("#general:a.test")))
            .await
            .ok()["room_id"],
        room_a.as_str()
    );
    assert_eq!(
        b.get(&format!("{CS}/directory/room/{}", enc("#general:b.test")))
            .await
            .ok()["room_id"],
        room_b.as_str()
    );

    // On b.test, a.test's room ids are unknown.
    for (what, resp) in [
        (
            "state",
            b_alice
                .get(&format!("{CS}/rooms/{}/state", enc(&room_a)))
                .await,
        ),
        (
            "state event",
            get_state_raw(&b_alice, &room_a, "m.room.name", "").await,
        ),
        ("event", get_event_raw(&b_alice, &room_a, &ev_a).await),
        (
            "event via own room",
            get_event_raw(&b_alice, &room_b, &ev_a).await,
        ),
        ("messages", messages_raw(&b_alice, &room_a, "dir=b").await),
        (
            "members",
            b_alice
                .get(&format!("{CS}/rooms/{}/members", enc(&room_a)))
                .await,
        ),
        (
            "joined_members",
            b_alice
                .get(&format!("{CS}/rooms/{}/joined_members", enc(&room_a)))
                .await,
        ),
        (
            "send",
            send_raw(
                &b_alice,
                &room_a,
                "m.room.message",
                json!({"msgtype": "m.text", "body": "cross"}),
            )
            .await,
        ),
        (
            "context",
            b_alice
                .get(&format!(
                    "{CS}/rooms/{}/context/{}",
                    enc(&room_a),
                    enc(&ev_a)
                ))
                .await,
        ),
    ] {
        assert_hidden(&resp, "secret", what);
    }
    // Joining a.test's room by id from b.test doesn't work (no other server knows it).
    let resp = join_raw(&b_amy, &room_a).await;
    assert!(
        (400..500).contains(&resp.status) && !resp.text.contains("secret"),
        "join of another tenant's room: {} {}",
        resp.status,
        resp.text
    );
    let resp = join_raw(&b_amy, &private_a).await;
    assert!((400..500).contains(&resp.status), "{}", resp.text);

    // b.test's users see only b.test's rooms, in sync and elsewhere.
    for api in [&b_alice, &b_amy] {
        let s = sync(api, None, Some(&json!({"room": {"include_leave": true}}))).await;
        assert_eq!(room_ids(&s, "join"), vec![room_b.clone()], "{s}");
        assert!(room_ids(&s, "invite").is_empty(), "{s}");
        assert!(room_ids(&s, "leave").is_empty(), "{s}");
        let text = s.to_string();
        for leak in [
            room_a.as_str(),
            private_a.as_str(),
            ev_a.as_str(),
            "secret",
            "a.test",
        ] {
            assert!(!text.contains(leak), "{leak} in b.test sync: {s}");
        }
        let rooms: Value = api.get(&format!("{CS}/joined_rooms")).await.ok();
        assert_eq!(rooms["joined_rooms"], json!([room_b]), "{rooms}");
    }
    let public_b = b_alice.get(&format!("{CS}/publicRooms")).await.ok();
    let listed: Vec<&str> = public_b["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["room_id"].as_str())
        .collect();
    assert_eq!(listed, vec![room_b.as_str()], "{public_b}");
    assert!(!public_b.to_string().contains("secret"), "{public_b}");

    // And the other way round.
    let s = sync(&a_amy, None, None).await;
    assert_eq!(room_ids(&s, "join"), vec![room_a.clone()], "{s}");
    assert_eq!(room_ids(&s, "invite"), vec![private_a.clone()], "{s}");
    assert!(!s.to_string().contains(&room_b), "{s}");
    assert!(!s.to_string().contains(&ev_b), "{s}");
    let resp = get_event_raw(&a_alice, &room_b, &ev_b).await;
    assert_hidden(&resp, "B message", "b.test event from a.test");
    let public_a = a.get(&format!("{CS}/publicRooms")).await.ok();
    assert_eq!(
        public_a["chunk"].as_array().map(Vec::len),
        Some(1),
        "{public_a}"
    );
    assert_eq!(public_a["chunk"][0]["room_id"], room_a.as_str());

    // A token of one tenant can't sync on the other.
    let resp = sync_raw(&b.as_user(&alice), "timeout=0").await;
    assert_error(&resp, 401, "M_UNKNOWN_TOKEN");

    // Both keep working side by side.
    let since_a = next_batch(&s);
    let s_b = sync(&b_amy, None, None).await;
    let since_b = next_batch(&s_b);
    let new_a = send_text(&a_alice, &room_a, "A again").await;
    let new_b = send_text(&b_alice, &room_b, "B again").await;
    let s = sync(&a_amy, Some(&since_a), None).await;
    assert_eq!(ids(&timeline(&s, &room_a)), vec![new_a]);
    assert!(room_ids(&s, "join").iter().all(|r| r == &room_a), "{s}");
    let s = sync(&b_amy, Some(&since_b), None).await;
    assert_eq!(ids(&timeline(&s, &room_b)), vec![new_b]);
    assert!(room_ids(&s, "join").iter().all(|r| r == &room_b), "{s}");
}
