//! Every PDU a tenant stores verifies with ruma-signatures as another server would verify it:
//! the tenant's ed25519 signature, the content hash (except for redacted events, stored in
//! their redacted form), the event id (reference hash, room versions 3+), the v12 room id;
//! and the DAG is complete: every `auth_events` / `prev_events` entry is stored too.
//!
//! The federation key endpoint doesn't exist yet, so the test reads the tenant's signing key
//! and events straight from its SQLite database (`<data_dir>/tenants/<id>/homeserver.db`).

use std::collections::{BTreeMap, HashMap, HashSet};

use ruma::RoomVersionId;
use ruma::canonical_json::{CanonicalJsonObject, CanonicalJsonValue, redact};
use ruma::serde::Base64;
use ruma::signatures::{Ed25519KeyPair, PublicKeyMap, Verified, reference_hash, verify_event};
use serde_json::json;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use crate::harness::*;
use crate::room_support::*;

struct Stored {
    event_id: String,
    room_id: String,
    pdu: CanonicalJsonObject,
}

struct TenantDb {
    server_name: String,
    /// `(key_id, pkcs8)`.
    keys: Vec<(String, Vec<u8>)>,
    events: Vec<Stored>,
}

fn text_column(row: &sqlx::sqlite::SqliteRow, name: &str) -> String {
    match row.try_get::<String, _>(name) {
        Ok(s) => s,
        Err(_) => String::from_utf8(
            row.try_get::<Vec<u8>, _>(name)
                .unwrap_or_else(|e| panic!("column {name}: {e}")),
        )
        .expect("utf-8 column"),
    }
}

/// The tenant's id (for its data directory), read while the server runs.
async fn tenant_id(srv: &TestServer, server_name: &str) -> String {
    let t = srv.get_tenant(server_name).await;
    t["tenant_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no tenant_id: {t}"))
        .to_owned()
}

/// Reads the signing keys and every stored PDU of a tenant (with the server stopped).
async fn read_tenant_db(srv: &TestServer, tenant_id: &str, server_name: &str) -> TenantDb {
    let (keys, events) = match &srv.database {
        Some(database) => read_postgres(&database.url, tenant_id).await,
        None => read_sqlite(srv, tenant_id).await,
    };
    let events = events
        .into_iter()
        .map(|(event_id, room_id, pdu_text)| {
            let pdu: CanonicalJsonObject = serde_json::from_str(&pdu_text)
                .unwrap_or_else(|e| panic!("stored PDU isn't canonical JSON ({e}): {pdu_text}"));
            Stored {
                event_id,
                room_id,
                pdu,
            }
        })
        .collect();
    TenantDb {
        server_name: server_name.to_owned(),
        keys,
        events,
    }
}

type Keys = Vec<(String, Vec<u8>)>;
/// `(event_id, room_id, pdu)` rows.
type Events = Vec<(String, String, String)>;

async fn read_sqlite(srv: &TestServer, tenant_id: &str) -> (Keys, Events) {
    let path = srv
        .data_dir
        .join("tenants")
        .join(tenant_id)
        .join("homeserver.db");
    assert!(path.is_file(), "{} missing", path.display());
    let pool =
        SqlitePool::connect_with(SqliteConnectOptions::new().filename(&path).read_only(true))
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let keys = sqlx::query("SELECT key_id, pkcs8 FROM signing_keys")
        .fetch_all(&pool)
        .await
        .expect("reading signing_keys")
        .iter()
        .map(|r| (r.get::<String, _>("key_id"), r.get::<Vec<u8>, _>("pkcs8")))
        .collect();
    let events = sqlx::query("SELECT event_id, room_id, pdu FROM events")
        .fetch_all(&pool)
        .await
        .expect("reading events")
        .iter()
        .map(|r| {
            (
                text_column(r, "event_id"),
                text_column(r, "room_id"),
                text_column(r, "pdu"),
            )
        })
        .collect();
    pool.close().await;
    (keys, events)
}

/// The same rows from the tenant's schema on PostgreSQL.
async fn read_postgres(url: &str, tenant_id: &str) -> (Keys, Events) {
    let pool = sqlx::PgPool::connect(url)
        .await
        .expect("connect to test db");
    let schema = format!("t_{tenant_id}");
    let keys = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT key_id, pkcs8 FROM \"{schema}\".signing_keys"
    )))
    .fetch_all(&pool)
    .await
    .expect("reading signing_keys")
    .iter()
    .map(|r| (r.get::<String, _>("key_id"), r.get::<Vec<u8>, _>("pkcs8")))
    .collect();
    let events = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT event_id, room_id, pdu FROM \"{schema}\".events"
    )))
    .fetch_all(&pool)
    .await
    .expect("reading events")
    .iter()
    .map(|r| {
        (
            r.get::<String, _>("event_id"),
            r.get::<String, _>("room_id"),
            r.get::<String, _>("pdu"),
        )
    })
    .collect();
    pool.close().await;
    (keys, events)
}

