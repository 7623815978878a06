//! Helpers shared by the end-to-end-encryption tests (spec v1.15, Client-Server API,
//! "End-to-End Encryption"):
//!
//! - raw-HTTP key material: device keys really signed with ed25519 (ruma-signatures), signed
//!   one-time and fallback keys, cross-signing keys, and thin wrappers over the `keys/*`
//!   endpoints;
//! - matrix-sdk clients (in-memory stores: a "second device" is a new `Client` logging in
//!   again) with bounded waits, and accessors for what an SDK timeline decrypted.

use std::future::Future;
use std::time::{Duration, Instant};

use matrix_sdk::Client;
use matrix_sdk::config::SyncSettings;
use matrix_sdk::deserialized_responses::{TimelineEvent, TimelineEventKind};
use matrix_sdk::encryption::EncryptionSettings;
use matrix_sdk::ruma::api::client::filter::FilterDefinition;
use matrix_sdk::ruma::api::client::sync::sync_events::v3::Filter;
use matrix_sdk::ruma::{OwnedRoomId, UInt};
use matrix_sdk::sync::SyncResponse;
use ruma::serde::Base64;
use ruma::signatures::{Ed25519KeyPair, sign_json};
use ruma::{CanonicalJsonObject, CanonicalJsonValue};
use serde_json::{Value, json};

use crate::harness::*;

/// Upper bound for one SDK operation.
pub const SDK_TIMEOUT: Duration = Duration::from_secs(30);

/// The Olm and Megolm algorithms a device announces.
pub const ALGORITHMS: [&str; 2] = ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"];

/// The one-time key algorithm every client uses.
pub const SIGNED_CURVE25519: &str = "signed_curve25519";

/// Runs `f` with a timeout of `SDK_TIMEOUT`.
pub async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(SDK_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} timed out after {SDK_TIMEOUT:?}"))
}

/// Calls `check` every 100 ms until it returns `Some`, for at most `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ----- key material -----

/// Standard unpadded base64, as Matrix writes keys and signatures.
pub fn b64(bytes: &[u8]) -> String {
    Base64::<ruma::serde::base64::Standard, &[u8]>::new(bytes).encode()
}

/// 32 random bytes in unpadded base64 (a stand-in for a curve25519 public key).
pub fn random_key() -> String {
    b64(&rand::random::<[u8; 32]>())
}

fn key_pair(version: &str) -> (Ed25519KeyPair, String) {
    let der = Ed25519KeyPair::generate();
    let probe = Ed25519KeyPair::from_der(&der, "probe".to_owned()).expect("ed25519 key pair");
    let public = b64(&probe.public_key());
    let version = if version.is_empty() {
        public.clone()
    } else {
        version.to_owned()
    };
    let pair = Ed25519KeyPair::from_der(&der, version).expect("ed25519 key pair");
    (pair, public)
}

/// Adds `signer`'s signature with `pair` (key id `ed25519:<pair version>`) to `value`,
/// keeping the signatures already there.
pub fn sign_with(pair: &Ed25519KeyPair, signer: &str, value: &Value) -> Value {
    let CanonicalJsonValue::Object(mut object) =
        CanonicalJsonValue::try_from(value.clone()).expect("canonical JSON")
    else {
        panic!("only objects can be signed: {value}");
    };
    sign_json(signer, pair, &mut object).expect("signing JSON");
    object_to_value(object)
}

fn object_to_value(object: CanonicalJsonObject) -> Value {
    serde_json::to_value(object).expect("canonical JSON to serde_json")
}

/// `value` without its `signatures` (and `unsigned`).
pub fn unsigned_part(value: &Value) -> Value {
    let mut v = value.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("signatures");
        o.remove("unsigned");
    }
    v
}

/// A device of a user whose keys the test makes itself: an ed25519 identity key that signs
/// the device keys and one-time keys, and a (random) curve25519 key.
pub struct TestDevice {
    pub user_id: String,
    pub device_id: String,
    pub ed25519: String,
    pub curve25519: String,
    pair: Ed25519KeyPair,
}

