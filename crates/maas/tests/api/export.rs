//! Tenant export and import (operator API and CLI): a filled tenant — users, devices, tokens,
//! a room with an edit and a redaction, account data, E2EE keys and a key backup — comes back
//! whole after delete + import; its media moves with it; damaged archives and conflicts are
//! refused and change nothing.

use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::e2ee_support::*;
use crate::harness::*;
use crate::room_support::*;

const BACKUP_ALGORITHM: &str = "m.megolm_backup.v1.curve25519-aes-sha2";

fn export_path(server_name: &str) -> String {
    format!("{OP}/tenants/{}/export", enc(server_name))
}

/// `GET /tenants/{server_name}/export`, asserting success; the archive's bytes.
pub(crate) async fn export(srv: &TestServer, server_name: &str) -> Vec<u8> {
    let resp = srv
        .op()
        .builder(Method::GET, &export_path(server_name))
        .send()
        .await
        .expect("export request");
    assert_eq!(resp.status().as_u16(), 200, "export of {server_name}");
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/x-ndjson");
    resp.bytes().await.expect("archive body").to_vec()
}

/// `POST /import` with `query` (e.g. `?replace=true`) and the archive as body.
pub(crate) async fn import_raw(srv: &TestServer, archive: &[u8], query: &str) -> Resp {
    let builder = srv
        .op()
        .builder(Method::POST, &format!("{OP}/import{query}"))
        .header("content-type", "application/x-ndjson")
        .body(archive.to_vec());
    TestServer::send(builder).await
}

/// The archive's lines (without their newlines).
pub(crate) fn lines(archive: &[u8]) -> Vec<&[u8]> {
    let body = archive
        .strip_suffix(b"\n")
        .expect("archive ends with a newline");
    body.split(|b| *b == b'\n').collect()
}

pub(crate) fn line_json(line: &[u8]) -> Value {
    serde_json::from_slice(line).expect("archive lines are JSON")
}

/// Reassembles an archive from its lines with a correct trailer: a damaged archive that
/// passes the checksum, so that only the server's own checks can refuse it.
pub(crate) fn with_valid_trailer(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut tables = std::collections::HashSet::new();
    let (mut rows, mut blobs) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            let line = line_json(line);
            if line.get("blob").is_some() {
                blobs += usize::from(line["last"] == true);
            } else {
                tables.insert(line["table"].as_str().expect("table").to_owned());
                rows += line["rows"].as_array().expect("rows").len();
            }
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    let sha256 = hex::encode(Sha256::digest(&out));
    let trailer = json!({"end": true, "tables": tables.len(), "rows": rows, "blobs": blobs,
                         "sha256": sha256});
    out.extend_from_slice(trailer.to_string().as_bytes());
    out.push(b'\n');
    out
}

/// An event as the tests compare it: without the ages the server computes per request
/// (bundled edits and redactions carry their own).
fn stable(event: &Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Object(unsigned)) = map.get_mut("unsigned") {
                    unsigned.remove("age");
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut event = event.clone();
    strip(&mut event);
    event
}

/// What a user sees of the tenant in an initial sync: rooms with timeline and state, and
/// global account data, in a comparable form.
async fn view(api: &Api<'_>) -> Value {
    let s = sync(api, None, Some(&timeline_limit(100))).await;
    let mut rooms = serde_json::Map::new();
    for room in room_ids(&s, "join") {
        let timeline: Vec<Value> = timeline(&s, &room).iter().map(stable).collect();
        let mut state: Vec<Value> = room_part(&s, &room, "state").iter().map(stable).collect();
        state.sort_by_key(|e| (e["type"].to_string(), e["state_key"].to_string()));
        let mut full: Vec<Value> = full_state(api, &room).await.iter().map(stable).collect();
        full.sort_by_key(|e| (e["type"].to_string(), e["state_key"].to_string()));
        let account_data = room_part(&s, &room, "account_data");
        rooms.insert(
            room,
            json!({"timeline": timeline, "state": state, "full_state": full,
                   "account_data": account_data}),
        );
    }
    json!({"rooms": rooms, "account_data": s["account_data"]})
}

