//! End-to-end encryption with matrix-sdk as the real client (issue "End-to-end encryption",
//! acceptance): an encrypted conversation, key backup restored on a new device, cross-signing
//! and interactive SAS verification over to-device messages, and a deleted device dropping
//! out of encryption. Exact server-side checks are made over raw HTTP with the SDK's tokens
//! (never raw `/sync`, which would take the SDK's to-device messages).

use std::collections::BTreeSet;
use std::future::IntoFuture;
use std::time::Duration;

use matrix_sdk::config::SyncSettings;
use matrix_sdk::deserialized_responses::TimelineEvent;
use matrix_sdk::encryption::verification::{SasVerification, VerificationRequest};
use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::api::client::room::create_room::v3::{
    Request as CreateRoomRequest, RoomPreset,
};
use matrix_sdk::ruma::events::InitialStateEvent;
use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use matrix_sdk::ruma::{OwnedDeviceId, OwnedRoomId, OwnedUserId, UInt, UserId};
use matrix_sdk::{Client, Room, RoomState};
use reqwest::Method;
use serde_json::{Value, json};

use crate::e2ee_support::*;
use crate::harness::*;
use crate::room_support::{messages_raw, next_batch, state_content, sync};

const MEGOLM: &str = "m.megolm.v1.aes-sha2";

fn user_id(client: &Client) -> OwnedUserId {
    client.user_id().expect("logged in").to_owned()
}

fn device_id(client: &Client) -> OwnedDeviceId {
    client.device_id().expect("logged in").to_owned()
}

/// Alice creates a private room with `m.room.encryption` in its initial state, inviting
/// `invite`.
pub(crate) async fn create_encrypted_room(alice: &Client, invite: &[OwnedUserId]) -> Room {
    let mut req = CreateRoomRequest::new();
    req.preset = Some(RoomPreset::PrivateChat);
    req.name = Some("secret room".to_owned());
    req.invite = invite.to_vec();
    req.initial_state = vec![
        InitialStateEvent::with_empty_state_key(
            RoomEncryptionEventContent::with_recommended_defaults(),
        )
        .to_raw_any(),
    ];
    bounded("create encrypted room", alice.create_room(req))
        .await
        .expect("create_room")
}