impl TestDevice {
    pub fn new(user_id: &str, device_id: &str) -> TestDevice {
        let (pair, ed25519) = key_pair(device_id);
        TestDevice {
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
            ed25519,
            curve25519: random_key(),
            pair,
        }
    }

    /// For a session of the harness.
    pub fn of(session: &Session) -> TestDevice {
        TestDevice::new(&session.user_id, &session.device_id)
    }

    /// The device keys without signatures.
    pub fn device_keys_unsigned(&self) -> Value {
        json!({
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": ALGORITHMS,
            "keys": {
                format!("curve25519:{}", self.device_id): self.curve25519,
                format!("ed25519:{}", self.device_id): self.ed25519,
            },
        })
    }

    /// The device keys, self-signed as the spec requires.
    pub fn device_keys(&self) -> Value {
        self.sign(&self.device_keys_unsigned())
    }

    /// `value` signed by this device (`signatures.<user>.ed25519:<device>`).
    pub fn sign(&self, value: &Value) -> Value {
        sign_with(&self.pair, &self.user_id, value)
    }

    /// A fresh signed curve25519 one-time key object.
    pub fn one_time_key(&self) -> Value {
        self.sign(&json!({"key": random_key()}))
    }

    /// A fresh signed curve25519 fallback key object (`fallback: true`, signed too).
    pub fn fallback_key(&self) -> Value {
        self.sign(&json!({"key": random_key(), "fallback": true}))
    }

    /// The key id `ed25519:<device id>`.
    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.device_id)
    }
}

/// A cross-signing key pair of a user: its key id is `ed25519:<public key>`.
pub struct SigningKey {
    pub user_id: String,
    pub public: String,
    pair: Ed25519KeyPair,
}

impl SigningKey {
    pub fn new(user_id: &str) -> SigningKey {
        let (pair, public) = key_pair("");
        SigningKey {
            user_id: user_id.to_owned(),
            public,
            pair,
        }
    }

    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.public)
    }

    /// The unsigned key object with this `usage` (`master`, `self_signing`, `user_signing`).
    pub fn object(&self, usage: &str) -> Value {
        json!({
            "user_id": self.user_id,
            "usage": [usage],
            "keys": {self.key_id(): self.public},
        })
    }

    /// `value` signed by this key on behalf of its user.
    pub fn sign(&self, value: &Value) -> Value {
        sign_with(&self.pair, &self.user_id, value)
    }
}

/// A user's three cross-signing keys.
pub struct CrossSigning {
    pub master: SigningKey,
    pub self_signing: SigningKey,
    pub user_signing: SigningKey,
}

impl CrossSigning {
    pub fn new(user_id: &str) -> CrossSigning {
        CrossSigning {
            master: SigningKey::new(user_id),
            self_signing: SigningKey::new(user_id),
            user_signing: SigningKey::new(user_id),
        }
    }

    pub fn master_key(&self) -> Value {
        self.master.object("master")
    }

    /// The self-signing key, signed by the master key.
    pub fn self_signing_key(&self) -> Value {
        self.master.sign(&self.self_signing.object("self_signing"))
    }

    /// The user-signing key, signed by the master key.
    pub fn user_signing_key(&self) -> Value {
        self.master.sign(&self.user_signing.object("user_signing"))
    }

    /// The body of `POST /keys/device_signing/upload` with all three keys.
    pub fn upload_body(&self) -> Value {
        json!({
            "master_key": self.master_key(),
            "self_signing_key": self.self_signing_key(),
            "user_signing_key": self.user_signing_key(),
        })
    }
}

// ----- raw key endpoints -----

/// `POST /keys/upload`.
pub async fn keys_upload(api: &Api<'_>, body: Value) -> Resp {
    api.post(&format!("{CS}/keys/upload"), body).await
}