/// What the E2EE endpoints answer for a user: device keys of both users, one-time key
/// counts, the current backup and its keys.
async fn keys_view(api: &Api<'_>, users: &[&str]) -> Value {
    let query = keys_query(api, users).await;
    let counts = upload_ok(api, json!({})).await;
    let version = api.get(&format!("{CS}/room_keys/version")).await.ok();
    let v = version["version"]
        .as_str()
        .expect("backup version")
        .to_owned();
    let keys = api
        .get(&format!("{CS}/room_keys/keys?version={}", enc(&v)))
        .await
        .ok();
    json!({"device_keys": query["device_keys"], "master_keys": query["master_keys"],
           "counts": counts, "backup": version, "backup_keys": keys})
}

/// A tenant with everything an archive must carry. Returns the admin password and the two
/// users' sessions and the room.
struct Filled {
    admin_password: String,
    alice: Session,
    bob: Session,
    room: String,
    /// Bob's sync position before Alice's to-device message.
    bob_since: String,
}

async fn fill(srv: &TestServer, server_name: &str) -> Filled {
    let created = srv.create_tenant(server_name, &[server_name], "open").await;
    let admin_password = created["admin"]["password"]
        .as_str()
        .expect("admin password")
        .to_owned();
    let alice = user(srv, server_name, server_name, "alice").await;
    let bob = user(srv, server_name, server_name, "bob").await;
    let api = srv.on(server_name);
    let (alice_api, bob_api) = (api.as_user(&alice), api.as_user(&bob));

    let room = create_room(
        &alice_api,
        json!({"preset": "private_chat", "name": "Export room", "topic": "before the move"}),
    )
    .await;
    invite(&alice_api, &room, &bob.user_id).await;
    join(&bob_api, &room).await;
    let first = send_text(&alice_api, &room, "first").await;
    let regret = send_text(&alice_api, &room, "regret this").await;
    send_text(&bob_api, &room, "hello from bob").await;
    send(
        &alice_api,
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "* first, edited",
               "m.new_content": {"msgtype": "m.text", "body": "first, edited"},
               "m.relates_to": {"rel_type": "m.replace", "event_id": first}}),
    )
    .await;
    let redact = format!(
        "{CS}/rooms/{}/redact/{}/{}",
        enc(&room),
        enc(&regret),
        txn_id()
    );
    event_id_of(alice_api.put(&redact, json!({"reason": "oops"})).await);
    put_state(
        &alice_api,
        &room,
        "m.room.topic",
        "",
        json!({"topic": "after edits"}),
    )
    .await;

    let global = format!(
        "{CS}/user/{}/account_data/org.example.settings",
        enc(&alice.user_id)
    );
    alice_api
        .put(&global, json!({"theme": "dark", "ünïcode": "✓"}))
        .await
        .ok();
    let in_room = format!(
        "{CS}/user/{}/rooms/{}/account_data/org.example.room",
        enc(&alice.user_id),
        enc(&room)
    );
    alice_api.put(&in_room, json!({"pinned": true})).await.ok();

    // E2EE: device keys and one-time keys of both, Alice's cross-signing keys and a backup.
    for (session, session_api) in [(&alice, &alice_api), (&bob, &bob_api)] {
        let device = TestDevice::of(session);
        let otks: serde_json::Map<String, Value> = (0..3)
            .map(|i| {
                (
                    format!("{SIGNED_CURVE25519}:AAAA{i}"),
                    device.one_time_key(),
                )
            })
            .collect();
        upload_ok(
            session_api,
            json!({"device_keys": device.device_keys(), "one_time_keys": otks,
                   "fallback_keys": {format!("{SIGNED_CURVE25519}:FB"): device.fallback_key()}}),
        )
        .await;
    }
    let cross_signing = CrossSigning::new(&alice.user_id);
    device_signing_upload(&alice_api, cross_signing.upload_body())
        .await
        .ok();
    let device = TestDevice::of(&alice);
    let version = alice_api
        .post(
            &format!("{CS}/room_keys/version"),
            json!({"algorithm": BACKUP_ALGORITHM,
                   "auth_data": device.sign(&json!({"public_key": random_key()}))}),
        )
        .await
        .ok();
    let version = version["version"].as_str().expect("version").to_owned();
    let session_key = json!({
        "first_message_index": 3, "forwarded_count": 1, "is_verified": true,
        "session_data": {"ephemeral": random_key(), "ciphertext": "c1", "mac": "bWFj"},
    });
    alice_api
        .put(
            &format!("{CS}/room_keys/keys?version={}", enc(&version)),
            json!({"rooms": {room.clone(): {"sessions": {"session-one": session_key}}}}),
        )
        .await
        .ok();

    let bob_since = next_batch(&sync(&bob_api, None, None).await);
    let to_device = format!("{CS}/sendToDevice/m.test.export/{}", txn_id());
    let messages = json!({"messages": {bob.user_id.clone(): {bob.device_id.clone():
        {"note": "waiting in the archive"}}}});
    alice_api.put(&to_device, messages).await.ok();
    Filled {
        admin_password,
        alice,
        bob,
        room,
        bob_since,
    }
}