fn public_keys(server_name: &str, keys: &[(String, Vec<u8>)]) -> PublicKeyMap {
    assert!(!keys.is_empty(), "{server_name} has no signing key");
    let mut set = BTreeMap::new();
    for (key_id, pkcs8) in keys {
        let version = key_id
            .strip_prefix("ed25519:")
            .unwrap_or_else(|| panic!("key id {key_id} isn't ed25519"));
        let pair = Ed25519KeyPair::from_der(pkcs8, version.to_owned())
            .unwrap_or_else(|e| panic!("key {key_id} isn't PKCS#8 ed25519: {e}"));
        set.insert(key_id.clone(), Base64::new(pair.public_key().to_vec()));
    }
    let mut map = PublicKeyMap::new();
    map.insert(server_name.to_owned(), set);
    map
}

fn str_field<'a>(obj: &'a CanonicalJsonObject, key: &str) -> Option<&'a str> {
    match obj.get(key) {
        Some(CanonicalJsonValue::String(s)) => Some(s),
        _ => None,
    }
}

fn object_field<'a>(obj: &'a CanonicalJsonObject, key: &str) -> Option<&'a CanonicalJsonObject> {
    match obj.get(key) {
        Some(CanonicalJsonValue::Object(o)) => Some(o),
        _ => None,
    }
}

fn int_field(obj: &CanonicalJsonObject, key: &str) -> Option<i64> {
    match obj.get(key) {
        Some(CanonicalJsonValue::Integer(i)) => Some(i64::from(*i)),
        _ => None,
    }
}

/// The event ids of `prev_events` / `auth_events`: plain strings, or `[id, hashes]` pairs in
/// room versions 1 and 2.
fn referenced(obj: &CanonicalJsonObject, key: &str) -> Vec<String> {
    match obj.get(key) {
        Some(CanonicalJsonValue::Array(items)) => items
            .iter()
            .map(|item| match item {
                CanonicalJsonValue::String(s) => s.clone(),
                CanonicalJsonValue::Array(pair) => match pair.first() {
                    Some(CanonicalJsonValue::String(s)) => s.clone(),
                    other => panic!("bad {key} entry {other:?}"),
                },
                other => panic!("bad {key} entry {other:?}"),
            })
            .collect(),
        other => panic!("no {key} array: {other:?}"),
    }
}

fn without_unsigned(mut obj: CanonicalJsonObject) -> CanonicalJsonObject {
    obj.remove("unsigned");
    obj
}

