//! An archive must agree with itself before it becomes a tenant: the server name of its
//! header, its signing keys, the signatures on its events and the user ids in its keys. An
//! archive edited (or put together) so that they disagree is refused with `400
//! M_INVALID_PARAM` naming what disagrees, and changes nothing.

use serde_json::{Value, json};

use crate::e2ee_support::*;
use crate::export::{export, import_raw, line_json, lines, with_valid_trailer};
use crate::harness::*;
use crate::room_support::*;

/// The archive's lines (without newlines), owned.
fn owned_lines(archive: &[u8]) -> Vec<Vec<u8>> {
    lines(archive).iter().map(|l| l.to_vec()).collect()
}

/// `archive` with its header's server name and hosts changed to `server_name`, with a valid
/// checksum: only the server's own checks can tell.
fn renamed(archive: &[u8], server_name: &str) -> Vec<u8> {
    let mut all = owned_lines(archive);
    let mut header = line_json(&all[0]);
    header["tenant"]["server_name"] = json!(server_name);
    header["tenant"]["hosts"] = json!([server_name]);
    all[0] = header.to_string().into_bytes();
    all.pop(); // the old trailer
    with_valid_trailer(&all)
}

/// `archive` with the lines of `table` replaced by `replacement` (lines of another archive).
fn with_table(archive: &[u8], table: &str, replacement: &[Vec<u8>]) -> Vec<u8> {
    let mut all = owned_lines(archive);
    all.pop();
    let at = all
        .iter()
        .position(|l| line_json(l)["table"] == table)
        .unwrap_or_else(|| panic!("no {table} line"));
    all.retain(|l| line_json(l)["table"] != table);
    for (i, line) in replacement.iter().enumerate() {
        all.insert(at + i, line.clone());
    }
    with_valid_trailer(&all)
}

fn table_lines(archive: &[u8], table: &str) -> Vec<Vec<u8>> {
    owned_lines(archive)
        .into_iter()
        .filter(|l| line_json(l)["table"] == table)
        .collect()
}

/// Imports `archive` expecting a refusal that mentions every one of `words`; the platform's
/// tenants and tenant directories stay as they were.
async fn assert_refused(srv: &TestServer, archive: &[u8], words: &[&str]) {
    let tenants = srv.op().get(&format!("{OP}/tenants")).await.ok();
    let dirs = tenant_dirs(&srv.data_dir).len();
    for query in ["", "?replace=true"] {
        let resp = import_raw(srv, archive, query).await;
        assert_error(&resp, 400, "M_INVALID_PARAM");
        let error = resp.body["error"].as_str().unwrap_or_default();
        for word in words {
            assert!(error.contains(word), "{error:?} should mention {word:?}");
        }
    }
    assert_eq!(srv.op().get(&format!("{OP}/tenants")).await.ok(), tenants);
    assert_eq!(tenant_dirs(&srv.data_dir).len(), dirs);
}

/// A tenant whose user sent a few messages.
async fn tenant_with_events(srv: &TestServer, name: &str) -> Session {
    srv.create_tenant(name, &[name], "open").await;
    let frank = user(srv, name, name, "frank").await;
    let api = srv.on(name).as_user(&frank);
    let room = create_room(&api, json!({"name": "Signed"})).await;
    for i in 0..3 {
        send_text(&api, &room, &format!("message {i}")).await;
    }
    frank
}

#[tokio::test]
async fn an_edited_server_name_is_refused() {
    let srv = TestServer::start().await;
    let name = "signed.test";
    tenant_with_events(&srv, name).await;
    let archive = export(&srv, name).await;

    // Imported as a new tenant next to the original, and over the original itself.
    assert_refused(
        &srv,
        &renamed(&archive, "renamed.test"),
        &[name, "renamed.test"],
    )
    .await;
    srv.op()
        .delete(&format!("{OP}/tenants/{}", enc(name)))
        .await
        .ok();
    assert_refused(
        &srv,
        &renamed(&archive, "renamed.test"),
        &[name, "renamed.test"],
    )
    .await;
    // The archive as it was still imports.
    let imported = import_raw(&srv, &archive, "").await.ok();
    assert_eq!(imported["server_name"], name, "{imported}");
}

#[tokio::test]
async fn signing_keys_of_another_tenant_are_refused() {
    let srv = TestServer::start().await;
    tenant_with_events(&srv, "one.test").await;
    srv.create_tenant("two.test", &["two.test"], "open").await;
    let one = export(&srv, "one.test").await;
    let two = export(&srv, "two.test").await;
    // Imported where one.test was.
    srv.op()
        .delete(&format!("{OP}/tenants/{}", enc("one.test")))
        .await
        .ok();
    let swapped = with_table(&one, "signing_keys", &table_lines(&two, "signing_keys"));
    assert_refused(&srv, &swapped, &["signing key"]).await;

    // No signing key at all: the tenant could not sign anything.
    let mut keys = line_json(&table_lines(&one, "signing_keys")[0]);
    keys["rows"] = json!([]);
    let keyless = with_table(&one, "signing_keys", &[keys.to_string().into_bytes()]);
    assert_refused(&srv, &keyless, &["signing key"]).await;

    // The same key id with another key: the signatures don't verify.
    let mut other_key = line_json(&table_lines(&two, "signing_keys")[0]);
    let own_key = line_json(&table_lines(&one, "signing_keys")[0]);
    other_key["rows"][0][0] = own_key["rows"][0][0].clone();
    let forged = with_table(&one, "signing_keys", &[other_key.to_string().into_bytes()]);
    assert_refused(&srv, &forged, &["signature"]).await;
}

#[tokio::test]
async fn keys_of_users_of_another_server_are_refused() {
    let srv = TestServer::start().await;
    let name = "keys.test";
    srv.create_tenant(name, &[name], "open").await;
    // No room, no event: only the device keys name the server.
    let gina = user(&srv, name, name, "gina").await;
    let api = srv.on(name).as_user(&gina);
    let device = TestDevice::of(&gina);
    upload_ok(&api, json!({"device_keys": device.device_keys()})).await;
    let archive = export(&srv, name).await;
    let events: Vec<Value> = table_lines(&archive, "events")
        .iter()
        .map(|l| line_json(l))
        .collect();
    assert!(events.iter().all(|c| c["rows"] == json!([])), "{events:?}");

    assert_refused(
        &srv,
        &renamed(&archive, "elsewhere.test"),
        &["device_keys", &gina.user_id],
    )
    .await;
}
