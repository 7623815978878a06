//! Server keys (spec: Server-Server API, "Retrieving server keys"): every tenant publishes its
//! own signed keys at `/_matrix/key/v2/server`, keeps the keys it rotated away from as
//! `old_verify_keys`, and vouches as a notary for the keys of the other servers it reaches
//! (`/_matrix/key/v2/query`), here co-hosted tenants reached in-process.

use std::collections::BTreeMap;

use ruma::CanonicalJsonObject;
use ruma::serde::Base64;
use ruma::signatures::{PublicKeyMap, verify_json};
use serde_json::{Value, json};

use crate::harness::*;

const SERVER_KEYS: &str = "/_matrix/key/v2/server";
const QUERY: &str = "/_matrix/key/v2/query";

async fn two_tenants() -> TestServer {
    let srv = TestServer::start().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    srv.create_tenant("b.test", &["b.test"], "open").await;
    srv
}

/// The keys of `server` in `document`: current ones, or old ones with `old`.
fn keys_of(document: &Value, old: bool) -> BTreeMap<String, Base64> {
    let field = if old {
        "old_verify_keys"
    } else {
        "verify_keys"
    };
    document[field]
        .as_object()
        .unwrap_or_else(|| panic!("no {field}: {document}"))
        .iter()
        .map(|(id, key)| {
            let key = Base64::parse(key["key"].as_str().expect("key")).expect("base64 key");
            (id.clone(), key)
        })
        .collect()
}

/// Asserts that `signer` signed `document` with one of `keys`; other signatures are ignored.
#[track_caller]
fn assert_signed_by(document: &Value, signer: &str, keys: BTreeMap<String, Base64>) {
    let mut object: CanonicalJsonObject =
        serde_json::from_value(document.clone()).expect("canonical JSON");
    if let Some(ruma::CanonicalJsonValue::Object(signatures)) = object.get_mut("signatures") {
        signatures.retain(|name, _| name == signer);
    }
    let public = PublicKeyMap::from([(signer.to_owned(), keys)]);
    verify_json(&public, &object).unwrap_or_else(|e| panic!("not signed by {signer}: {e}"));
}

#[tokio::test]
async fn each_tenant_publishes_its_own_signed_keys() {
    let srv = two_tenants().await;
    let a = srv.on("a.test").get(SERVER_KEYS).await.ok();
    let b = srv.on("b.test").get(SERVER_KEYS).await.ok();
    assert_eq!(a["server_name"], "a.test", "{a}");
    assert_eq!(b["server_name"], "b.test", "{b}");
    let (a_keys, b_keys) = (keys_of(&a, false), keys_of(&b, false));
    assert_eq!(a_keys.len(), 1, "{a}");
    assert_ne!(a_keys, b_keys, "tenants share no key");
    assert_signed_by(&a, "a.test", a_keys.clone());
    assert_signed_by(&b, "b.test", b_keys);
    assert_eq!(a["old_verify_keys"], json!({}), "{a}");
    let valid_until = a["valid_until_ts"].as_i64().expect("valid_until_ts");
    let week = 7 * 24 * 3600 * 1000;
    assert!(
        valid_until > now_ms() && valid_until <= now_ms() + week,
        "{a}"
    );
    // The tenant says which key it signs with.
    let tenant = srv.get_tenant("a.test").await;
    assert!(
        a_keys.contains_key(tenant["signing_key"].as_str().expect("key")),
        "{tenant}"
    );
}

#[tokio::test]
async fn a_rotated_key_stays_published_as_old() {
    let srv = two_tenants().await;
    let before = srv.on("a.test").get(SERVER_KEYS).await.ok();
    let old_keys = keys_of(&before, false);
    let rotated = srv
        .op()
        .post(&format!("{OP}/tenants/a.test/rotate_key"), json!({}))
        .await
        .ok();
    let new_id = rotated["signing_key"]
        .as_str()
        .expect("new key id")
        .to_owned();
    assert!(!old_keys.contains_key(&new_id), "a new key: {rotated}");

    let after = srv.on("a.test").get(SERVER_KEYS).await.ok();
    let current = keys_of(&after, false);
    assert_eq!(current.keys().collect::<Vec<_>>(), vec![&new_id], "{after}");
    let old = keys_of(&after, true);
    assert_eq!(
        old, old_keys,
        "the replaced key is published as old: {after}"
    );
    let (old_id, _) = old_keys.iter().next().expect("one old key");
    let expired = after["old_verify_keys"][old_id]["expired_ts"].as_i64();
    assert!(expired.is_some_and(|ts| ts <= now_ms()), "{after}");
    // Signed by the new key alone.
    assert_signed_by(&after, "a.test", current);
    let mut with_old_id = BTreeMap::new();
    with_old_id.insert(
        new_id.clone(),
        old_keys.values().next().cloned().expect("key"),
    );
    let object: CanonicalJsonObject = serde_json::from_value(after.clone()).expect("json");
    assert!(
        verify_json(
            &PublicKeyMap::from([("a.test".into(), with_old_id)]),
            &object
        )
        .is_err(),
        "the old key does not sign any more"
    );
    // Operators see the new key; unknown tenants are 404.
    assert_eq!(
        srv.get_tenant("a.test").await["signing_key"],
        new_id.as_str()
    );
    let resp = srv
        .op()
        .post(&format!("{OP}/tenants/nope.test/rotate_key"), json!({}))
        .await;
    assert_eq!(resp.status, 404, "{}", resp.text);
}

#[tokio::test]
async fn a_tenant_vouches_for_the_keys_of_others_as_notary() {
    let srv = two_tenants().await;
    let b_own = srv.on("b.test").get(SERVER_KEYS).await.ok();
    let a_own = srv.on("a.test").get(SERVER_KEYS).await.ok();
    // Port 1 of loopback: nothing answers there (and outbound requests to loopback are
    // refused unless allowed).
    let query = json!({"server_keys": {"b.test": {}, "a.test": {}, "127.0.0.1:1": {}}});
    let answer = srv.on("a.test").post(QUERY, query).await.ok();
    let documents = answer["server_keys"].as_array().expect("server_keys");
    // A server that can't be reached is left out rather than failing the query.
    assert_eq!(documents.len(), 2, "{answer}");
    let of = |name: &str| {
        documents
            .iter()
            .find(|d| d["server_name"] == name)
            .unwrap_or_else(|| panic!("no keys of {name}: {answer}"))
    };
    let b = of("b.test");
    assert_eq!(keys_of(b, false), keys_of(&b_own, false));
    assert_signed_by(b, "b.test", keys_of(&b_own, false));
    assert_signed_by(b, "a.test", keys_of(&a_own, false));
    assert_signed_by(of("a.test"), "a.test", keys_of(&a_own, false));

    // The GET form for one server.
    let one = srv.on("a.test").get(&format!("{QUERY}/b.test")).await.ok();
    let docs = one["server_keys"].as_array().expect("server_keys");
    assert_eq!(docs.len(), 1, "{one}");
    assert_signed_by(&docs[0], "a.test", keys_of(&a_own, false));
}
