//! A user of another server joins a room of this tenant and talks in it (spec: Server-Server
//! API, "Joining Rooms", "Transactions", "Checks performed on receipt of a PDU"). The test
//! plays that other server, `b.test`, signing requests and events with b.test's real key (a
//! co-hosted tenant's, taken from its export), so everything it sends passes the same checks
//! as a request from the network.

use reqwest::Method;
use ruma::RoomVersionId;
use ruma::canonical_json::{CanonicalJsonObject, CanonicalJsonValue};
use ruma::room_version_rules::RoomVersionRules;
use ruma::signatures::{Ed25519KeyPair, hash_and_sign_event, reference_hash};
use serde_json::{Value, json};

use crate::federation_queries::{signing_key, x_matrix};
use crate::harness::*;

/// A remote server the test plays (`origin`, b.test unless said otherwise), talking to
/// `destination` (a.test unless said otherwise).
struct Remote {
    key: Ed25519KeyPair,
    origin: &'static str,
    destination: &'static str,
}

impl Remote {
    /// b.test talking to a.test.
    fn new(key: Ed25519KeyPair) -> Self {
        Self {
            key,
            origin: "b.test",
            destination: "a.test",
        }
    }

    async fn send(
        &self,
        srv: &TestServer,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let auth = x_matrix(
            method.as_str(),
            path,
            body.as_ref(),
            self.origin,
            self.destination,
            &self.key,
        );
        let mut builder = srv
            .on(self.destination)
            .builder(method, path)
            .header("Authorization", auth);
        if let Some(body) = body {
            builder = builder
                .body(body.to_string())
                .header("Content-Type", "application/json");
        }
        TestServer::send(builder).await
    }

    /// Hashes and signs `event` as the origin; returns it with its event id.
    fn sign(&self, rules: &RoomVersionRules, event: Value) -> (String, Value) {
        let mut object: CanonicalJsonObject = serde_json::from_value(event).expect("canonical");
        hash_and_sign_event(self.origin, &self.key, &mut object, &rules.redaction).expect("signed");
        let id = format!(
            "${}",
            reference_hash(&object, rules).expect("reference hash")
        );
        let json = serde_json::to_value(CanonicalJsonValue::Object(object)).expect("json");
        (id, json)
    }

    /// Sends `pdus` in the transaction `txn`.
    async fn transaction(&self, srv: &TestServer, txn: &str, pdus: Vec<Value>) -> Resp {
        let body = json!({"origin": self.origin, "origin_server_ts": now_ms(), "pdus": pdus});
        self.send(
            srv,
            Method::PUT,
            &format!("/_matrix/federation/v1/send/{txn}"),
            Some(body),
        )
        .await
    }
}

fn rules(version: &str) -> RoomVersionRules {
    RoomVersionId::try_from(version)
        .expect("room version")
        .rules()
        .expect("known version")
}

/// The id of a PDU from another server's answer.
fn id_of(rules: &RoomVersionRules, pdu: &Value) -> String {
    let object: CanonicalJsonObject = serde_json::from_value(pdu.clone()).expect("canonical");
    format!("${}", reference_hash(&object, rules).expect("hash"))
}

struct Joined {
    room_id: String,
    rules: RoomVersionRules,
    join_id: String,
    join_depth: i64,
    power_levels_id: String,
}

/// Alice creates a public room on a.test; b.test joins `@bob:b.test` to it.
async fn bob_joins(srv: &TestServer, alice: &Session, remote: &Remote) -> Joined {
    let room = srv
        .on("a.test")
        .as_user(alice)
        .post(
            "/_matrix/client/v3/createRoom",
            json!({"preset": "public_chat"}),
        )
        .await
        .ok();
    let room_id = room["room_id"].as_str().expect("room id").to_owned();
    let (joined, answer) = send_join(srv, remote, &room_id, "@bob:b.test", "").await;
    let state = answer["state"].as_array().expect("state");
    let kinds: Vec<&str> = state.iter().filter_map(|e| e["type"].as_str()).collect();
    for kind in ["m.room.create", "m.room.power_levels", "m.room.join_rules"] {
        assert!(kinds.contains(&kind), "{kind} in the state: {answer}");
    }
    assert!(
        state.iter().all(|e| e["state_key"] != "@bob:b.test"),
        "the state is the one before the join"
    );
    assert!(
        !answer["auth_chain"]
            .as_array()
            .expect("auth_chain")
            .is_empty()
    );
    assert_eq!(answer["servers_in_room"], json!(["a.test"]), "{answer}");
    assert_eq!(answer.get("members_omitted"), None, "{answer}");
    joined
}