#[tokio::test]
async fn a_tenant_comes_back_whole_after_delete_and_import() {
    let srv = TestServer::start().await;
    let name = "export.test";
    let filled = fill(&srv, name).await;
    let api = srv.on(name);
    let (alice_api, bob_api) = (api.as_user(&filled.alice), api.as_user(&filled.bob));
    let users = [filled.alice.user_id.as_str(), filled.bob.user_id.as_str()];
    let before_tenant = srv.get_tenant(name).await;
    let alice_view = view(&alice_api).await;
    let bob_view = view(&bob_api).await;
    let alice_keys = keys_view(&alice_api, &users).await;
    assert!(
        alice_view["rooms"][&filled.room]["timeline"]
            .as_array()
            .is_some_and(|t| t.len() > 5),
        "{alice_view}"
    );

    let archive = export(&srv, name).await;
    let archive_lines = lines(&archive);
    let header = line_json(archive_lines[0]);
    assert_eq!(header["format"], "maas-tenant-export", "{header}");
    assert_eq!(header["version"], 2, "{header}");
    assert_eq!(header["tenant"]["server_name"], name, "{header}");
    assert_eq!(header["tenant"]["hosts"], json!([name]), "{header}");
    let trailer = line_json(archive_lines[archive_lines.len() - 1]);
    assert_eq!(trailer["end"], true, "{trailer}");
    assert!(
        trailer["rows"].as_u64().is_some_and(|n| n > 20),
        "{trailer}"
    );

    srv.op()
        .delete(&format!("{OP}/tenants/{}", enc(name)))
        .await
        .ok();
    assert_ne!(alice_api.whoami().await.status, 200);

    let imported = import_raw(&srv, &archive, "").await.ok();
    assert_eq!(imported["server_name"], name, "{imported}");
    assert_eq!(imported["hosts"], json!([name]), "{imported}");
    assert_eq!(imported["registration"], "open", "{imported}");
    assert_eq!(imported["user_count"], 3, "{imported}");
    assert_eq!(
        imported["created_ts"], before_tenant["created_ts"],
        "{imported}"
    );
    assert_ne!(
        imported["tenant_id"], before_tenant["tenant_id"],
        "{imported}"
    );

    // Before anyone touches it, the imported tenant exports row for row as the original:
    // the same signing key, the same PDUs, every table.
    let again = export(&srv, name).await;
    let again_lines = lines(&again);
    assert_eq!(again_lines.len(), archive_lines.len());
    let tables = 1..archive_lines.len() - 1;
    assert!(
        again_lines[tables.clone()] == archive_lines[tables],
        "the re-export differs from the archive"
    );

    // Old access tokens still work, for the same devices.
    for session in [&filled.alice, &filled.bob] {
        let who = api.as_user(session).whoami().await.ok();
        assert_eq!(who["user_id"], session.user_id.as_str(), "{who}");
        assert_eq!(who["device_id"], session.device_id.as_str(), "{who}");
    }
    // Every user logs in with the same password.
    api.login("admin", &filled.admin_password).await;
    api.login("alice", "pw-alice-1").await;
    api.login("bob", "pw-bob-1").await;

    // Sync shows the same rooms, history and state; the E2EE keys and the backup are back.
    assert_eq!(view(&alice_api).await, alice_view);
    assert_eq!(view(&bob_api).await, bob_view);
    assert_eq!(keys_view(&alice_api, &users).await, alice_keys);
    let redacted = get_event_raw(&bob_api, &filled.room, {
        let timeline = alice_view["rooms"][&filled.room]["timeline"]
            .as_array()
            .expect("timeline");
        timeline
            .iter()
            .find(|e| e["type"] == "m.room.message" && e["content"] == json!({}))
            .and_then(|e| e["event_id"].as_str())
            .expect("the redacted message")
    })
    .await
    .ok();
    assert_eq!(
        redacted["unsigned"]["redacted_because"]["content"]["reason"], "oops",
        "{redacted}"
    );

    // Bob's sync carries on from before the export, with the to-device message that waited.
    let s = sync(&bob_api, Some(&filled.bob_since), None).await;
    let to_device = to_device_events(&s);
    assert!(
        to_device
            .iter()
            .any(|e| e["content"]["note"] == "waiting in the archive"),
        "{s}"
    );

    // New messages go both ways, after every old stream position.
    let bob_next = next_batch(&s);
    let alice_next = next_batch(&sync(&alice_api, None, None).await);
    let new = send_text(&alice_api, &filled.room, "after the move").await;
    let s = sync(&bob_api, Some(&bob_next), None).await;
    assert_eq!(
        ids(&timeline(&s, &filled.room)),
        std::slice::from_ref(&new),
        "{s}"
    );
    let reply = send_text(&bob_api, &filled.room, "received").await;
    let s = sync(&alice_api, Some(&alice_next), None).await;
    assert_eq!(ids(&timeline(&s, &filled.room)), [new, reply], "{s}");
}