/// `POST /keys/upload`, asserting success; returns `one_time_key_counts`.
pub async fn upload_ok(api: &Api<'_>, body: Value) -> Value {
    let body = keys_upload(api, body).await.ok();
    assert!(
        body["one_time_key_counts"].is_object(),
        "no one_time_key_counts: {body}"
    );
    body["one_time_key_counts"].clone()
}

/// `changed` of `GET /keys/changes?from&to`, asserting success.
pub async fn keys_changes(api: &Api<'_>, from: &str, to: &str) -> Vec<String> {
    let path = format!("{CS}/keys/changes?from={}&to={}", enc(from), enc(to));
    let changes = api.get(&path).await.ok();
    changes["changed"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Uploads this device's signed device keys, asserting success.
pub async fn upload_device_keys(api: &Api<'_>, device: &TestDevice) {
    upload_ok(api, json!({"device_keys": device.device_keys()})).await;
}

/// The count of `signed_curve25519` keys in a `one_time_key_counts` /
/// `device_one_time_keys_count` object (an absent algorithm counts zero).
pub fn otk_count(counts: &Value) -> u64 {
    if counts.is_null() {
        return 0;
    }
    assert!(counts.is_object(), "counts must be an object: {counts}");
    match &counts[SIGNED_CURVE25519] {
        Value::Null => 0,
        v => v
            .as_u64()
            .unwrap_or_else(|| panic!("bad count in {counts}")),
    }
}

/// `POST /keys/query`.
pub async fn keys_query_raw(api: &Api<'_>, device_keys: Value) -> Resp {
    api.post(
        &format!("{CS}/keys/query"),
        json!({"device_keys": device_keys}),
    )
    .await
}

/// `POST /keys/query` for all devices of these users, asserting success.
pub async fn keys_query(api: &Api<'_>, users: &[&str]) -> Value {
    let map: serde_json::Map<String, Value> =
        users.iter().map(|u| ((*u).to_owned(), json!([]))).collect();
    let body = keys_query_raw(api, Value::Object(map)).await.ok();
    assert!(body["device_keys"].is_object(), "no device_keys: {body}");
    body
}

/// The device ids in a `keys/query` response for `user`, sorted.
pub fn queried_devices(query: &Value, user: &str) -> Vec<String> {
    let mut ids: Vec<String> = query["device_keys"][user]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// `POST /keys/claim` of one `signed_curve25519` key of `user`'s `device`.
pub async fn keys_claim_raw(api: &Api<'_>, user: &str, device: &str) -> Resp {
    api.post(
        &format!("{CS}/keys/claim"),
        json!({"one_time_keys": {user: {device: SIGNED_CURVE25519}}}),
    )
    .await
}

/// Claims one key of `user`'s `device`, asserting success; returns the claimed
/// `(key id, key object)`, or `None` when nothing was returned for the device.
pub async fn claim_one(api: &Api<'_>, user: &str, device: &str) -> Option<(String, Value)> {
    let body = keys_claim_raw(api, user, device).await.ok();
    assert!(
        body["one_time_keys"].is_object(),
        "no one_time_keys: {body}"
    );
    let keys = body["one_time_keys"][user][device].as_object()?;
    assert!(keys.len() <= 1, "more than one key claimed: {body}");
    keys.iter().next().map(|(k, v)| (k.clone(), v.clone()))
}

/// `POST /keys/device_signing/upload`.
pub async fn device_signing_upload(api: &Api<'_>, body: Value) -> Resp {
    api.post(&format!("{CS}/keys/device_signing/upload"), body)
        .await
}

/// `POST /keys/signatures/upload`.
pub async fn signatures_upload(api: &Api<'_>, body: Value) -> Resp {
    api.post(&format!("{CS}/keys/signatures/upload"), body)
        .await
}

/// The `device_lists.<part>` of a sync response, sorted (`changed` or `left`).
pub fn device_lists(sync: &Value, part: &str) -> Vec<String> {
    let mut users: Vec<String> = sync["device_lists"][part]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| u.as_str().expect("user ids are strings").to_owned())
                .collect()
        })
        .unwrap_or_default();
    users.sort();
    users
}