/// b.test joins `user` to `room_id` through `make_join` and `send_join` (v2, with `query`);
/// returns the join and `send_join`'s answer.
async fn send_join(
    srv: &TestServer,
    remote: &Remote,
    room_id: &str,
    user: &str,
    query: &str,
) -> (Joined, Value) {
    let path = format!(
        "/_matrix/federation/v1/make_join/{}/{}?ver=10&ver=11&ver=12",
        enc(room_id),
        enc(user)
    );
    let made = remote.send(srv, Method::GET, &path, None).await.ok();
    let version = made["room_version"]
        .as_str()
        .expect("room_version")
        .to_owned();
    let template = made["event"].clone();
    assert_eq!(template["type"], "m.room.member", "{made}");
    assert_eq!(template["state_key"], user);
    assert_eq!(template["sender"], user);
    assert_eq!(template["content"]["membership"], "join");
    assert!(template.get("signatures").is_none(), "unsigned: {made}");
    assert!(
        template["prev_events"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
    let rules = rules(&version);
    let join_depth = template["depth"].as_i64().expect("depth");
    let (join_id, join) = remote.sign(&rules, template);
    let path = format!(
        "/_matrix/federation/v2/send_join/{}/{}{query}",
        enc(room_id),
        enc(&join_id)
    );
    let answer = remote.send(srv, Method::PUT, &path, Some(join)).await.ok();
    let state = answer["state"].as_array().expect("state");
    let power_levels = state
        .iter()
        .find(|e| e["type"] == "m.room.power_levels")
        .expect("power levels");
    let joined = Joined {
        power_levels_id: id_of(&rules, power_levels),
        room_id: room_id.to_owned(),
        rules,
        join_id,
        join_depth,
    };
    (joined, answer)
}

/// A message of `sender` on top of bob's join.
fn message(joined: &Joined, sender: &str, body: &str) -> Value {
    json!({
        "room_id": joined.room_id,
        "sender": sender,
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": body},
        "prev_events": [joined.join_id],
        "auth_events": [joined.power_levels_id, joined.join_id],
        "depth": joined.join_depth + 1,
        "origin_server_ts": now_ms(),
    })
}

async fn bodies(srv: &TestServer, alice: &Session, room_id: &str) -> Vec<(String, String)> {
    let page = srv
        .on("a.test")
        .as_user(alice)
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
            enc(room_id)
        ))
        .await
        .ok();
    page["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| {
            let body = e["content"]["body"]
                .as_str()
                .unwrap_or("(redacted)")
                .to_owned();
            (e["sender"].as_str().unwrap_or_default().to_owned(), body)
        })
        .collect()
}

async fn setup() -> (TestServer, Session, Remote) {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    let alice = srv.register("a.test", "alice", "password-alice").await;
    let remote = Remote::new(signing_key(&srv, "b.test").await);
    (srv, alice, remote)
}

#[tokio::test]
async fn a_remote_user_joins_and_talks_in_a_local_room() {
    let (srv, alice, remote) = setup().await;
    let joined = bob_joins(&srv, &alice, &remote).await;
    let members = srv
        .on("a.test")
        .as_user(&alice)
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/joined_members",
            enc(&joined.room_id)
        ))
        .await
        .ok();
    assert!(members["joined"]["@bob:b.test"].is_object(), "{members}");

    let (id, pdu) = remote.sign(
        &joined.rules,
        message(&joined, "@bob:b.test", "hello from b"),
    );
    let answer = remote.transaction(&srv, "t1", vec![pdu.clone()]).await.ok();
    assert_eq!(answer["pdus"][&id], json!({}), "{answer}");
    let seen = bodies(&srv, &alice, &joined.room_id).await;
    assert_eq!(
        seen,
        vec![("@bob:b.test".to_owned(), "hello from b".to_owned())]
    );

    // A retried transaction is answered the same and applied once; the same event in another
    // transaction is taken once too.
    let again = remote.transaction(&srv, "t1", vec![pdu.clone()]).await.ok();
    assert_eq!(again, answer);
    remote.transaction(&srv, "t2", vec![pdu]).await.ok();
    assert_eq!(bodies(&srv, &alice, &joined.room_id).await.len(), 1);

    // Alice answers; her event goes into the room (and, queued, towards b.test).
    srv.on("a.test")
        .as_user(&alice)
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/a1",
                enc(&joined.room_id)
            ),
            json!({"msgtype": "m.text", "body": "hello from a"}),
        )
        .await
        .ok();
    assert_eq!(bodies(&srv, &alice, &joined.room_id).await.len(), 2);
}