/// Verifies every stored PDU of a tenant; returns how many events were verified and how many
/// of them were redacted.
fn verify_tenant(db: &TenantDb) -> (usize, usize) {
    let keys = public_keys(&db.server_name, &db.keys);
    let by_id: HashMap<&str, &Stored> =
        db.events.iter().map(|e| (e.event_id.as_str(), e)).collect();
    assert_eq!(by_id.len(), db.events.len(), "duplicate event ids stored");

    // Room versions, from the create events.
    let mut versions: HashMap<&str, RoomVersionId> = HashMap::new();
    for e in &db.events {
        if str_field(&e.pdu, "type") == Some("m.room.create") {
            let content = object_field(&e.pdu, "content").expect("create content");
            let v = str_field(content, "room_version").unwrap_or("1");
            let v = RoomVersionId::try_from(v).expect("room version");
            assert!(
                versions.insert(e.room_id.as_str(), v).is_none(),
                "two create events in {}",
                e.room_id
            );
        }
    }
    // Redacted events: the targets of stored redactions.
    let mut redacted: HashSet<String> = HashSet::new();
    for e in &db.events {
        if str_field(&e.pdu, "type") == Some("m.room.redaction") {
            let target = object_field(&e.pdu, "content")
                .and_then(|c| str_field(c, "redacts"))
                .or_else(|| str_field(&e.pdu, "redacts"))
                .unwrap_or_else(|| panic!("redaction without redacts: {:?}", e.pdu));
            redacted.insert(target.to_owned());
        }
    }

    let mut redacted_seen = 0;
    for e in &db.events {
        let ctx = || format!("{} in {}: {:?}", e.event_id, e.room_id, e.pdu);
        let version = versions
            .get(e.room_id.as_str())
            .unwrap_or_else(|| panic!("no create event for the room of {}", ctx()));
        let rules = version.rules().expect("known room version");

        // Signature (over the redacted form) and content hash.
        let verified = verify_event(&keys, &e.pdu, &rules)
            .unwrap_or_else(|err| panic!("signature check failed ({err}) for {}", ctx()));
        if redacted.contains(&e.event_id) {
            redacted_seen += 1;
            assert_eq!(
                verified,
                Verified::Signatures,
                "a redacted event's content hash can't match: {}",
                ctx()
            );
            // Stored in the redacted form of its room version: redacting again changes nothing.
            let again = redact(e.pdu.clone(), &rules.redaction, None).expect("redact");
            assert_eq!(
                without_unsigned(again),
                without_unsigned(e.pdu.clone()),
                "stored redacted PDU isn't in redacted form: {}",
                ctx()
            );
        } else {
            assert_eq!(verified, Verified::All, "content hash mismatch: {}", ctx());
        }
        assert!(
            object_field(&e.pdu, "signatures")
                .is_some_and(|s| s.contains_key(db.server_name.as_str())),
            "not signed by {}: {}",
            db.server_name,
            ctx()
        );
        let sender = str_field(&e.pdu, "sender").expect("sender");
        assert!(
            sender.ends_with(&format!(":{}", db.server_name)),
            "foreign sender in a local event: {}",
            ctx()
        );

        // Event id: in the PDU for v1/v2, the reference hash otherwise.
        if matches!(version, RoomVersionId::V1 | RoomVersionId::V2) {
            assert_eq!(
                str_field(&e.pdu, "event_id"),
                Some(e.event_id.as_str()),
                "{}",
                ctx()
            );
        } else {
            let hash = reference_hash(&e.pdu, &rules).expect("reference hash");
            assert_eq!(
                e.event_id,
                format!("${hash}"),
                "event id isn't the reference hash: {}",
                ctx()
            );
        }
        // Room id: in the PDU, except for a v12 create event, whose hash is the room id.
        let is_create = str_field(&e.pdu, "type") == Some("m.room.create");
        if is_create && *version == RoomVersionId::V12 {
            assert!(
                !e.pdu.contains_key("room_id"),
                "v12 create with room_id: {}",
                ctx()
            );
            assert_eq!(
                e.room_id,
                format!("!{}", &e.event_id[1..]),
                "v12 room id isn't the create event's hash"
            );
        } else {
            assert_eq!(
                str_field(&e.pdu, "room_id"),
                Some(e.room_id.as_str()),
                "{}",
                ctx()
            );
        }

        // The DAG: everything referenced is stored, in the same room, and older.
        let prev = referenced(&e.pdu, "prev_events");
        let auth = referenced(&e.pdu, "auth_events");
        if is_create {
            assert!(prev.is_empty() && auth.is_empty(), "{}", ctx());
        } else {
            assert!(!prev.is_empty(), "no prev_events: {}", ctx());
        }
        let depth = int_field(&e.pdu, "depth").unwrap_or_else(|| panic!("no depth: {}", ctx()));
        for id in prev.iter().chain(auth.iter()) {
            let parent = by_id
                .get(id.as_str())
                .unwrap_or_else(|| panic!("{id} referenced but not stored: {}", ctx()));
            assert_eq!(
                parent.room_id,
                e.room_id,
                "reference across rooms: {}",
                ctx()
            );
        }
        for id in &prev {
            let parent_depth = int_field(&by_id[id.as_str()].pdu, "depth").unwrap();
            assert!(
                depth > parent_depth,
                "depth not above prev event's: {}",
                ctx()
            );
        }
        // Auth events are state events.
        for id in &auth {
            assert!(
                by_id[id.as_str()].pdu.contains_key("state_key"),
                "auth event {id} isn't a state event: {}",
                ctx()
            );
        }
    }
    (db.events.len(), redacted_seen)
}