#[tokio::test]
async fn damaged_archives_are_refused_and_change_nothing() {
    let srv = TestServer::start().await;
    let name = "damaged.test";
    srv.create_tenant(name, &[name], "open").await;
    let carol = user(&srv, name, name, "carol").await;
    let carol_api = srv.on(name).as_user(&carol);
    let room = create_room(&carol_api, json!({"name": "Carol's"})).await;
    for i in 0..5 {
        send_text(&carol_api, &room, &format!("message {i}")).await;
    }
    let archive = export(&srv, name).await;
    let tenants_before = srv.op().get(&format!("{OP}/tenants")).await.ok();
    let dirs_before = tenant_dirs(&srv.data_dir).len();
    let view_before = view(&carol_api).await;

    let all: Vec<Vec<u8>> = lines(&archive).iter().map(|l| l.to_vec()).collect();
    let users_line = all
        .iter()
        .position(|l| line_json(l)["table"] == "users")
        .expect("users line");
    // One byte of a row flipped, the checksum left as it was.
    let mut flipped = archive.clone();
    let at = archive
        .windows(b"\"carol\"".len())
        .position(|w| w == b"\"carol\"")
        .expect("carol's row");
    flipped[at + 1] = b'k';
    // The users written twice, with a checksum that matches: the database refuses the copy
    // after many rows went in, and all of them must be rolled back.
    let mut doubled = all[..all.len() - 1].to_vec();
    doubled.insert(users_line + 1, all[users_line].clone());
    // A column this server doesn't have, with a checksum that matches.
    let mut unknown = all[..all.len() - 1].to_vec();
    let mut chunk = line_json(&unknown[users_line]);
    chunk["columns"][1] = json!("shoe_size");
    unknown[users_line] = chunk.to_string().into_bytes();

    // Damage the file itself shows. A header that isn't one is refused before the server looks
    // for a conflict; after a good header, the conflict is told before the rest is read.
    let damaged_files: Vec<(&str, Vec<u8>, &str, bool)> = vec![
        ("empty", Vec::new(), "empty", false),
        (
            "half",
            archive[..archive.len() / 2].to_vec(),
            "truncated",
            true,
        ),
        (
            "no trailer",
            archive[..archive.len() - all[all.len() - 1].len() - 1].to_vec(),
            "truncated",
            true,
        ),
        ("flipped byte", flipped, "corrupted", true),
        (
            "foreign JSON",
            b"{\"hello\": \"world\"}\n".to_vec(),
            "Not a maas",
            false,
        ),
        (
            "foreign binary",
            b"\x89PNG\r\n\x1a\n\0\0".to_vec(),
            "Not a maas",
            false,
        ),
    ];
    for (what, bytes, message, good_header) in damaged_files {
        let resp = import_raw(&srv, &bytes, "").await;
        if good_header {
            assert_error(&resp, 409, "M_CONFLICT");
        } else {
            assert_error(&resp, 400, "M_INVALID_PARAM");
        }
        let resp = import_raw(&srv, &bytes, "?replace=true").await;
        assert_error(&resp, 400, "M_INVALID_PARAM");
        let error = resp.body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{what}: {error:?} should say {message:?}"
        );
    }
    // Damage only the database finds, while importing over the tenant: the tenant stays.
    for (what, bytes) in [
        ("rows refused", with_valid_trailer(&doubled)),
        ("unknown column", with_valid_trailer(&unknown)),
    ] {
        assert_error(&import_raw(&srv, &bytes, "").await, 409, "M_CONFLICT");
        let resp = import_raw(&srv, &bytes, "?replace=true").await;
        assert_error(&resp, 400, "M_INVALID_PARAM");
        let error = resp.body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("does not fit") && error.contains("users"),
            "{what}: {error:?}"
        );
    }

    assert_eq!(
        srv.op().get(&format!("{OP}/tenants")).await.ok(),
        tenants_before
    );
    assert_eq!(tenant_dirs(&srv.data_dir).len(), dirs_before);
    assert_eq!(view(&carol_api).await, view_before);
    carol_api.whoami().await.ok();
}