#[tokio::test]
async fn bad_pdus_are_refused_and_change_nothing() {
    let (srv, alice, remote) = setup().await;
    let joined = bob_joins(&srv, &alice, &remote).await;
    let stranger =
        Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "k0".into()).expect("key pair");

    // Signed with a key b.test never published.
    let forger = Remote::new(stranger);
    let (forged_id, forged) = forger.sign(&joined.rules, message(&joined, "@bob:b.test", "forged"));
    // From a user who never joined.
    let (outsider_id, outsider) = remote.sign(
        &joined.rules,
        message(&joined, "@carol:b.test", "let me in"),
    );
    // Larger than 64 KiB (ruma won't sign one, so it grows after signing; its id is the
    // redacted form's, which the padding doesn't change).
    let (big_id, mut big) = remote.sign(&joined.rules, message(&joined, "@bob:b.test", ""));
    big["content"]["body"] = json!("x".repeat(70_000));
    let answer = remote
        .transaction(&srv, "bad", vec![forged, outsider, big])
        .await
        .ok();
    for id in [&forged_id, &outsider_id, &big_id] {
        assert!(
            answer["pdus"][id]["error"].is_string(),
            "{id} refused: {answer}"
        );
    }
    assert!(bodies(&srv, &alice, &joined.room_id).await.is_empty());

    // Content changed after signing: the hash no longer matches, so the event is taken
    // redacted (spec: step 3 of the checks), its signature still being valid.
    let (id, mut tampered) =
        remote.sign(&joined.rules, message(&joined, "@bob:b.test", "original"));
    tampered["content"]["body"] = json!("tampered");
    let answer = remote
        .transaction(&srv, "tampered", vec![tampered])
        .await
        .ok();
    assert_eq!(answer["pdus"][&id], json!({}), "{answer}");
    let seen = bodies(&srv, &alice, &joined.room_id).await;
    assert_eq!(
        seen,
        vec![("@bob:b.test".to_owned(), "(redacted)".to_owned())]
    );

    // A transaction must come from the server that signed it.
    let body = json!({"origin": "c.test", "origin_server_ts": now_ms(), "pdus": []});
    let resp = remote
        .send(
            &srv,
            Method::PUT,
            "/_matrix/federation/v1/send/other",
            Some(body),
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // At most 50 PDUs.
    let many: Vec<Value> = (0..51).map(|_| json!({})).collect();
    let resp = remote.transaction(&srv, "many", many).await;
    assert_error(&resp, 400, "M_BAD_JSON");
}