/// Fills a room of `version` with membership changes, state, messages, an edit and a
/// redaction. Returns the event ids the API handed out.
async fn busy_room(srv: &TestServer, host: &str, users: &[Session], version: &str) -> Vec<String> {
    let api = |s: &Session| srv.on(host).as_user(s);
    let (alice, bob, carol) = (&users[0], &users[1], &users[2]);
    let mut ids = Vec::new();
    let room = create_room(
        &api(alice),
        json!({"preset": "public_chat", "room_version": version, "name": format!("v{version}"),
               "topic": "signed"}),
    )
    .await;
    join(&api(bob), &room).await;
    join(&api(carol), &room).await;
    for i in 0..5 {
        ids.push(send_text(&api(alice), &room, &format!("a{i}")).await);
        ids.push(send_text(&api(bob), &room, &format!("b{i}")).await);
    }
    let edit = send(
        &api(alice),
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "* a0!", "m.new_content": {"msgtype": "m.text",
               "body": "a0!"}, "m.relates_to": {"rel_type": "m.replace", "event_id": ids[0]}}),
    )
    .await;
    ids.push(edit);
    let red = event_id_of(
        api(alice)
            .put(
                &format!(
                    "{CS}/rooms/{}/redact/{}/{}",
                    enc(&room),
                    enc(&ids[1]),
                    txn_id()
                ),
                json!({"reason": "gone"}),
            )
            .await,
    );
    ids.push(red);
    ids.push(
        put_state(
            &api(alice),
            &room,
            "m.room.topic",
            "",
            json!({"topic": "changed"}),
        )
        .await,
    );
    let mut pl = state_content(&api(alice), &room, "m.room.power_levels", "").await;
    pl["users"][&bob.user_id] = json!(50);
    ids.push(put_state(&api(alice), &room, "m.room.power_levels", "", pl).await);
    member_action(&api(bob), &room, "kick", &carol.user_id, Some("bye"))
        .await
        .ok();
    member_action(&api(alice), &room, "ban", &carol.user_id, None)
        .await
        .ok();
    member_action(&api(alice), &room, "unban", &carol.user_id, None)
        .await
        .ok();
    invite(&api(alice), &room, &carol.user_id).await;
    join(&api(carol), &room).await;
    ids.push(send_text(&api(carol), &room, "back").await);
    leave_raw(&api(bob), &room).await.ok();
    ids.push(send_text(&api(alice), &room, "last").await);
    ids
}

#[tokio::test]
async fn stored_pdus_verify_and_auth_chains_are_complete() {
    let mut srv = TestServer::start().await;
    srv.create_tenant("sig.test", &["sig.test"], "open").await;
    let mut local = Vec::new();
    let mut other = Vec::new();
    for name in ["alice", "bob", "carol"] {
        local.push(local_user(&srv, name).await);
        other.push(user(&srv, "sig.test", "sig.test", name).await);
    }

    let mut api_ids = Vec::new();
    for v in ["1", "6", "11", "12"] {
        api_ids.extend(busy_room(&srv, "localhost", &local, v).await);
    }
    // A knock, in a room version that has them.
    let knock_room = create_room(
        &srv.on("localhost").as_user(&local[0]),
        json!({"room_version": "12", "initial_state": [{"type": "m.room.join_rules",
               "state_key": "", "content": {"join_rule": "knock"}}]}),
    )
    .await;
    srv.on("localhost")
        .as_user(&local[1])
        .post(&format!("{CS}/knock/{}", enc(&knock_room)), json!({}))
        .await
        .ok();
    let other_ids = busy_room(&srv, "sig.test", &other, "12").await;

    let local_tenant = tenant_id(&srv, "localhost").await;
    let other_tenant = tenant_id(&srv, "sig.test").await;
    assert_ne!(local_tenant, other_tenant);
    srv.stop().await;

    let local_db = read_tenant_db(&srv, &local_tenant, "localhost").await;
    let other_db = read_tenant_db(&srv, &other_tenant, "sig.test").await;

    // Everything the API reported is stored (and nothing of one tenant in the other).
    let local_ids: HashSet<&str> = local_db
        .events
        .iter()
        .map(|e| e.event_id.as_str())
        .collect();
    let other_stored: HashSet<&str> = other_db
        .events
        .iter()
        .map(|e| e.event_id.as_str())
        .collect();
    for id in &api_ids {
        assert!(local_ids.contains(id.as_str()), "{id} not stored");
        assert!(
            !other_stored.contains(id.as_str()),
            "{id} stored in the other tenant"
        );
    }
    for id in &other_ids {
        assert!(other_stored.contains(id.as_str()), "{id} not stored");
    }

    let (n, redacted) = verify_tenant(&local_db);
    assert!(n > 4 * 25, "only {n} events stored for localhost");
    assert_eq!(redacted, 4, "one redacted event per room");
    let (n, redacted) = verify_tenant(&other_db);
    assert!(n > 25, "only {n} events stored for sig.test");
    assert_eq!(redacted, 1);

    // The check can fail: another tenant's key doesn't verify these events, and a tampered
    // event doesn't verify.
    let wrong_keys = public_keys("sig.test", &local_db.keys);
    let sample = other_db
        .events
        .iter()
        .find(|e| str_field(&e.pdu, "type") == Some("m.room.message"))
        .expect("a message");
    let rules = RoomVersionId::V12.rules().unwrap();
    assert!(
        verify_event(&wrong_keys, &sample.pdu, &rules).is_err(),
        "verified with the wrong tenant's key"
    );
    let right_keys = public_keys("sig.test", &other_db.keys);
    let mut tampered = sample.pdu.clone();
    tampered.insert(
        "origin_server_ts".to_owned(),
        CanonicalJsonValue::Integer(1_000u32.into()),
    );
    assert!(verify_event(&right_keys, &tampered, &rules).is_err());
}