#[tokio::test]
async fn importing_over_a_tenant_needs_replace() {
    let srv = TestServer::start().await;
    let name = "conflict.test";
    srv.create_tenant(name, &[name], "open").await;
    let dave = user(&srv, name, name, "dave").await;
    let dave_api = srv.on(name).as_user(&dave);
    let room = create_room(&dave_api, json!({})).await;
    let kept = send_text(&dave_api, &room, "in the archive").await;
    let archive = export(&srv, name).await;
    let original = srv.get_tenant(name).await;
    let lost = send_text(&dave_api, &room, "after the export").await;

    for query in ["", "?replace=false"] {
        let resp = import_raw(&srv, &archive, query).await;
        assert_error(&resp, 409, "M_CONFLICT");
    }
    assert_error(
        &import_raw(&srv, &archive, "?replace=maybe").await,
        400,
        "M_INVALID_PARAM",
    );
    assert_eq!(srv.get_tenant(name).await, original);
    get_event_raw(&dave_api, &room, &lost).await.ok();

    let replaced = import_raw(&srv, &archive, "?replace=true").await.ok();
    assert_eq!(replaced["server_name"], name, "{replaced}");
    assert_ne!(replaced["tenant_id"], original["tenant_id"], "{replaced}");
    // The archive's state, not the one it replaced; Dave's token still works.
    get_event_raw(&dave_api, &room, &kept).await.ok();
    assert_error(
        &get_event_raw(&dave_api, &room, &lost).await,
        404,
        "M_NOT_FOUND",
    );
    assert!(
        !srv.tenant_storage_exists(original["tenant_id"].as_str().expect("id"))
            .await
    );

    // A host served by another tenant is refused too.
    srv.op()
        .delete(&format!("{OP}/tenants/{}", enc(name)))
        .await
        .ok();
    srv.create_tenant("squatter.test", &[name], "closed").await;
    let resp = import_raw(&srv, &archive, "?replace=true").await;
    assert_error(&resp, 409, "M_CONFLICT");
    assert!(resp.text.contains(name), "{}", resp.text);
    srv.op()
        .delete(&format!("{OP}/tenants/{}", enc("squatter.test")))
        .await
        .ok();
    import_raw(&srv, &archive, "").await.ok();
    dave_api.whoami().await.ok();
}