#[tokio::test]
async fn joins_are_refused_where_the_spec_says() {
    let (srv, alice, remote) = setup().await;
    let private = srv
        .on("a.test")
        .as_user(&alice)
        .post(
            "/_matrix/client/v3/createRoom",
            json!({"preset": "private_chat"}),
        )
        .await
        .ok();
    let room_id = private["room_id"].as_str().expect("room").to_owned();
    let make_join = |user: &str, vers: &str| {
        format!(
            "/_matrix/federation/v1/make_join/{}/{}{vers}",
            enc(&room_id),
            enc(user)
        )
    };
    // Invite-only, and bob isn't invited.
    let resp = remote
        .send(
            &srv,
            Method::GET,
            &make_join("@bob:b.test", "?ver=12"),
            None,
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // Another server's user.
    let resp = remote
        .send(
            &srv,
            Method::GET,
            &make_join("@eve:c.test", "?ver=12"),
            None,
        )
        .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // A server that doesn't speak the room's version.
    let resp = remote
        .send(&srv, Method::GET, &make_join("@bob:b.test", "?ver=1"), None)
        .await;
    assert_error(&resp, 400, "M_INCOMPATIBLE_ROOM_VERSION");
    assert_eq!(resp.body["room_version"], "12", "{}", resp.text);
    // A room this server is not in.
    let resp = remote
        .send(
            &srv,
            Method::GET,
            &format!(
                "/_matrix/federation/v1/make_join/{}/{}?ver=12",
                enc("!nowhere:a.test"),
                enc("@bob:b.test")
            ),
            None,
        )
        .await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn servers_in_the_room_read_its_events_and_others_do_not() {
    let (srv, alice, remote) = setup().await;
    let joined = bob_joins(&srv, &alice, &remote).await;
    let room = enc(&joined.room_id);
    let join = enc(&joined.join_id);
    let get = |path: String| {
        let (srv, remote) = (&srv, &remote);
        async move { remote.send(srv, Method::GET, &path, None).await }
    };

    let event = get(format!("/_matrix/federation/v1/event/{join}"))
        .await
        .ok();
    assert_eq!(event["origin"], "a.test", "{event}");
    assert_eq!(id_of(&joined.rules, &event["pdus"][0]), joined.join_id);

    let ids = get(format!(
        "/_matrix/federation/v1/state_ids/{room}?event_id={join}"
    ))
    .await
    .ok();
    let state_ids = ids["pdu_ids"].as_array().expect("pdu_ids");
    assert!(state_ids.contains(&json!(joined.power_levels_id)), "{ids}");
    assert!(
        !state_ids.contains(&json!(joined.join_id)),
        "state before the join: {ids}"
    );
    let state = get(format!(
        "/_matrix/federation/v1/state/{room}?event_id={join}"
    ))
    .await
    .ok();
    assert_eq!(
        state["pdus"].as_array().map(Vec::len),
        Some(state_ids.len()),
        "{state}"
    );

    let auth = get(format!("/_matrix/federation/v1/event_auth/{room}/{join}"))
        .await
        .ok();
    let auth_ids: Vec<String> = auth["auth_chain"]
        .as_array()
        .expect("auth_chain")
        .iter()
        .map(|p| id_of(&joined.rules, p))
        .collect();
    assert!(auth_ids.contains(&joined.power_levels_id), "{auth}");

    let back = get(format!(
        "/_matrix/federation/v1/backfill/{room}?v={join}&limit=3"
    ))
    .await
    .ok();
    let pdus = back["pdus"].as_array().expect("pdus");
    assert_eq!(pdus.len(), 3, "{back}");
    assert_eq!(
        id_of(&joined.rules, &pdus[0]),
        joined.join_id,
        "newest first"
    );
    let depths: Vec<i64> = pdus.iter().filter_map(|p| p["depth"].as_i64()).collect();
    assert!(depths.windows(2).all(|w| w[0] > w[1]), "{depths:?}");

    let missing = remote
        .send(
            &srv,
            Method::POST,
            &format!("/_matrix/federation/v1/get_missing_events/{room}"),
            Some(json!({"earliest_events": [], "latest_events": [joined.join_id], "limit": 5})),
        )
        .await
        .ok();
    let events = missing["events"].as_array().expect("events");
    assert!(!events.is_empty() && events.len() <= 5, "{missing}");
    let depths: Vec<i64> = events.iter().filter_map(|p| p["depth"].as_i64()).collect();
    assert!(
        depths.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {depths:?}"
    );

    // The event nearest a time: the join was sent after every other event of the room.
    let nearest = get(format!(
        "/_matrix/federation/v1/timestamp_to_event/{room}?ts={}&dir=b",
        now_ms() + 60_000
    ))
    .await
    .ok();
    assert_eq!(nearest["event_id"], joined.join_id.as_str(), "{nearest}");
    assert!(nearest["origin_server_ts"].is_u64(), "{nearest}");
    let resp = get(format!(
        "/_matrix/federation/v1/timestamp_to_event/{room}?ts={}&dir=f",
        now_ms() + 60_000
    ))
    .await;
    assert_error(&resp, 404, "M_NOT_FOUND");

    // A server with nobody in the room reads nothing of it.
    srv.create_tenant("c.test", &["c.test"], "open").await;
    let outsider = signing_key(&srv, "c.test").await;
    let path = format!("/_matrix/federation/v1/event/{join}");
    let auth = x_matrix("GET", &path, None, "c.test", "a.test", &outsider);
    let resp = TestServer::send(
        srv.on("a.test")
            .builder(Method::GET, &path)
            .header("Authorization", auth),
    )
    .await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    // Unknown events and rooms.
    let resp = get(format!("/_matrix/federation/v1/event/{}", enc("$nope"))).await;
    assert_error(&resp, 404, "M_NOT_FOUND");
}

#[tokio::test]
async fn a_server_acl_shuts_a_server_out_of_the_room() {
    let (srv, alice, remote) = setup().await;
    let joined = bob_joins(&srv, &alice, &remote).await;
    srv.on("a.test")
        .as_user(&alice)
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.server_acl/",
                enc(&joined.room_id)
            ),
            json!({"allow": ["*"], "deny": ["b.test"], "allow_ip_literals": false}),
        )
        .await
        .ok();
    // b.test's event now is refused, whoever signed it…
    let (id, pdu) = remote.sign(
        &joined.rules,
        message(&joined, "@bob:b.test", "still here?"),
    );
    let answer = remote.transaction(&srv, "after-acl", vec![pdu]).await.ok();
    let error = answer["pdus"][&id]["error"].as_str().unwrap_or_default();
    assert!(error.contains("server ACL"), "{answer}");
    assert!(bodies(&srv, &alice, &joined.room_id).await.is_empty());
    // … and so are its reads and joins of the room.
    let path = format!("/_matrix/federation/v1/event/{}", enc(&joined.join_id));
    let resp = remote.send(&srv, Method::GET, &path, None).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
    let path = format!(
        "/_matrix/federation/v1/make_join/{}/{}?ver=12",
        enc(&joined.room_id),
        enc("@dave:b.test")
    );
    let resp = remote.send(&srv, Method::GET, &path, None).await;
    assert_error(&resp, 403, "M_FORBIDDEN");
}