/// The `to_device.events` of a sync response.
pub fn to_device_events(sync: &Value) -> Vec<Value> {
    sync["to_device"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

// ----- matrix-sdk -----

/// A matrix-sdk client for the default tenant (`http://localhost:PORT`), logged in.
pub async fn sdk_login(port: u16, user: &str, password: &str) -> Client {
    sdk_login_with(port, user, password, EncryptionSettings::default()).await
}

/// Like `sdk_login`, with these encryption settings.
pub async fn sdk_login_with(
    port: u16,
    user: &str,
    password: &str,
    settings: EncryptionSettings,
) -> Client {
    let client = bounded(
        "building client",
        Client::builder()
            .homeserver_url(format!("http://localhost:{port}"))
            .with_encryption_settings(settings)
            .build(),
    )
    .await
    .expect("building client");
    bounded(
        "login",
        client
            .matrix_auth()
            .login_username(user, password)
            .initial_device_display_name("e2ee test")
            .send(),
    )
    .await
    .unwrap_or_else(|e| panic!("login of {user}: {e}"));
    client
}

/// The harness session of an SDK client (for raw requests with its token; never use it
/// for raw `/sync`: that would take the client's to-device messages).
pub fn session_of(client: &Client) -> Session {
    Session {
        user_id: client.user_id().expect("logged in").to_string(),
        access_token: client.access_token().expect("access token"),
        device_id: client.device_id().expect("device id").to_string(),
    }
}

/// Non-blocking SDK sync settings with a large timeline.
pub fn sync_settings() -> SyncSettings {
    let mut def = FilterDefinition::default();
    def.room.timeline.limit = Some(UInt::from(100u32));
    SyncSettings::default()
        .timeout(Duration::ZERO)
        .filter(Filter::FilterDefinition(def))
}

/// One bounded, non-blocking SDK sync (which also sends the client's pending key
/// uploads, queries, claims and to-device messages).
pub async fn sdk_sync(client: &Client) -> SyncResponse {
    bounded("sdk sync", client.sync_once(sync_settings()))
        .await
        .unwrap_or_else(|e| panic!("sync of {:?}: {e}", client.user_id()))
}

/// Syncs `client` up to `rounds` times, collecting the timeline events of `room_id`, until
/// `done` says the collected events are enough. Returns them.
pub async fn sync_until(
    client: &Client,
    room_id: &OwnedRoomId,
    rounds: usize,
    what: &str,
    done: impl Fn(&[TimelineEvent]) -> bool,
) -> Vec<TimelineEvent> {
    let mut events = Vec::new();
    for _ in 0..rounds {
        let resp = sdk_sync(client).await;
        if let Some(update) = resp.rooms.joined.get(room_id) {
            events.extend(update.timeline.events.iter().cloned());
        }
        if done(&events) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{what}: not within {rounds} syncs; got {:?}",
        events.iter().map(event_json).collect::<Vec<_>>()
    );
}

/// The JSON of a timeline event as the SDK holds it (decrypted when it could decrypt it).
pub fn event_json(event: &TimelineEvent) -> Value {
    serde_json::from_str(event.raw().json().get()).expect("timeline event JSON")
}

/// The `(sender, body)` of every `m.room.message` among `events` that the SDK decrypted, in
/// order.
pub fn decrypted_messages(events: &[TimelineEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| matches!(e.kind, TimelineEventKind::Decrypted(_)))
        .map(event_json)
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| {
            (
                e["sender"].as_str().unwrap_or_default().to_owned(),
                e["content"]["body"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The bodies of the decrypted messages among `events`.
pub fn decrypted_bodies(events: &[TimelineEvent]) -> Vec<String> {
    decrypted_messages(events)
        .into_iter()
        .map(|(_, body)| body)
        .collect()
}

/// How many of `events` are still `m.room.encrypted` (the SDK couldn't decrypt them).
pub fn undecrypted(events: &[TimelineEvent]) -> usize {
    events
        .iter()
        .filter(|e| event_json(e)["type"] == "m.room.encrypted")
        .count()
}