/// Every row of an archive by table, as `{column: value}` maps in a fixed order, booleans as
/// the integers SQLite stores: archives of the same rows from either backend compare equal
/// (their column order and text collation may differ). Blob lines are left out.
fn rows_by_table(archive: &[u8]) -> std::collections::BTreeMap<String, Vec<String>> {
    fn booleans_as_integers(value: &mut Value) {
        match value {
            Value::Bool(b) => *value = json!(i64::from(*b)),
            Value::Array(items) => items.iter_mut().for_each(booleans_as_integers),
            Value::Object(map) => map.values_mut().for_each(booleans_as_integers),
            _ => {}
        }
    }
    let all = lines(archive);
    let mut tables = std::collections::BTreeMap::<String, Vec<String>>::new();
    for line in &all[1..all.len() - 1] {
        let mut chunk = line_json(line);
        if chunk.get("blob").is_some() {
            continue;
        }
        booleans_as_integers(&mut chunk);
        let columns: Vec<String> = chunk["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c.as_str().expect("column name").to_owned())
            .collect();
        let rows = tables
            .entry(chunk["table"].as_str().expect("table").to_owned())
            .or_default();
        for row in chunk["rows"].as_array().expect("rows") {
            let values = row.as_array().expect("row");
            let map: std::collections::BTreeMap<&String, &Value> =
                columns.iter().zip(values).collect();
            rows.push(serde_json::to_string(&map).expect("row json"));
        }
    }
    tables.values_mut().for_each(|rows| rows.sort());
    tables
}

/// Checks a tenant moved to `to` against what its users saw before the move.
async fn assert_moved(to: &TestServer, name: &str, filled: &Filled, views: &(Value, Value, Value)) {
    let api = to.on(name);
    let (alice_api, bob_api) = (api.as_user(&filled.alice), api.as_user(&filled.bob));
    for session in [&filled.alice, &filled.bob] {
        let who = api.as_user(session).whoami().await.ok();
        assert_eq!(who["user_id"], session.user_id.as_str(), "{who}");
        assert_eq!(who["device_id"], session.device_id.as_str(), "{who}");
    }
    api.login("admin", &filled.admin_password).await;
    api.login("alice", "pw-alice-1").await;
    api.login("bob", "pw-bob-1").await;
    let users = [filled.alice.user_id.as_str(), filled.bob.user_id.as_str()];
    assert_eq!(view(&alice_api).await, views.0);
    assert_eq!(view(&bob_api).await, views.1);
    assert_eq!(keys_view(&alice_api, &users).await, views.2);
}

#[tokio::test]
async fn a_tenant_moves_from_sqlite_to_postgres_and_back() {
    let sqlite = TestServer::start_with(Options::default().on_backend(TestBackend::Sqlite)).await;
    let postgres =
        TestServer::start_with(Options::default().on_backend(TestBackend::Postgres)).await;
    assert!(sqlite.database.is_none() && postgres.database.is_some());
    let name = "moving.test";
    let filled = fill(&sqlite, name).await;
    let api = sqlite.on(name);
    let users = [filled.alice.user_id.as_str(), filled.bob.user_id.as_str()];
    let views = (
        view(&api.as_user(&filled.alice)).await,
        view(&api.as_user(&filled.bob)).await,
        keys_view(&api.as_user(&filled.alice), &users).await,
    );

    // SQLite → PostgreSQL: the same rows, then the same answers.
    let archive = export(&sqlite, name).await;
    import_raw(&postgres, &archive, "").await.ok();
    assert_eq!(
        rows_by_table(&export(&postgres, name).await),
        rows_by_table(&archive)
    );
    assert_moved(&postgres, name, &filled, &views).await;
    let s = sync(
        &postgres.on(name).as_user(&filled.bob),
        Some(&filled.bob_since),
        None,
    )
    .await;
    assert!(
        to_device_events(&s)
            .iter()
            .any(|e| e["content"]["note"] == "waiting in the archive"),
        "{s}"
    );
    let alice_pg = postgres.on(name).as_user(&filled.alice);
    let written = send_text(&alice_pg, &filled.room, "written on PostgreSQL").await;

    // PostgreSQL → SQLite, over the tenant still there: it now has the new message too.
    let back = export(&postgres, name).await;
    assert_error(&import_raw(&sqlite, &back, "").await, 409, "M_CONFLICT");
    import_raw(&sqlite, &back, "?replace=true").await.ok();
    assert_eq!(
        rows_by_table(&export(&sqlite, name).await),
        rows_by_table(&back)
    );
    let alice_sqlite = sqlite.on(name).as_user(&filled.alice);
    let event = get_event_raw(&alice_sqlite, &filled.room, &written)
        .await
        .ok();
    assert_eq!(event["content"]["body"], "written on PostgreSQL", "{event}");
    let reply = send_text(&sqlite.on(name).as_user(&filled.bob), &filled.room, "back").await;
    get_event_raw(&alice_sqlite, &filled.room, &reply)
        .await
        .ok();
    sqlite.login(name, "alice", "pw-alice-1").await;
}

/// Runs `maas <args>` against `srv` (its operator URL, the test operator token), bounded in
/// time.
pub(crate) async fn maas(srv: &TestServer, args: &[&str]) -> Output {
    let mut cmd = clean_command(env!("CARGO_BIN_EXE_maas"));
    cmd.arg("--url")
        .arg(&srv.operator_url)
        .args(args)
        .env("MAAS_OPERATOR_TOKEN", &srv.operator_token)
        .current_dir(srv.data_dir.parent().expect("temp dir"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(Duration::from_secs(30), cmd.output()).await {
        Ok(out) => out.expect("running maas"),
        Err(_) => panic!("`maas {}` didn't finish within 30 s", args.join(" ")),
    }
}

#[track_caller]
pub(crate) fn succeeded(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "maas failed with {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[track_caller]
fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "maas succeeded unexpectedly");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn cli_moves_a_tenant_to_another_server() {
    let old = TestServer::start().await;
    let new = TestServer::start().await;
    let name = "move.test";
    old.create_tenant(name, &[name, "chat.move.test"], "token")
        .await;
    let erin = user(&old, name, name, "erin").await;
    let room = create_room(&old.on(name).as_user(&erin), json!({"name": "Moving"})).await;
    let message = send_text(&old.on(name).as_user(&erin), &room, "pack the boxes").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("move.jsonl");
    let file_arg = file.to_str().expect("utf-8 path");

    let out = succeeded(&maas(&old, &["tenant", "export", name, "--out", file_arg]).await);
    assert!(
        out.starts_with(&format!("Exported tenant {name} to {file_arg} (")),
        "{out}"
    );
    let mode = std::fs::metadata(&file)
        .expect("archive")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "archives hold secrets");
    let json: Value = serde_json::from_str(&succeeded(
        &maas(
            &old,
            &["tenant", "export", name, "--out", file_arg, "--json"],
        )
        .await,
    ))
    .expect("JSON summary");
    assert_eq!(json["server_name"], name, "{json}");
    assert!(json["rows"].as_u64().is_some_and(|n| n > 0), "{json}");
    assert_eq!(
        json["bytes"].as_u64(),
        Some(std::fs::metadata(&file).expect("archive").len())
    );
    let missing = dir.path().join("missing.jsonl");
    let err = failed(
        &maas(
            &old,
            &[
                "tenant",
                "export",
                "nope.test",
                "--out",
                missing.to_str().expect("path"),
            ],
        )
        .await,
    );
    assert!(err.starts_with("error: M_NOT_FOUND: "), "{err}");
    assert!(!missing.exists());

    let out = succeeded(&maas(&new, &["tenant", "import", file_arg]).await);
    assert!(
        out.starts_with(&format!("Imported tenant {name} from ")),
        "{out}"
    );
    assert!(out.contains("chat.move.test"), "{out}");
    let api = new.on(name);
    let who = api.as_user(&erin).whoami().await.ok();
    assert_eq!(who["user_id"], erin.user_id.as_str(), "{who}");
    api.login("erin", "pw-erin-1").await;
    get_event_raw(&api.as_user(&erin), &room, &message)
        .await
        .ok();
    assert_eq!(new.get_tenant(name).await["registration"], "token");

    let err = failed(&maas(&new, &["tenant", "import", file_arg]).await);
    assert!(err.starts_with("error: M_CONFLICT: "), "{err}");
    let json: Value = serde_json::from_str(&succeeded(
        &maas(&new, &["tenant", "import", file_arg, "--replace", "--json"]).await,
    ))
    .expect("tenant JSON");
    assert_eq!(json["server_name"], name, "{json}");
    assert_eq!(json["user_count"], 2, "{json}");

    let mut damaged = std::fs::read(&file).expect("archive");
    damaged.truncate(damaged.len() - 10);
    std::fs::write(&file, damaged).expect("write damaged");
    let err = failed(&maas(&new, &["tenant", "import", file_arg, "--replace"]).await);
    assert!(err.starts_with("error: M_INVALID_PARAM: "), "{err}");
    assert!(err.contains("truncated"), "{err}");
    api.as_user(&erin).whoami().await.ok();
}

/// `len` bytes that neither repeat nor compress: SHA-256 digests of a counter.
fn noise(len: usize, seed: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(&Sha256::digest(format!("{seed}/{i}")));
        i += 1;
    }
    out.truncate(len);
    out
}

/// `POST /_matrix/media/v3/upload` of `bytes` as `image/png`; the media id.
async fn upload_png(api: &Api<'_>, server_name: &str, bytes: &[u8]) -> String {
    let builder = api
        .builder(Method::POST, "/_matrix/media/v3/upload?filename=noise.png")
        .header("content-type", "image/png")
        .body(bytes.to_vec());
    let uploaded = TestServer::send(builder).await.ok();
    let uri = uploaded["content_uri"].as_str().expect("content_uri");
    uri.strip_prefix(&format!("mxc://{server_name}/"))
        .unwrap_or_else(|| panic!("{uri} is not of {server_name}"))
        .to_owned()
}

/// `GET /_matrix/client/v1/media/download/{server_name}/{media_id}`: status, content type and
/// bytes.
async fn download(api: &Api<'_>, server_name: &str, media_id: &str) -> (u16, String, Vec<u8>) {
    let path = format!("/_matrix/client/v1/media/download/{server_name}/{media_id}");
    let resp = api
        .builder(Method::GET, &path)
        .send()
        .await
        .expect("download request");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = resp.bytes().await.expect("download body").to_vec();
    (status, content_type, bytes)
}

/// The blob lines of an archive.
fn blob_lines(archive: &[u8]) -> Vec<Value> {
    lines(archive)
        .iter()
        .map(|l| line_json(l))
        .filter(|l| l.get("blob").is_some())
        .collect()
}

/// The tenants holding media in a server's blob store (`<data_dir>/media/tenants/<id>`).
fn media_tenants(srv: &TestServer) -> usize {
    std::fs::read_dir(srv.data_dir.join("media/tenants")).map_or(0, |dir| dir.count())
}

#[tokio::test]
async fn media_travels_with_the_tenant() {
    let old = TestServer::start_with(Options::default().on_backend(TestBackend::Sqlite)).await;
    let new = TestServer::start_with(Options::default().on_backend(TestBackend::Postgres)).await;
    let name = "media-move.test";
    old.create_tenant(name, &[name], "open").await;
    let alice = user(&old, name, name, "alice").await;
    let api = old.on(name).as_user(&alice);
    // A file that takes several archive lines; a small one uploaded twice (one blob, two
    // media); and a media id whose bytes never came (a record without a blob).
    let large = noise(2 * 1024 * 1024 + 17, "large");
    let small = noise(1000, "small");
    let large_id = upload_png(&api, name, &large).await;
    let small_ids = [
        upload_png(&api, name, &small).await,
        upload_png(&api, name, &small).await,
    ];
    let pending = api.post("/_matrix/media/v1/create", json!({})).await.ok();
    assert!(pending["content_uri"].is_string(), "{pending}");

    let archive = export(&old, name).await;
    let all = lines(&archive);
    assert_eq!(line_json(all[0])["version"], 2);
    assert!(
        all.iter().all(|l| l.len() < (1 << 20) + 1024),
        "an archive line much longer than 1 MiB"
    );
    let pieces = blob_lines(&archive);
    let mut digests = [
        hex::encode(Sha256::digest(&large)),
        hex::encode(Sha256::digest(&small)),
    ];
    digests.sort();
    let whole: Vec<&str> = pieces
        .iter()
        .filter(|l| l["last"] == true)
        .map(|l| l["blob"].as_str().expect("blob"))
        .collect();
    assert_eq!(whole, digests);
    // 2 MiB in pieces of at most 768 KiB, and the small file.
    assert_eq!(pieces.len(), 3 + 1);
    assert_eq!(line_json(all[all.len() - 1])["blobs"], 2);

    import_raw(&new, &archive, "").await.ok();
    // Untouched, the imported tenant exports the same media, on the other backend.
    assert!(blob_lines(&export(&new, name).await) == pieces);

    // Someone who logs in on the new server downloads the same bytes under the same URIs.
    let fresh = new.login(name, "alice", "pw-alice-1").await;
    let new_api = new.on(name).as_user(&fresh);
    for (id, bytes) in [
        (&large_id, &large),
        (&small_ids[0], &small),
        (&small_ids[1], &small),
    ] {
        let (status, content_type, got) = download(&new_api, name, id).await;
        assert_eq!(status, 200, "media {id}");
        assert_eq!(content_type, "image/png", "media {id}");
        assert!(
            got == *bytes,
            "media {id}: {} bytes, not the {} uploaded",
            got.len(),
            bytes.len()
        );
    }

    // Bytes that aren't the blob's, behind a valid checksum: refused, and the failed import
    // leaves no media behind (the first blob was kept before the second was refused); the
    // tenant it would have replaced keeps its own.
    let mut damaged: Vec<Vec<u8>> = all.iter().map(|l| l.to_vec()).collect();
    damaged.pop();
    let at = damaged
        .iter()
        .position(|l| line_json(l)["blob"] == digests[1].as_str())
        .expect("a blob line");
    let mut line = line_json(&damaged[at]);
    let data = line["data"].as_str().expect("data");
    let flipped = if data.starts_with('A') { "B" } else { "A" };
    line["data"] = json!(format!("{flipped}{}", &data[1..]));
    damaged[at] = line.to_string().into_bytes();
    assert_eq!(media_tenants(&new), 1);
    let resp = import_raw(&new, &with_valid_trailer(&damaged), "?replace=true").await;
    assert_error(&resp, 400, "M_INVALID_PARAM");
    let error = resp.body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("corrupted") && error.contains(&digests[1]),
        "{error}"
    );
    assert_eq!(media_tenants(&new), 1);
    let (status, _, got) = download(&new_api, name, &large_id).await;
    assert_eq!(status, 200);
    assert!(got == large);
}