/// Who alice's sync shows typing in the room.
async fn typing_in(srv: &TestServer, alice: &Session, room_id: &str) -> Vec<String> {
    let sync = srv
        .on("a.test")
        .as_user(alice)
        .get("/_matrix/client/v3/sync?timeout=0")
        .await
        .ok();
    let events = sync["rooms"]["join"][room_id]["ephemeral"]["events"].clone();
    events
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "m.typing")
        .flat_map(|e| {
            e["content"]["user_ids"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn typing_of_a_remote_user_reaches_local_members() {
    let (srv, alice, remote) = setup().await;
    let joined = bob_joins(&srv, &alice, &remote).await;
    let typing = |user: &str, on: bool| {
        json!({"edu_type": "m.typing",
               "content": {"room_id": joined.room_id, "user_id": user, "typing": on}})
    };
    let send = |txn: &str, edus: Vec<Value>| {
        let body =
            json!({"origin": "b.test", "origin_server_ts": now_ms(), "pdus": [], "edus": edus});
        let (srv, remote, path) = (&srv, &remote, format!("/_matrix/federation/v1/send/{txn}"));
        async move { remote.send(srv, Method::PUT, &path, Some(body)).await.ok() }
    };
    // A user of another server than the origin, and a user not in the room, are ignored.
    send(
        "e1",
        vec![
            typing("@eve:c.test", true),
            typing("@carol:b.test", true),
            typing("@bob:b.test", true),
        ],
    )
    .await;
    assert_eq!(
        typing_in(&srv, &alice, &joined.room_id).await,
        vec!["@bob:b.test".to_owned()]
    );
    send("e2", vec![typing("@bob:b.test", false)]).await;
    assert!(typing_in(&srv, &alice, &joined.room_id).await.is_empty());
}

#[tokio::test]
async fn read_receipts_of_a_remote_user_reach_local_members() {
    let (srv, alice, remote) = setup().await;
    let joined = bob_joins(&srv, &alice, &remote).await;
    let (id, pdu) = remote.sign(&joined.rules, message(&joined, "@bob:b.test", "read me"));
    remote.transaction(&srv, "m1", vec![pdu]).await.ok();
    let receipt = |user: &str, event: &str| {
        json!({"edu_type": "m.receipt", "content": {joined.room_id.clone(): {"m.read": {
            user: {"data": {"ts": 1_700_000_000_000_i64}, "event_ids": [event]}}}}})
    };
    let edus = vec![
        // Not the origin's user; an event of no room: both dropped.
        receipt("@eve:c.test", &id),
        receipt("@bob:b.test", "$unknown"),
        receipt("@bob:b.test", &id),
    ];
    let body = json!({"origin": "b.test", "origin_server_ts": now_ms(), "pdus": [], "edus": edus});
    remote
        .send(
            &srv,
            Method::PUT,
            "/_matrix/federation/v1/send/r1",
            Some(body),
        )
        .await
        .ok();
    let sync = srv
        .on("a.test")
        .as_user(&alice)
        .get("/_matrix/client/v3/sync?timeout=0")
        .await
        .ok();
    let events = &sync["rooms"]["join"][&joined.room_id]["ephemeral"]["events"];
    let receipts: Vec<&Value> = events
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "m.receipt")
        .collect();
    let read = &receipts.first().expect("a receipt")["content"][&id]["m.read"];
    assert_eq!(read["@bob:b.test"]["ts"], 1_700_000_000_000_i64, "{events}");
    assert!(read.get("@eve:c.test").is_none(), "{events}");
}

/// The state keys of the member events in a `send_join` answer's state, sorted.
fn members_of(answer: &Value) -> Vec<String> {
    let mut members: Vec<String> = answer["state"]
        .as_array()
        .expect("state")
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .filter_map(|e| e["state_key"].as_str().map(str::to_owned))
        .collect();
    members.sort();
    members
}

#[tokio::test]
async fn a_join_with_members_omitted_gets_the_heroes_and_the_servers_in_the_room() {
    let (srv, alice, remote) = setup().await;
    let dave = srv.register("a.test", "dave", "password-dave").await;
    let frank = srv.register("a.test", "frank", "password-frank").await;
    srv.register("a.test", "erin", "password-erin").await;
    let public = json!({"preset": "public_chat"});
    let create = |body: Value| {
        let srv = &srv;
        let alice = &alice;
        async move {
            let room = srv
                .on("a.test")
                .as_user(alice)
                .post("/_matrix/client/v3/createRoom", body)
                .await
                .ok();
            room["room_id"].as_str().expect("room id").to_owned()
        }
    };
    // An unnamed room: dave joined, erin invited, frank came and went.
    let room_id = create(public.clone()).await;
    let room = |action: &str| format!("/_matrix/client/v3/rooms/{}/{action}", enc(&room_id));
    for user in [&dave, &frank] {
        srv.on("a.test")
            .as_user(user)
            .post(&room("join"), json!({}))
            .await
            .ok();
    }
    srv.on("a.test")
        .as_user(&frank)
        .post(&room("leave"), json!({}))
        .await
        .ok();
    srv.on("a.test")
        .as_user(&alice)
        .post(&room("invite"), json!({"user_id": "@erin:a.test"}))
        .await
        .ok();

    // New power levels: the old ones are in the auth chain, not in the state.
    let levels_path = room("state/m.room.power_levels/");
    let mut levels = srv
        .on("a.test")
        .as_user(&alice)
        .get(&levels_path)
        .await
        .ok();
    levels["users"]["@dave:a.test"] = json!(50);
    srv.on("a.test")
        .as_user(&alice)
        .put(&levels_path, levels)
        .await
        .ok();

    let (joined, answer) =
        send_join(&srv, &remote, &room_id, "@bob:b.test", "?omit_members=true").await;
    assert_eq!(answer["members_omitted"], true, "{answer}");
    assert_eq!(answer["servers_in_room"], json!(["a.test"]), "{answer}");
    // The heroes: joined and invited members, not those who left.
    assert_eq!(
        members_of(&answer),
        ["@alice:a.test", "@dave:a.test", "@erin:a.test"]
    );
    // The auth chain leaves out what the state gives.
    let ids = |key: &str| -> Vec<String> {
        answer[key]
            .as_array()
            .expect(key)
            .iter()
            .map(|pdu| id_of(&joined.rules, pdu))
            .collect()
    };
    let state_ids = ids("state");
    let chain = ids("auth_chain");
    assert!(!chain.is_empty(), "{answer}");
    assert!(chain.iter().all(|id| !state_ids.contains(id)), "{answer}");
    let members = srv
        .on("a.test")
        .as_user(&alice)
        .get(&room("joined_members"))
        .await
        .ok();
    assert!(members["joined"]["@bob:b.test"].is_object(), "{members}");

    // A named room shows no member event at all.
    let named = create(json!({"preset": "public_chat", "name": "Named"})).await;
    let (_, answer) = send_join(&srv, &remote, &named, "@bob:b.test", "?omit_members=true").await;
    assert_eq!(answer["members_omitted"], true, "{answer}");
    assert!(members_of(&answer).is_empty(), "{answer}");
    // Without `omit_members`, every member comes.
    let (_, answer) = send_join(&srv, &remote, &named, "@bob2:b.test", "").await;
    assert_eq!(members_of(&answer), ["@alice:a.test", "@bob:b.test"]);
}

/// Waits until a.test holds `user`'s membership of the room as `membership`.
async fn membership_on_a(
    srv: &TestServer,
    alice: &Session,
    room_id: &str,
    user: &str,
    membership: &str,
) {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
        enc(room_id),
        enc(user)
    );
    for _ in 0..100 {
        let resp = srv.on("a.test").as_user(alice).get(&path).await;
        if resp.status == 200 && resp.body["membership"] == membership {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("a.test never had {user} {membership}");
}

#[tokio::test]
async fn an_event_past_a_deep_gap_is_appended_on_the_state_its_origin_gives() {
    let (srv, alice, b_to_a) = setup().await;
    srv.create_tenant("c.test", &["c.test"], "open").await;
    let bob = srv.register("b.test", "bob", "password-bob").await;
    let room = srv
        .on("a.test")
        .as_user(&alice)
        .post(
            "/_matrix/client/v3/createRoom",
            json!({"preset": "public_chat"}),
        )
        .await
        .ok();
    let room_id = room["room_id"].as_str().expect("room id").to_owned();
    let in_room = |action: &str| format!("/_matrix/client/v3/rooms/{}/{action}", enc(&room_id));
    srv.on("b.test")
        .as_user(&bob)
        .post(
            &format!(
                "/_matrix/client/v3/join/{}?server_name=a.test",
                enc(&room_id)
            ),
            json!({}),
        )
        .await
        .ok();
    // Once b.test knows the room's members, it answers for the room: c.test (the test) joins
    // carol through it, and b.test tells a.test.
    srv.on("b.test")
        .as_user(&bob)
        .get(&in_room("joined_members"))
        .await
        .ok();
    let c_to_b = Remote {
        key: signing_key(&srv, "c.test").await,
        origin: "c.test",
        destination: "b.test",
    };
    let (joined, _) = send_join(&srv, &c_to_b, &room_id, "@carol:c.test", "").await;
    membership_on_a(&srv, &alice, &room_id, "@carol:c.test", "join").await;

    // Carol's sixteen messages reach b.test only.
    let mut prev = joined.join_id.clone();
    let mut messages = Vec::new();
    for i in 1..=17 {
        let mut event = message(&joined, "@carol:c.test", &format!("m{i}"));
        event["prev_events"] = json!([prev]);
        event["depth"] = json!(joined.join_depth + i);
        let (id, pdu) = c_to_b.sign(&joined.rules, event);
        prev = id.clone();
        messages.push((id, pdu));
    }
    let (m17_id, m17) = messages.pop().expect("m17");
    let pdus: Vec<Value> = messages.iter().map(|(_, pdu)| pdu.clone()).collect();
    let answer = c_to_b.transaction(&srv, "c1", pdus).await.ok();
    for (id, _) in &messages {
        assert_eq!(answer["pdus"][id], json!({}), "{answer}");
    }

    // The last reaches a.test through b.test: ten missing events don't close the gap, so
    // a.test takes the state at the one before it from b.test and appends it on that.
    let (m16_id, m16) = messages.last().cloned().expect("m16");
    let answer = b_to_a.transaction(&srv, "b1", vec![m16]).await.ok();
    assert_eq!(answer["pdus"][&m16_id], json!({}), "{answer}");
    let seen: Vec<String> = bodies(&srv, &alice, &room_id)
        .await
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    assert!(seen.contains(&"m16".to_owned()), "{seen:?}");
    assert!(!seen.contains(&"m5".to_owned()), "{seen:?}");
    // The next one builds on it as on any event (newest first).
    let answer = b_to_a.transaction(&srv, "b2", vec![m17]).await.ok();
    assert_eq!(answer["pdus"][&m17_id], json!({}), "{answer}");
    let seen = bodies(&srv, &alice, &room_id).await;
    assert_eq!(
        seen.first(),
        Some(&("@carol:c.test".to_owned(), "m17".to_owned())),
        "{seen:?}"
    );
}