/// `client` syncs until it sees the invite to `room_id`, then joins.
pub(crate) async fn accept_invite(client: &Client, room_id: &OwnedRoomId) -> Room {
    for _ in 0..20 {
        sdk_sync(client).await;
        if let Some(room) = client.get_room(room_id)
            && room.state() == RoomState::Invited
        {
            bounded("join", room.join()).await.expect("join");
            let room = client.get_room(room_id).expect("joined room");
            assert_eq!(room.state(), RoomState::Joined);
            return room;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{:?} never saw the invite to {room_id}", client.user_id());
}

pub(crate) async fn send_text(room: &Room, body: &str) -> String {
    bounded(
        "sdk send",
        room.send(RoomMessageEventContent::text_plain(body))
            .into_future(),
    )
    .await
    .unwrap_or_else(|e| panic!("sdk send of {body:?}: {e}"))
    .response
    .event_id
    .to_string()
}

/// The room's history through the SDK's `/messages` (which decrypts what it can), oldest
/// first.
async fn history(room: &Room) -> Vec<TimelineEvent> {
    let mut options = MessagesOptions::backward();
    options.limit = UInt::from(100u32);
    let messages = bounded("room.messages", room.messages(options))
        .await
        .expect("room.messages");
    let mut chunk = messages.chunk;
    chunk.reverse();
    chunk
}

/// The raw `m.room.encrypted` events of the room as the server stores them, oldest first.
async fn raw_encrypted_events(api: &Api<'_>, room_id: &str) -> Vec<Value> {
    let body = messages_raw(api, room_id, "dir=b&limit=100").await.ok();
    let mut chunk: Vec<Value> = body["chunk"].as_array().cloned().unwrap_or_default();
    chunk.reverse();
    assert!(
        chunk.iter().all(|e| e["type"] != "m.room.message"),
        "plaintext messages in an encrypted room: {body}"
    );
    chunk
        .into_iter()
        .filter(|e| e["type"] == "m.room.encrypted")
        .collect()
}

/// The devices of `user` the client would encrypt to (not deleted), sorted.
async fn known_devices(client: &Client, user: &UserId) -> Vec<String> {
    let devices = bounded(
        "get_user_devices",
        client.encryption().get_user_devices(user),
    )
    .await
    .expect("get_user_devices");
    let mut ids: Vec<String> = devices
        .devices()
        .filter(|d| !d.is_deleted())
        .map(|d| d.device_id().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn sdk_alice_and_bob_exchange_encrypted_messages() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    srv.create_user("localhost", "bob", "pw-bob-1").await;
    let alice = sdk_login(srv.port, "alice", "pw-alice-1").await;
    let bob = sdk_login(srv.port, "bob", "pw-bob-1").await;
    // The first syncs upload the device keys and one-time keys.
    sdk_sync(&alice).await;
    sdk_sync(&bob).await;
    let alice_s = session_of(&alice);
    let bob_s = session_of(&bob);
    let alice_api = srv.on("localhost").as_user(&alice_s);
    let q = keys_query(&alice_api, &[&bob_s.user_id]).await;
    assert_eq!(
        queried_devices(&q, &bob_s.user_id),
        vec![bob_s.device_id.clone()],
        "Bob's SDK device keys aren't on the server: {q}"
    );
    let keys = &q["device_keys"][&bob_s.user_id][&bob_s.device_id];
    assert_eq!(keys["user_id"], bob_s.user_id.as_str(), "{keys}");
    assert!(
        keys["keys"][format!("ed25519:{}", bob_s.device_id)].is_string(),
        "{keys}"
    );
    assert!(
        keys["signatures"][&bob_s.user_id][format!("ed25519:{}", bob_s.device_id)].is_string(),
        "{keys}"
    );

    let alice_room = create_encrypted_room(&alice, &[user_id(&bob)]).await;
    let room_id = alice_room.room_id().to_owned();
    let bob_room = accept_invite(&bob, &room_id).await;
    sdk_sync(&alice).await;
    sdk_sync(&bob).await;
    for room in [&alice_room, &bob_room] {
        let state = bounded("encryption state", room.latest_encryption_state())
            .await
            .expect("latest_encryption_state");
        assert!(state.is_encrypted(), "the room isn't encrypted for the SDK");
    }

    // Alice → Bob.
    let alice_bodies: Vec<String> = (0..3).map(|i| format!("alice's secret {i}")).collect();
    for body in &alice_bodies {
        send_text(&alice_room, body).await;
    }
    let events = sync_until(&bob, &room_id, 20, "Bob decrypts Alice's messages", |ev| {
        decrypted_bodies(ev).len() >= 3
    })
    .await;
    let expected: Vec<(String, String)> = alice_bodies
        .iter()
        .map(|b| (alice_s.user_id.clone(), b.clone()))
        .collect();
    assert_eq!(decrypted_messages(&events), expected, "Bob's sync");

    // Bob → Alice.
    let bob_bodies: Vec<String> = (0..3).map(|i| format!("bob's secret {i}")).collect();
    for body in &bob_bodies {
        send_text(&bob_room, body).await;
    }
    let from_bob = |ev: &[TimelineEvent]| -> Vec<(String, String)> {
        decrypted_messages(ev)
            .into_iter()
            .filter(|(sender, _)| *sender == bob_s.user_id)
            .collect()
    };
    let events = sync_until(
        &alice,
        &room_id,
        20,
        "Alice decrypts Bob's messages",
        |ev| from_bob(ev).len() >= 3,
    )
    .await;
    let expected: Vec<(String, String)> = bob_bodies
        .iter()
        .map(|b| (bob_s.user_id.clone(), b.clone()))
        .collect();
    assert_eq!(from_bob(&events), expected, "Alice's sync");
    // Alice's own messages came back to her too, and she can read them.
    let own: Vec<String> = decrypted_messages(&events)
        .into_iter()
        .filter(|(sender, _)| *sender == alice_s.user_id)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(own, alice_bodies, "Alice's own messages in her sync");

    // Both decrypt the whole conversation through /messages.
    let all: Vec<String> = alice_bodies.iter().chain(&bob_bodies).cloned().collect();
    for (who, room) in [("alice", &alice_room), ("bob", &bob_room)] {
        let events = history(room).await;
        assert_eq!(decrypted_bodies(&events), all, "{who}'s /messages history");
        assert_eq!(undecrypted(&events), 0, "{who} couldn't decrypt everything");
    }

    // The server only ever held ciphertext.
    let raw = raw_encrypted_events(&alice_api, room_id.as_str()).await;
    assert_eq!(raw.len(), 6, "{raw:?}");
    for e in &raw {
        assert_eq!(e["content"]["algorithm"], MEGOLM, "{e}");
        assert!(e["content"]["ciphertext"].is_string(), "{e}");
        assert!(e["content"]["session_id"].is_string(), "{e}");
        let text = e.to_string();
        assert!(!text.contains("secret"), "plaintext on the server: {e}");
    }
    let bob_api = srv.on("localhost").as_user(&bob_s);
    let state = state_content(&bob_api, room_id.as_str(), "m.room.encryption", "").await;
    assert_eq!(state["algorithm"], MEGOLM, "{state}");
}

#[tokio::test]
async fn sdk_new_device_restores_history_from_key_backup() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    srv.create_user("localhost", "bob", "pw-bob-1").await;
    let alice = sdk_login(srv.port, "alice", "pw-alice-1").await;
    let bob = sdk_login(srv.port, "bob", "pw-bob-1").await;
    sdk_sync(&alice).await;
    sdk_sync(&bob).await;
    let bob_s = session_of(&bob);
    let bob_api = srv.on("localhost").as_user(&bob_s);

    // Bob sets up cross-signing (the first upload needs no UIA, MSC3967) and recovery:
    // secret storage plus a key backup.
    bounded(
        "bootstrap cross-signing",
        bob.encryption().bootstrap_cross_signing(None),
    )
    .await
    .expect("bootstrap_cross_signing without UIA (first upload)");
    let recovery_key = bounded(
        "enable recovery",
        bob.encryption().recovery().enable().into_future(),
    )
    .await
    .expect("recovery().enable()");
    assert!(
        bob.encryption().backups().are_enabled().await,
        "backups not enabled"
    );
    let version = bob_api.get(&format!("{CS}/room_keys/version")).await.ok();
    assert_eq!(
        version["algorithm"], "m.megolm_backup.v1.curve25519-aes-sha2",
        "{version}"
    );
    let backup_version = version["version"]
        .as_str()
        .unwrap_or_else(|| panic!("no version: {version}"))
        .to_owned();

    // An encrypted conversation.
    let alice_room = create_encrypted_room(&alice, &[user_id(&bob)]).await;
    let room_id = alice_room.room_id().to_owned();
    let bob_room = accept_invite(&bob, &room_id).await;
    sdk_sync(&alice).await;
    sdk_sync(&bob).await;
    let bodies = [
        "alice: the vault code is 1234",
        "alice: don't tell anyone",
        "bob: noted",
        "bob: my lips are sealed",
    ];
    send_text(&alice_room, bodies[0]).await;
    send_text(&alice_room, bodies[1]).await;
    sync_until(&bob, &room_id, 20, "Bob decrypts Alice's messages", |ev| {
        decrypted_bodies(ev).len() >= 2
    })
    .await;
    send_text(&bob_room, bodies[2]).await;
    send_text(&bob_room, bodies[3]).await;
    sync_until(
        &alice,
        &room_id,
        20,
        "Alice decrypts Bob's messages",
        |ev| decrypted_bodies(ev).len() >= 2,
    )
    .await;

    // Bob's client uploads every room key it has to the backup.
    bounded(
        "backup upload",
        bob.encryption()
            .backups()
            .wait_for_steady_state()
            .into_future(),
    )
    .await
    .expect("waiting for the backup upload");
    let raw = raw_encrypted_events(&bob_api, room_id.as_str()).await;
    assert_eq!(raw.len(), 4, "{raw:?}");
    let sessions: BTreeSet<String> = raw
        .iter()
        .map(|e| e["content"]["session_id"].as_str().unwrap().to_owned())
        .collect();
    let stored = bob_api
        .get(&format!(
            "{CS}/room_keys/keys?version={}",
            enc(&backup_version)
        ))
        .await
        .ok();
    let stored_sessions: BTreeSet<String> = stored["rooms"][room_id.as_str()]["sessions"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert!(
        sessions.is_subset(&stored_sessions),
        "sessions {sessions:?} not all in the backup: {stored}"
    );
    let info = bob_api.get(&format!("{CS}/room_keys/version")).await.ok();
    assert!(
        info["count"].as_u64().unwrap_or(0) >= sessions.len() as u64,
        "{info}"
    );

    // Later, Bob logs in on a new device: the history is there but can't be decrypted.
    let bob2 = sdk_login(srv.port, "bob", "pw-bob-1").await;
    assert_ne!(device_id(&bob2), device_id(&bob));
    sdk_sync(&bob2).await;
    sdk_sync(&bob2).await;
    let room2 = bob2
        .get_room(&room_id)
        .expect("Bob's new device knows the room");
    let before = history(&room2).await;
    assert_eq!(
        undecrypted(&before),
        4,
        "the new device shouldn't have the keys yet: {:?}",
        before.iter().map(event_json).collect::<Vec<_>>()
    );
    assert!(decrypted_bodies(&before).is_empty());

    // Recovery with the key imports the secrets and the backup key; the keys come from the
    // backup, and the whole history decrypts.
    bounded(
        "recover",
        bob2.encryption().recovery().recover(&recovery_key),
    )
    .await
    .expect("recovery().recover(recovery key)");
    let status = bob2
        .encryption()
        .cross_signing_status()
        .await
        .expect("cross-signing status");
    assert!(
        status.has_master && status.has_self_signing && status.has_user_signing,
        "{status:?}"
    );
    assert!(
        bob2.encryption().backups().are_enabled().await,
        "recovery didn't enable the backup on the new device"
    );
    bounded(
        "download room keys",
        bob2.encryption()
            .backups()
            .download_room_keys_for_room(&room_id),
    )
    .await
    .expect("download_room_keys_for_room");
    let after = history(&room2).await;
    assert_eq!(decrypted_bodies(&after), bodies.to_vec());
    assert_eq!(undecrypted(&after), 0);

    // Recovery cross-signed the new device: its self-signing signature is on the server.
    let q = keys_query(&bob_api, &[&bob_s.user_id]).await;
    let ssk = q["self_signing_keys"][&bob_s.user_id]["keys"]
        .as_object()
        .and_then(|k| k.keys().next().cloned())
        .unwrap_or_else(|| panic!("no self-signing key: {q}"));
    let dev2 = device_id(&bob2).to_string();
    assert!(
        q["device_keys"][&bob_s.user_id][&dev2]["signatures"][&bob_s.user_id][&ssk].is_string(),
        "the new device isn't signed by the self-signing key {ssk}: {q}"
    );
    let own = bounded("own device", bob2.encryption().get_own_device())
        .await
        .expect("get_own_device")
        .expect("own device");
    assert!(
        own.is_cross_signed_by_owner(),
        "new device not cross-signed"
    );
}

fn check_not_cancelled_request(what: &str, req: &VerificationRequest) {
    assert!(
        !req.is_cancelled(),
        "{what}: verification request cancelled: {:?}",
        req.cancel_info()
    );
}

fn check_not_cancelled_sas(what: &str, sas: &SasVerification) {
    assert!(
        !sas.is_cancelled(),
        "{what}: SAS cancelled: {:?}",
        sas.cancel_info()
    );
}

/// Both clients sync in the background (long-polling briefly), until aborted.
fn background_sync(client: &Client) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    tokio::spawn(async move {
        loop {
            let settings = SyncSettings::default().timeout(Duration::from_millis(500));
            if tokio::time::timeout(SDK_TIMEOUT, client.sync_once(settings))
                .await
                .is_err()
            {
                eprintln!("background sync timed out");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_bob_verifies_alices_device_by_sas() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    srv.create_user("localhost", "bob", "pw-bob-1").await;
    let alice = sdk_login(srv.port, "alice", "pw-alice-1").await;
    let bob = sdk_login(srv.port, "bob", "pw-bob-1").await;
    sdk_sync(&alice).await;
    sdk_sync(&bob).await;
    let (alice_id, bob_id) = (user_id(&alice), user_id(&bob));
    let (alice_dev, bob_dev) = (device_id(&alice), device_id(&bob));
    let alice_api = srv.on("localhost").as_user(&session_of(&alice));
    let bob_api = srv.on("localhost").as_user(&session_of(&bob));

    // Cross-signing for both (first upload: no UIA needed).
    for c in [&alice, &bob] {
        bounded(
            "bootstrap cross-signing",
            c.encryption().bootstrap_cross_signing(None),
        )
        .await
        .unwrap_or_else(|e| panic!("bootstrap_cross_signing of {:?}: {e}", c.user_id()));
        let status = c.encryption().cross_signing_status().await.unwrap();
        assert!(
            status.has_master && status.has_self_signing && status.has_user_signing,
            "{status:?}"
        );
    }
    // The server serves the public keys: Alice's master and self-signing keys to Bob, her
    // user-signing key to herself only, and her device signed by her self-signing key.
    let q = keys_query(&bob_api, &[alice_id.as_str()]).await;
    assert!(q["master_keys"][alice_id.as_str()].is_object(), "{q}");
    assert!(q["self_signing_keys"][alice_id.as_str()].is_object(), "{q}");
    assert!(
        q["user_signing_keys"][alice_id.as_str()].is_null(),
        "Alice's user-signing key is visible to Bob: {q}"
    );
    let alice_ssk = q["self_signing_keys"][alice_id.as_str()]["keys"]
        .as_object()
        .and_then(|k| k.keys().next().cloned())
        .unwrap();
    assert!(
        q["device_keys"][alice_id.as_str()][alice_dev.as_str()]["signatures"][alice_id.as_str()]
            [&alice_ssk]
            .is_string(),
        "Alice's device isn't signed by her self-signing key: {q}"
    );
    let q = keys_query(&alice_api, &[alice_id.as_str()]).await;
    assert!(q["user_signing_keys"][alice_id.as_str()].is_object(), "{q}");

    // They share an encrypted room, so each tracks the other's devices.
    let room = create_encrypted_room(&alice, std::slice::from_ref(&bob_id)).await;
    let room_id = room.room_id().to_owned();
    accept_invite(&bob, &room_id).await;
    let alice_on_bob = wait_for(
        "Bob knows Alice's device",
        Duration::from_secs(90),
        || async {
            sdk_sync(&alice).await;
            sdk_sync(&bob).await;
            let d = bob
                .encryption()
                .get_device(&alice_id, &alice_dev)
                .await
                .expect("get_device");
            let other = alice
                .encryption()
                .get_device(&bob_id, &bob_dev)
                .await
                .expect("get_device");
            other.and(d)
        },
    )
    .await;
    assert!(!alice_on_bob.is_verified(), "verified before verification");

    let syncers = [background_sync(&alice), background_sync(&bob)];

    // Bob asks to verify Alice's device; Alice accepts.
    let bob_request = bounded("request verification", alice_on_bob.request_verification())
        .await
        .expect("request_verification");
    let flow_id = bob_request.flow_id().to_owned();
    let alice_request = wait_for(
        "Alice receives the verification request",
        Duration::from_secs(90),
        || async {
            alice
                .encryption()
                .get_verification_request(&bob_id, &flow_id)
                .await
        },
    )
    .await;
    bounded("accept request", alice_request.accept())
        .await
        .expect("accept");
    wait_for(
        "Bob sees the request ready",
        Duration::from_secs(90),
        || async {
            check_not_cancelled_request("bob", &bob_request);
            bob_request.is_ready().then_some(())
        },
    )
    .await;

    // Bob starts SAS; Alice accepts it.
    let bob_sas = bounded("start SAS", bob_request.start_sas())
        .await
        .expect("start_sas")
        .expect("SAS started");
    let alice_sas = wait_for("Alice sees the SAS", Duration::from_secs(90), || async {
        check_not_cancelled_request("alice", &alice_request);
        alice
            .encryption()
            .get_verification(&bob_id, &flow_id)
            .await
            .and_then(|v| v.sas())
    })
    .await;
    bounded("accept SAS", alice_sas.accept())
        .await
        .expect("accept SAS");

    // Both show the same emojis, and both confirm.
    wait_for("keys exchanged", Duration::from_secs(90), || async {
        check_not_cancelled_sas("bob", &bob_sas);
        check_not_cancelled_sas("alice", &alice_sas);
        (bob_sas.can_be_presented() && alice_sas.can_be_presented()).then_some(())
    })
    .await;
    let symbols = |sas: &SasVerification| -> Vec<&'static str> {
        sas.emoji()
            .expect("emoji SAS")
            .iter()
            .map(|e| e.symbol)
            .collect()
    };
    assert_eq!(symbols(&bob_sas), symbols(&alice_sas), "emojis differ");
    assert_eq!(bob_sas.decimals(), alice_sas.decimals());
    bounded("bob confirms", bob_sas.confirm())
        .await
        .expect("confirm");
    bounded("alice confirms", alice_sas.confirm())
        .await
        .expect("confirm");
    wait_for("verification done", Duration::from_secs(90), || async {
        check_not_cancelled_sas("bob", &bob_sas);
        check_not_cancelled_sas("alice", &alice_sas);
        (bob_sas.is_done() && alice_sas.is_done()).then_some(())
    })
    .await;

    // Alice's device is verified for Bob, and her identity too (Bob signed her master key).
    let device = bob
        .encryption()
        .get_device(&alice_id, &alice_dev)
        .await
        .unwrap()
        .expect("Alice's device");
    assert!(device.is_verified(), "Alice's device not verified for Bob");
    // Bob's client learns its own signature back from the server (keys/query after Alice
    // shows up in its device_lists.changed).
    wait_for(
        "Alice's identity verified for Bob",
        Duration::from_secs(20),
        || async {
            let identity = bob
                .encryption()
                .get_user_identity(&alice_id)
                .await
                .unwrap()
                .expect("Alice's identity");
            identity.is_verified().then_some(())
        },
    )
    .await;

    // Bob's user-signing signature of Alice's master key reached the server; it is visible
    // to Bob, not to Alice.
    let q = keys_query(&bob_api, &[bob_id.as_str()]).await;
    let bob_usk = q["user_signing_keys"][bob_id.as_str()]["keys"]
        .as_object()
        .and_then(|k| k.keys().next().cloned())
        .unwrap_or_else(|| panic!("Bob's user-signing key not served to Bob: {q}"));
    let q = wait_for(
        "Bob's signature of Alice's master key on the server",
        Duration::from_secs(20),
        || async {
            let q = keys_query(&bob_api, &[alice_id.as_str()]).await;
            q["master_keys"][alice_id.as_str()]["signatures"][bob_id.as_str()][&bob_usk]
                .is_string()
                .then_some(q)
        },
    )
    .await;
    assert!(
        q["master_keys"][alice_id.as_str()]["usage"] == json!(["master"]),
        "{q}"
    );
    let q = keys_query(&alice_api, &[alice_id.as_str()]).await;
    assert!(
        q["master_keys"][alice_id.as_str()]["signatures"][bob_id.as_str()].is_null(),
        "Bob's user-signing signature is visible to Alice: {q}"
    );

    for s in syncers {
        s.abort();
    }
}

#[tokio::test]
async fn sdk_deleted_device_drops_out_of_encryption() {
    let srv = TestServer::start().await;
    srv.create_user("localhost", "alice", "pw-alice-1").await;
    srv.create_user("localhost", "bob", "pw-bob-1").await;
    let alice = sdk_login(srv.port, "alice", "pw-alice-1").await;
    let bob1 = sdk_login(srv.port, "bob", "pw-bob-1").await;
    let bob2 = sdk_login(srv.port, "bob", "pw-bob-1").await;
    // Alice's raw device, only for looking at her /sync.
    let alice_raw = srv.login("localhost", "alice", "pw-alice-1").await;
    let alice_api = srv.on("localhost").as_user(&alice_raw);
    for c in [&alice, &bob1, &bob2] {
        sdk_sync(c).await;
    }
    let bob_id = user_id(&bob1);
    let (bob1_dev, bob2_dev) = (device_id(&bob1).to_string(), device_id(&bob2).to_string());
    let mut both = vec![bob1_dev.clone(), bob2_dev.clone()];
    both.sort();

    let alice_room = create_encrypted_room(&alice, std::slice::from_ref(&bob_id)).await;
    let room_id = alice_room.room_id().to_owned();
    accept_invite(&bob1, &room_id).await;
    sdk_sync(&bob2).await;
    sdk_sync(&alice).await;
    let t0 = next_batch(&sync(&alice_api, None, None).await);

    // Both of Bob's devices get the room key.
    send_text(&alice_room, "before the deletion").await;
    for bob in [&bob1, &bob2] {
        let events = sync_until(bob, &room_id, 20, "Bob decrypts", |ev| {
            !decrypted_bodies(ev).is_empty()
        })
        .await;
        assert_eq!(decrypted_bodies(&events), vec!["before the deletion"]);
    }
    assert_eq!(known_devices(&alice, &bob_id).await, both);
    assert_eq!(
        queried_devices(
            &keys_query(&alice_api, &[bob_id.as_str()]).await,
            bob_id.as_str()
        ),
        both
    );

    // Bob deletes his second device (password UIA).
    let bob_api = srv.on("localhost").as_user(&session_of(&bob1));
    let path = format!("{CS}/devices/{}", enc(&bob2_dev));
    let resp = bob_api.delete_json(&path, json!({})).await;
    assert_uia(&resp);
    let resp = bob_api
        .uia(
            Method::DELETE,
            &path,
            json!({}),
            &[password_stage("bob", "pw-bob-1")],
        )
        .await;
    assert_eq!(resp.ok(), json!({}));
    assert_error(
        &srv.on("localhost")
            .as_user(&session_of(&bob2))
            .whoami()
            .await,
        401,
        "M_UNKNOWN_TOKEN",
    );

    // Alice's next sync announces it, and the keys are gone.
    let s = sync(&alice_api, Some(&t0), None).await;
    assert!(
        device_lists(&s, "changed").contains(&bob_id.to_string()),
        "Bob not in device_lists.changed: {s}"
    );
    let t1 = next_batch(&s);
    let q = keys_query(&alice_api, &[bob_id.as_str()]).await;
    assert_eq!(
        queried_devices(&q, bob_id.as_str()),
        vec![bob1_dev.clone()],
        "{q}"
    );
    assert_eq!(
        claim_one(&alice_api, bob_id.as_str(), &bob2_dev).await,
        None,
        "a deleted device's one-time keys are still handed out"
    );
    let changes = alice_api
        .get(&format!(
            "{CS}/keys/changes?from={}&to={}",
            enc(&t0),
            enc(&t1)
        ))
        .await
        .ok();
    assert!(
        changes["changed"]
            .as_array()
            .is_some_and(|a| a.iter().any(|u| u == bob_id.as_str())),
        "{changes}"
    );

    // Alice's SDK notices and stops encrypting to the deleted device: the next message goes
    // out under a new room key (the SDK rotates when a recipient device goes away), which
    // Bob's remaining device gets.
    wait_for(
        "Alice forgets Bob's deleted device",
        Duration::from_secs(20),
        || async {
            sdk_sync(&alice).await;
            (known_devices(&alice, &bob_id).await == vec![bob1_dev.clone()]).then_some(())
        },
    )
    .await;
    send_text(&alice_room, "after the deletion").await;
    let events = sync_until(&bob1, &room_id, 20, "Bob decrypts", |ev| {
        !decrypted_bodies(ev).is_empty()
    })
    .await;
    assert_eq!(decrypted_bodies(&events), vec!["after the deletion"]);
    let raw = raw_encrypted_events(&alice_api, room_id.as_str()).await;
    assert_eq!(raw.len(), 2, "{raw:?}");
    assert_ne!(
        raw[0]["content"]["session_id"], raw[1]["content"]["session_id"],
        "the room key wasn't rotated after Bob's device went away"
    );
}
