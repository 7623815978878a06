//! `E2eeStore` on both backends: device keys, one-time and fallback keys (claimed once each,
//! also under concurrent claims), cross-signing keys, device list changes, to-device messages
//! and key backups, and what deleting a device or reopening the store does to them.

use std::sync::Arc;

use maas_store::{
    BackupKeyRecord, CrossSigningKeyRecord, DeviceKeysRecord, OneTimeKeyRecord, StoreError,
    TenantStore, ToDeviceRecord, TxnRecord,
};

mod support;
use support::{Fixture, TENANT, device, on_both_backends, range, token, user};

const OTK: &str = "signed_curve25519";

async fn add_user(store: &dyn TenantStore, localpart: &str) {
    store.insert_user(&user(localpart), None).await.unwrap();
}

async fn add_device(store: &dyn TenantStore, localpart: &str, device_id: &str) {
    let hash = format!("{localpart}/{device_id}");
    store
        .start_session(
            &device(localpart, device_id, None),
            &token(&hash, localpart, device_id),
        )
        .await
        .unwrap();
}

fn device_keys(localpart: &str, device_id: &str, version: u32) -> DeviceKeysRecord {
    DeviceKeysRecord {
        localpart: localpart.to_owned(),
        device_id: device_id.to_owned(),
        keys_json: format!(r#"{{"device_id":"{device_id}","v":{version}}}"#),
    }
}

fn key(key_id: &str, value: &str) -> OneTimeKeyRecord {
    OneTimeKeyRecord {
        key_id: key_id.to_owned(),
        key_json: format!(r#"{{"key":"{value}"}}"#),
    }
}

fn cross_signing(localpart: &str, key_type: &str, value: &str) -> CrossSigningKeyRecord {
    CrossSigningKeyRecord {
        localpart: localpart.to_owned(),
        key_type: key_type.to_owned(),
        key_json: format!(r#"{{"keys":{{"ed25519:{value}":"{value}"}}}}"#),
    }
}

fn txn(localpart: &str, device_id: &str, txn_id: &str) -> TxnRecord {
    TxnRecord {
        localpart: localpart.to_owned(),
        device_id: device_id.to_owned(),
        scope: r#"["sendToDevice","m.test"]"#.to_owned(),
        txn_id: txn_id.to_owned(),
    }
}

fn message(localpart: &str, device_id: &str, stream: i64, body: &str) -> ToDeviceRecord {
    ToDeviceRecord {
        localpart: localpart.to_owned(),
        device_id: device_id.to_owned(),
        stream,
        sender: "@alice:example.org".to_owned(),
        event_type: "m.room.encrypted".to_owned(),
        content_json: format!(r#"{{"body":"{body}"}}"#),
    }
}

fn backup_key(room_id: &str, session_id: &str, first_message_index: u64) -> BackupKeyRecord {
    BackupKeyRecord {
        room_id: room_id.to_owned(),
        session_id: session_id.to_owned(),
        first_message_index,
        forwarded_count: 1,
        is_verified: true,
        session_data_json: format!(r#"{{"ciphertext":"{session_id}/{first_message_index}"}}"#),
    }
}

fn is_not_found<T: std::fmt::Debug>(result: maas_store::Result<T>) -> bool {
    matches!(result, Err(StoreError::NotFound(_)))
}

/// Stream positions and contents of messages, for compact assertions.
fn bodies(messages: &[ToDeviceRecord]) -> Vec<(i64, &str)> {
    messages
        .iter()
        .map(|m| (m.stream, m.content_json.as_str()))
        .collect()
}

on_both_backends!(device_keys_belong_to_existing_devices);
on_both_backends!(one_time_keys_are_added_once_and_counted_per_algorithm);
on_both_backends!(claims_take_one_time_keys_in_upload_order_then_the_fallback_key);
on_both_backends!(concurrent_claims_never_hand_out_a_key_twice);
on_both_backends!(fallback_keys_are_replaced_per_algorithm);
on_both_backends!(cross_signing_keys_are_upserted_by_type);
on_both_backends!(device_list_changes_in_a_range);
on_both_backends!(signature_changes_are_the_signers_own);
on_both_backends!(to_device_messages_are_stored_once_per_transaction);
on_both_backends!(deleting_a_device_deletes_its_keys_and_messages);
on_both_backends!(backup_versions_are_numbered_per_user_and_never_reused);
on_both_backends!(backup_keys_are_upserted_deleted_and_counted_with_etags);
on_both_backends!(e2ee_data_survives_reopening);
on_both_backends!(concurrent_claims_take_each_one_time_key_once_then_the_fallback_key);
on_both_backends!(a_large_send_keeps_its_order);
on_both_backends!(concurrent_sends_of_one_transaction_store_it_once);
on_both_backends!(concurrent_backup_versions_get_distinct_numbers);

async fn device_keys_belong_to_existing_devices(store: &dyn TenantStore) {
    add_user(store, "alice").await;
    add_device(store, "alice", "B").await;
    add_device(store, "alice", "A").await;

    assert!(is_not_found(
        store
            .set_device_keys(&device_keys("alice", "NOPE", 1))
            .await
    ));
    assert!(is_not_found(
        store.set_device_keys(&device_keys("nobody", "A", 1)).await
    ));
    assert!(store.device_keys("alice").await.unwrap().is_empty());

    store
        .set_device_keys(&device_keys("alice", "B", 1))
        .await
        .unwrap();
    store
        .set_device_keys(&device_keys("alice", "A", 1))
        .await
        .unwrap();
    // Signatures merged in later replace the stored object.
    store
        .set_device_keys(&device_keys("alice", "A", 2))
        .await
        .unwrap();
    assert_eq!(
        store.device_keys("alice").await.unwrap(),
        vec![device_keys("alice", "A", 2), device_keys("alice", "B", 1)]
    );
    assert!(store.device_keys("bob").await.unwrap().is_empty());
}

async fn one_time_keys_are_added_once_and_counted_per_algorithm(store: &dyn TenantStore) {
    add_user(store, "alice").await;
    add_device(store, "alice", "D").await;

    let first = [
        key("signed_curve25519:AAAAAQ", "one"),
        key("signed_curve25519:AAAAAg", "two"),
        key("curve25519:AAAAAw", "three"),
    ];
    store.add_one_time_keys("alice", "D", &first).await.unwrap();
    // A retried upload of the same keys is no error and adds nothing.
    store.add_one_time_keys("alice", "D", &first).await.unwrap();
    assert_eq!(
        store.count_one_time_keys("alice", "D").await.unwrap(),
        vec![("curve25519".to_owned(), 1), (OTK.to_owned(), 2)]
    );

    // A known id with other content fails the whole upload, new keys included.
    let clash = [
        key("signed_curve25519:AAAABA", "four"),
        key("signed_curve25519:AAAAAQ", "not one"),
    ];
    assert!(matches!(
        store.add_one_time_keys("alice", "D", &clash).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.count_one_time_keys("alice", "D").await.unwrap(),
        vec![("curve25519".to_owned(), 1), (OTK.to_owned(), 2)]
    );
    // Even within one upload.
    let twice = [
        key("signed_curve25519:AAAABQ", "five"),
        key("signed_curve25519:AAAABQ", "other five"),
    ];
    assert!(matches!(
        store.add_one_time_keys("alice", "D", &twice).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.count_one_time_keys("alice", "D").await.unwrap(),
        vec![("curve25519".to_owned(), 1), (OTK.to_owned(), 2)]
    );

    assert!(is_not_found(
        store.add_one_time_keys("alice", "NOPE", &first).await
    ));
    assert!(
        store
            .count_one_time_keys("alice", "NOPE")
            .await
            .unwrap()
            .is_empty()
    );
    // Keys are per device: another device may use the same ids.
    add_device(store, "alice", "E").await;
    store.add_one_time_keys("alice", "E", &first).await.unwrap();
    assert_eq!(
        store.count_one_time_keys("alice", "E").await.unwrap(),
        vec![("curve25519".to_owned(), 1), (OTK.to_owned(), 2)]
    );
}

async fn claims_take_one_time_keys_in_upload_order_then_the_fallback_key(store: &dyn TenantStore) {
    add_user(store, "alice").await;
    add_device(store, "alice", "D").await;

    assert_eq!(store.claim_key("alice", "D", OTK).await.unwrap(), None);
    assert_eq!(store.claim_key("alice", "NOPE", OTK).await.unwrap(), None);

    // Uploaded against the lexicographic order of their ids.
    store
        .add_one_time_keys("alice", "D", &[key("signed_curve25519:b", "b")])
        .await
        .unwrap();
    store
        .add_one_time_keys(
            "alice",
            "D",
            &[
                key("signed_curve25519:c", "c"),
                key("signed_curve25519:a", "a"),
                key("curve25519:z", "z"),
            ],
        )
        .await
        .unwrap();
    let fallback = key("signed_curve25519:fb", "fallback");
    store
        .set_fallback_keys("alice", "D", std::slice::from_ref(&fallback))
        .await
        .unwrap();

    for expected in ["b", "c", "a"] {
        let claimed = store.claim_key("alice", "D", OTK).await.unwrap();
        assert_eq!(
            claimed,
            Some(key(&format!("signed_curve25519:{expected}"), expected))
        );
    }
    assert!(
        store
            .unused_fallback_key_types("alice", "D")
            .await
            .unwrap()
            .contains(&OTK.to_owned())
    );
    // One-time keys used up: the fallback key, as often as asked, now marked used.
    for _ in 0..2 {
        assert_eq!(
            store.claim_key("alice", "D", OTK).await.unwrap(),
            Some(fallback.clone())
        );
    }
    assert!(
        store
            .unused_fallback_key_types("alice", "D")
            .await
            .unwrap()
            .is_empty()
    );
    // Claims never cross algorithms.
    assert_eq!(
        store.count_one_time_keys("alice", "D").await.unwrap(),
        vec![("curve25519".to_owned(), 1)]
    );
    assert_eq!(
        store.claim_key("alice", "D", "curve25519").await.unwrap(),
        Some(key("curve25519:z", "z"))
    );
    assert_eq!(
        store.claim_key("alice", "D", "curve25519").await.unwrap(),
        None
    );

    // New one-time keys go before the fallback key again.
    store
        .add_one_time_keys("alice", "D", &[key("signed_curve25519:d", "d")])
        .await
        .unwrap();
    assert_eq!(
        store.claim_key("alice", "D", OTK).await.unwrap(),
        Some(key("signed_curve25519:d", "d"))
    );
    assert_eq!(
        store.claim_key("alice", "D", OTK).await.unwrap(),
        Some(fallback)
    );
}

async fn concurrent_claims_never_hand_out_a_key_twice(store: Arc<dyn TenantStore>) {
    add_user(&*store, "alice").await;
    add_device(&*store, "alice", "D").await;
    let keys: Vec<_> = (0..20)
        .map(|i| key(&format!("signed_curve25519:{i:02}"), &i.to_string()))
        .collect();
    store.add_one_time_keys("alice", "D", &keys).await.unwrap();

    let claims: Vec<_> = (0..30)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_key("alice", "D", OTK).await })
        })
        .collect();
    let mut claimed = Vec::new();
    for claim in claims {
        if let Some(key) = claim.await.unwrap().unwrap() {
            claimed.push(key.key_id);
        }
    }
    claimed.sort();
    let mut expected: Vec<_> = keys.into_iter().map(|k| k.key_id).collect();
    expected.sort();
    assert_eq!(claimed, expected);
}

async fn fallback_keys_are_replaced_per_algorithm(store: &dyn TenantStore) {
    add_user(store, "alice").await;
    add_device(store, "alice", "D").await;

    assert!(is_not_found(
        store
            .set_fallback_keys("alice", "NOPE", &[key("signed_curve25519:x", "x")])
            .await
    ));
    store
        .set_fallback_keys(
            "alice",
            "D",
            &[key("signed_curve25519:1", "one"), key("other_alg:1", "o")],
        )
        .await
        .unwrap();
    assert_eq!(
        store.unused_fallback_key_types("alice", "D").await.unwrap(),
        vec!["other_alg".to_owned(), OTK.to_owned()]
    );
    store.claim_key("alice", "D", OTK).await.unwrap();
    assert_eq!(
        store.unused_fallback_key_types("alice", "D").await.unwrap(),
        vec!["other_alg".to_owned()]
    );

    // The same key again (a retried upload) stays used.
    store
        .set_fallback_keys("alice", "D", &[key("signed_curve25519:1", "one")])
        .await
        .unwrap();
    assert_eq!(
        store.unused_fallback_key_types("alice", "D").await.unwrap(),
        vec!["other_alg".to_owned()]
    );

    // A new key replaces it, unused; the other algorithm's key is untouched.
    store
        .set_fallback_keys("alice", "D", &[key("signed_curve25519:2", "two")])
        .await
        .unwrap();
    assert_eq!(
        store.unused_fallback_key_types("alice", "D").await.unwrap(),
        vec!["other_alg".to_owned(), OTK.to_owned()]
    );
    assert_eq!(
        store.claim_key("alice", "D", OTK).await.unwrap(),
        Some(key("signed_curve25519:2", "two"))
    );
    assert_eq!(
        store.claim_key("alice", "D", "other_alg").await.unwrap(),
        Some(key("other_alg:1", "o"))
    );
    // Fallback keys are no one-time keys.
    assert!(
        store
            .count_one_time_keys("alice", "D")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn cross_signing_keys_are_upserted_by_type(store: &dyn TenantStore) {
    add_user(store, "alice").await;
    add_user(store, "bob").await;

    for key_type in ["user_signing", "master", "self_signing"] {
        store
            .set_cross_signing_key(&cross_signing("alice", key_type, "old"))
            .await
            .unwrap();
    }
    store
        .set_cross_signing_key(&cross_signing("alice", "master", "new"))
        .await
        .unwrap();
    assert_eq!(
        store.cross_signing_keys("alice").await.unwrap(),
        vec![
            cross_signing("alice", "master", "new"),
            cross_signing("alice", "self_signing", "old"),
            cross_signing("alice", "user_signing", "old"),
        ]
    );
    assert!(store.cross_signing_keys("bob").await.unwrap().is_empty());

    assert!(is_not_found(
        store
            .set_cross_signing_key(&cross_signing("nobody", "master", "x"))
            .await
    ));
    // Only the three types the spec knows.
    assert!(
        store
            .set_cross_signing_key(&cross_signing("bob", "other", "x"))
            .await
            .is_err()
    );
    assert!(store.cross_signing_keys("bob").await.unwrap().is_empty());
}

async fn signature_changes_are_the_signers_own(store: &dyn TenantStore) {
    let (alice, bob, carol) = ("@alice:x", "@bob:x", "@carol:x");
    for (signer, target, stream) in [
        (bob, alice, 5),
        (bob, carol, 7),
        (bob, alice, 7),
        (carol, alice, 8),
    ] {
        store
            .record_signature_change(signer, target, stream)
            .await
            .unwrap();
    }
    // Recording the same change again changes nothing.
    store.record_signature_change(bob, alice, 5).await.unwrap();
    assert_eq!(
        store.signature_changes(bob, range(0, 20)).await.unwrap(),
        vec![alice, carol]
    );
    assert_eq!(
        store.signature_changes(bob, range(5, 6)).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        store.signature_changes(carol, range(0, 8)).await.unwrap(),
        vec![alice]
    );
    assert_eq!(
        store.signature_changes(alice, range(0, 20)).await.unwrap(),
        Vec::<String>::new(),
        "a signature changes nothing for its target"
    );
    // Nobody's devices changed.
    assert!(
        store
            .device_list_changes(range(0, 20))
            .await
            .unwrap()
            .users
            .is_empty()
    );
}

async fn device_list_changes_in_a_range(store: &dyn TenantStore) {
    let alice = "@alice:example.org";
    let bob = "@bob:example.org";
    let remote = "@carol:remote.example";
    for (user, stream) in [(alice, 5), (bob, 6), (alice, 10), (alice, 10), (remote, 12)] {
        store.record_device_list_change(user, stream).await.unwrap();
    }

    assert_eq!(
        store.device_list_changes(range(0, 20)).await.unwrap().users,
        vec![alice, bob, remote]
    );
    // A later change of alice doesn't hide her earlier one from a range ending before it.
    assert_eq!(
        store.device_list_changes(range(0, 7)).await.unwrap().users,
        vec![alice, bob]
    );
    // `after` is exclusive, `up_to` inclusive.
    assert_eq!(
        store.device_list_changes(range(5, 10)).await.unwrap().users,
        vec![alice, bob]
    );
    assert_eq!(
        store.device_list_changes(range(6, 11)).await.unwrap().users,
        vec![alice]
    );
    assert!(
        store
            .device_list_changes(range(12, 20))
            .await
            .unwrap()
            .users
            .is_empty()
    );
}

async fn to_device_messages_are_stored_once_per_transaction(store: &dyn TenantStore) {
    add_user(store, "alice").await;
    add_user(store, "bob").await;
    add_device(store, "alice", "A").await;
    add_device(store, "bob", "B1").await;
    add_device(store, "bob", "B2").await;

    let first = [
        message("bob", "B1", 3, "one"),
        message("bob", "B2", 3, "two"),
        // A device that doesn't exist (deleted, or a typo) gets nothing, silently.
        message("bob", "GONE", 3, "lost"),
        message("nobody", "X", 3, "lost"),
        // Several messages for one device at one position keep their order.
        message("bob", "B1", 3, "three"),
    ];
    assert!(
        store
            .insert_to_device(&txn("alice", "A", "t1"), &first)
            .await
            .unwrap()
    );
    // The same transaction again writes nothing, even with other messages.
    assert!(
        !store
            .insert_to_device(
                &txn("alice", "A", "t1"),
                &[message("bob", "B1", 4, "again")]
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_to_device(
                &txn("alice", "A", "t2"),
                &[message("bob", "B1", 2, "early")]
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_to_device(&txn("alice", "A", "t3"), &[message("bob", "B1", 7, "late")])
            .await
            .unwrap()
    );
    // Transaction ids are per sending device, and per request path (the event type).
    add_device(store, "alice", "A2").await;
    assert!(
        store
            .insert_to_device(&txn("alice", "A2", "t1"), &[])
            .await
            .unwrap()
    );
    let other_type = TxnRecord {
        scope: r#"["sendToDevice","m.other"]"#.to_owned(),
        ..txn("alice", "A", "t1")
    };
    assert!(store.insert_to_device(&other_type, &[]).await.unwrap());
    assert!(is_not_found(
        store
            .insert_to_device(&txn("alice", "NOPE", "t1"), &[message("bob", "B1", 8, "x")])
            .await
    ));

    let all = store
        .to_device_messages("bob", "B1", 10, 100)
        .await
        .unwrap();
    assert_eq!(
        bodies(&all),
        vec![
            (2, r#"{"body":"early"}"#),
            (3, r#"{"body":"one"}"#),
            (3, r#"{"body":"three"}"#),
            (7, r#"{"body":"late"}"#),
        ]
    );
    assert_eq!(all[0], message("bob", "B1", 2, "early"));
    assert_eq!(
        bodies(&store.to_device_messages("bob", "B1", 6, 100).await.unwrap()),
        vec![
            (2, r#"{"body":"early"}"#),
            (3, r#"{"body":"one"}"#),
            (3, r#"{"body":"three"}"#),
        ]
    );
    assert_eq!(
        bodies(&store.to_device_messages("bob", "B1", 10, 2).await.unwrap()),
        vec![(2, r#"{"body":"early"}"#), (3, r#"{"body":"one"}"#)]
    );
    assert_eq!(
        store
            .to_device_messages("bob", "B2", 10, 100)
            .await
            .unwrap(),
        vec![message("bob", "B2", 3, "two")]
    );
    assert!(
        store
            .to_device_messages("bob", "GONE", 10, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // Acknowledged messages go; later ones and other devices' stay.
    store.delete_to_device("bob", "B1", 3).await.unwrap();
    assert_eq!(
        store
            .to_device_messages("bob", "B1", 10, 100)
            .await
            .unwrap(),
        vec![message("bob", "B1", 7, "late")]
    );
    assert_eq!(
        store
            .to_device_messages("bob", "B2", 10, 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn deleting_a_device_deletes_its_keys_and_messages(fixture: &Fixture) {
    let store = fixture.store().await;
    add_user(&**store, "alice").await;
    add_user(&**store, "bob").await;
    for device_id in ["D1", "D2", "D3", "KEEP"] {
        add_device(&**store, "alice", device_id).await;
    }
    add_device(&**store, "bob", "B").await;
    for (localpart, device_id) in [
        ("alice", "D1"),
        ("alice", "D2"),
        ("alice", "D3"),
        ("alice", "KEEP"),
        ("bob", "B"),
    ] {
        store
            .set_device_keys(&device_keys(localpart, device_id, 1))
            .await
            .unwrap();
        store
            .add_one_time_keys(localpart, device_id, &[key("signed_curve25519:1", "1")])
            .await
            .unwrap();
        store
            .set_fallback_keys(localpart, device_id, &[key("signed_curve25519:f", "f")])
            .await
            .unwrap();
        store
            .insert_to_device(
                &txn(localpart, device_id, "t"),
                &[message(localpart, device_id, 1, "m")],
            )
            .await
            .unwrap();
    }
    store
        .set_cross_signing_key(&cross_signing("alice", "master", "m"))
        .await
        .unwrap();
    // Rows the traits no longer show.
    let mut conn = fixture.raw().await;
    let tables = [
        "device_keys",
        "one_time_keys",
        "fallback_keys",
        "to_device_txns",
        "to_device_messages",
    ];
    for table in tables {
        assert_eq!(conn.count_rows(table).await, 5, "{table}");
    }

    let gone = |device_id: &'static str| {
        let store = store.clone();
        async move {
            assert!(
                store
                    .count_one_time_keys("alice", device_id)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(
                store
                    .unused_fallback_key_types("alice", device_id)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(
                store
                    .to_device_messages("alice", device_id, i64::MAX, 100)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(
                store.claim_key("alice", device_id, OTK).await.unwrap(),
                None
            );
        }
    };

    store
        .delete_devices("alice", &["D1".to_owned()])
        .await
        .unwrap();
    gone("D1").await;
    let left: Vec<_> = store
        .device_keys("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.device_id)
        .collect();
    assert_eq!(left, ["D2", "D3", "KEEP"]);
    for table in tables {
        assert_eq!(conn.count_rows(table).await, 4, "{table}");
    }
    // A new device under the old id starts clean, and may reuse its transaction ids.
    add_device(&**store, "alice", "D1").await;
    gone("D1").await;
    assert!(
        store
            .insert_to_device(&txn("alice", "D1", "t"), &[])
            .await
            .unwrap()
    );

    store
        .delete_devices_except("alice", Some("KEEP"))
        .await
        .unwrap();
    for device_id in ["D1", "D2", "D3"] {
        gone(device_id).await;
    }
    let left: Vec<_> = store
        .device_keys("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.device_id)
        .collect();
    assert_eq!(left, ["KEEP"]);

    store.deactivate_user("alice").await.unwrap();
    gone("KEEP").await;
    assert!(store.device_keys("alice").await.unwrap().is_empty());
    for table in tables {
        assert_eq!(conn.count_rows(table).await, 1, "{table}");
    }
    // Bob's device was never touched.
    assert_eq!(store.device_keys("bob").await.unwrap().len(), 1);
    assert_eq!(
        store.to_device_messages("bob", "B", 10, 10).await.unwrap(),
        vec![message("bob", "B", 1, "m")]
    );
}

async fn backup_versions_are_numbered_per_user_and_never_reused(store: &dyn TenantStore) {
    add_user(store, "alice").await;
    add_user(store, "bob").await;
    let algorithm = "m.megolm_backup.v1.curve25519-aes-sha2";

    assert_eq!(store.backup_version("alice", None).await.unwrap(), None);
    assert!(is_not_found(
        store.create_backup_version("nobody", algorithm, "{}").await
    ));
    for expected in ["1", "2"] {
        let version = store
            .create_backup_version("alice", algorithm, r#"{"public_key":"a"}"#)
            .await
            .unwrap();
        assert_eq!(version, expected);
    }
    // Numbers are per user.
    assert_eq!(
        store
            .create_backup_version("bob", algorithm, "{}")
            .await
            .unwrap(),
        "1"
    );

    let latest = store.backup_version("alice", None).await.unwrap().unwrap();
    assert_eq!(
        (
            latest.localpart.as_str(),
            latest.version.as_str(),
            latest.algorithm.as_str(),
            latest.auth_data_json.as_str(),
            latest.etag
        ),
        ("alice", "2", algorithm, r#"{"public_key":"a"}"#, 0)
    );
    assert_eq!(
        store
            .backup_version("alice", Some("1"))
            .await
            .unwrap()
            .unwrap()
            .version,
        "1"
    );
    for bad in ["3", "0", "01", "-1", "x", ""] {
        assert_eq!(
            store.backup_version("alice", Some(bad)).await.unwrap(),
            None
        );
        assert!(
            !store
                .update_backup_version("alice", bad, "{}")
                .await
                .unwrap()
        );
        assert!(!store.delete_backup_version("alice", bad).await.unwrap());
    }

    assert!(
        store
            .update_backup_version("alice", "1", r#"{"public_key":"b"}"#)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .backup_version("alice", Some("1"))
            .await
            .unwrap()
            .unwrap()
            .auth_data_json,
        r#"{"public_key":"b"}"#
    );

    // Deleting the latest makes the one before it current; its number stays taken.
    assert!(store.delete_backup_version("alice", "2").await.unwrap());
    // Deleting again is idempotent: the version existed.
    assert!(store.delete_backup_version("alice", "2").await.unwrap());
    assert_eq!(
        store.backup_version("alice", Some("2")).await.unwrap(),
        None
    );
    assert!(
        !store
            .update_backup_version("alice", "2", "{}")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .backup_version("alice", None)
            .await
            .unwrap()
            .unwrap()
            .version,
        "1"
    );
    assert!(store.delete_backup_version("alice", "1").await.unwrap());
    assert_eq!(store.backup_version("alice", None).await.unwrap(), None);
    assert_eq!(
        store
            .create_backup_version("alice", algorithm, "{}")
            .await
            .unwrap(),
        "3"
    );
    assert_eq!(
        store
            .backup_version("alice", None)
            .await
            .unwrap()
            .unwrap()
            .version,
        "3"
    );
    assert_eq!(
        store
            .backup_version("bob", None)
            .await
            .unwrap()
            .unwrap()
            .version,
        "1"
    );
}

async fn backup_keys_are_upserted_deleted_and_counted_with_etags(fixture: &Fixture) {
    let store = fixture.store().await;
    add_user(&**store, "alice").await;
    let v = store
        .create_backup_version("alice", "m.megolm_backup.v1.curve25519-aes-sha2", "{}")
        .await
        .unwrap();
    let etag = |store: Arc<dyn TenantStore>, version: String| async move {
        store
            .backup_version("alice", Some(&version))
            .await
            .unwrap()
            .unwrap()
            .etag
    };
    let e0 = etag(store.clone(), v.clone()).await;

    store
        .put_backup_keys(
            "alice",
            &v,
            &[
                backup_key("!r1:x", "s1", 0),
                backup_key("!r1:x", "s2", 0),
                backup_key("!r2:x", "s1", 0),
                backup_key("!r2:x", "s3", 0),
            ],
        )
        .await
        .unwrap();
    let e1 = etag(store.clone(), v.clone()).await;
    assert_ne!(e1, e0);
    assert_eq!(store.count_backup_keys("alice", &v).await.unwrap(), 4);

    // Upsert by (room, session).
    let mut better = backup_key("!r1:x", "s1", 5);
    better.is_verified = false;
    better.forwarded_count = 0;
    store
        .put_backup_keys("alice", &v, std::slice::from_ref(&better))
        .await
        .unwrap();
    let e2 = etag(store.clone(), v.clone()).await;
    assert_ne!(e2, e1);
    assert_eq!(store.count_backup_keys("alice", &v).await.unwrap(), 4);
    // An empty upload changes no key and no etag.
    store.put_backup_keys("alice", &v, &[]).await.unwrap();
    assert_eq!(etag(store.clone(), v.clone()).await, e2);

    assert_eq!(
        store
            .backup_keys("alice", &v, Some("!r1:x"), Some("s1"))
            .await
            .unwrap(),
        vec![better.clone()]
    );
    assert_eq!(
        store
            .backup_keys("alice", &v, Some("!r1:x"), None)
            .await
            .unwrap(),
        vec![better, backup_key("!r1:x", "s2", 0)]
    );
    let all = store.backup_keys("alice", &v, None, None).await.unwrap();
    let ids: Vec<_> = all
        .iter()
        .map(|k| (k.room_id.as_str(), k.session_id.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            ("!r1:x", "s1"),
            ("!r1:x", "s2"),
            ("!r2:x", "s1"),
            ("!r2:x", "s3")
        ]
    );
    assert!(
        store
            .backup_keys("alice", &v, Some("!none:x"), None)
            .await
            .unwrap()
            .is_empty()
    );

    // Deleting nothing leaves the etag alone.
    assert_eq!(
        store
            .delete_backup_keys("alice", &v, Some("!none:x"), None)
            .await
            .unwrap(),
        0
    );
    assert_eq!(etag(store.clone(), v.clone()).await, e2);
    assert_eq!(
        store
            .delete_backup_keys("alice", &v, Some("!r2:x"), Some("s1"))
            .await
            .unwrap(),
        1
    );
    let e3 = etag(store.clone(), v.clone()).await;
    assert_ne!(e3, e2);
    assert_eq!(
        store
            .delete_backup_keys("alice", &v, Some("!r1:x"), None)
            .await
            .unwrap(),
        2
    );
    let e4 = etag(store.clone(), v.clone()).await;
    assert_ne!(e4, e3);
    assert_eq!(store.count_backup_keys("alice", &v).await.unwrap(), 1);
    assert_eq!(
        store
            .delete_backup_keys("alice", &v, None, None)
            .await
            .unwrap(),
        1
    );
    assert_ne!(etag(store.clone(), v.clone()).await, e4);
    assert_eq!(store.count_backup_keys("alice", &v).await.unwrap(), 0);

    // Keys go with their version; writing to it afterwards is `NotFound`.
    store
        .put_backup_keys("alice", &v, &[backup_key("!r1:x", "s1", 0)])
        .await
        .unwrap();
    let w = store
        .create_backup_version("alice", "m.megolm_backup.v1.curve25519-aes-sha2", "{}")
        .await
        .unwrap();
    store
        .put_backup_keys("alice", &w, &[backup_key("!r9:x", "s9", 0)])
        .await
        .unwrap();
    assert!(store.delete_backup_version("alice", &v).await.unwrap());
    assert_eq!(store.count_backup_keys("alice", &v).await.unwrap(), 0);
    assert!(
        store
            .backup_keys("alice", &v, None, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(is_not_found(
        store
            .put_backup_keys("alice", &v, &[backup_key("!r1:x", "s1", 0)])
            .await
    ));
    assert!(is_not_found(
        store.delete_backup_keys("alice", &v, None, None).await
    ));
    // Rows the traits no longer show.
    let mut conn = fixture.raw().await;
    assert_eq!(conn.count_rows("backup_keys").await, 1);
    // The other version is untouched.
    assert_eq!(store.count_backup_keys("alice", &w).await.unwrap(), 1);

    for bad in ["99", "x"] {
        assert!(is_not_found(
            store
                .put_backup_keys("alice", bad, &[backup_key("!r1:x", "s1", 0)])
                .await
        ));
        assert!(is_not_found(
            store.delete_backup_keys("alice", bad, None, None).await
        ));
        assert_eq!(store.count_backup_keys("alice", bad).await.unwrap(), 0);
    }
}

async fn e2ee_data_survives_reopening(fixture: &Fixture) {
    {
        let backend = fixture.open_backend().await;
        let store = backend.open_tenant(TENANT).await.unwrap();
        add_user(&*store, "alice").await;
        add_device(&*store, "alice", "D").await;
        store
            .set_device_keys(&device_keys("alice", "D", 1))
            .await
            .unwrap();
        store
            .add_one_time_keys(
                "alice",
                "D",
                &[
                    key("signed_curve25519:2", "2"),
                    key("signed_curve25519:1", "1"),
                ],
            )
            .await
            .unwrap();
        store
            .set_fallback_keys("alice", "D", &[key("signed_curve25519:f", "f")])
            .await
            .unwrap();
        store
            .set_cross_signing_key(&cross_signing("alice", "master", "m"))
            .await
            .unwrap();
        store
            .record_device_list_change("@alice:example.org", 4)
            .await
            .unwrap();
        store
            .insert_to_device(&txn("alice", "D", "t"), &[message("alice", "D", 4, "m")])
            .await
            .unwrap();
        let v = store
            .create_backup_version("alice", "alg", "{}")
            .await
            .unwrap();
        store
            .put_backup_keys("alice", &v, &[backup_key("!r:x", "s", 0)])
            .await
            .unwrap();
        store.delete_backup_version("alice", &v).await.unwrap();
        store
            .create_backup_version("alice", "alg", "{}")
            .await
            .unwrap();
        store
            .put_backup_keys("alice", "2", &[backup_key("!r:x", "s", 0)])
            .await
            .unwrap();
        store.close().await;
        backend.close().await;
    }

    let backend = fixture.open_backend().await;
    let store = backend.open_tenant(TENANT).await.unwrap();
    assert_eq!(
        store.device_keys("alice").await.unwrap(),
        vec![device_keys("alice", "D", 1)]
    );
    assert_eq!(
        store.count_one_time_keys("alice", "D").await.unwrap(),
        vec![(OTK.to_owned(), 2)]
    );
    // Upload order survives too.
    assert_eq!(
        store.claim_key("alice", "D", OTK).await.unwrap(),
        Some(key("signed_curve25519:2", "2"))
    );
    assert_eq!(
        store.unused_fallback_key_types("alice", "D").await.unwrap(),
        vec![OTK.to_owned()]
    );
    assert_eq!(
        store.cross_signing_keys("alice").await.unwrap(),
        vec![cross_signing("alice", "master", "m")]
    );
    assert_eq!(
        store.device_list_changes(range(0, 10)).await.unwrap().users,
        vec!["@alice:example.org"]
    );
    assert_eq!(
        store
            .to_device_messages("alice", "D", 10, 10)
            .await
            .unwrap(),
        vec![message("alice", "D", 4, "m")]
    );
    assert!(
        !store
            .insert_to_device(&txn("alice", "D", "t"), &[message("alice", "D", 5, "m")])
            .await
            .unwrap()
    );
    let latest = store.backup_version("alice", None).await.unwrap().unwrap();
    assert_eq!((latest.version.as_str(), latest.etag), ("2", 1));
    assert_eq!(store.count_backup_keys("alice", "2").await.unwrap(), 1);
    // The deleted version's number is still taken after a restart.
    assert_eq!(
        store
            .create_backup_version("alice", "alg", "{}")
            .await
            .unwrap(),
        "3"
    );
    store.close().await;
    backend.close().await;
}

async fn concurrent_claims_take_each_one_time_key_once_then_the_fallback_key(
    store: Arc<dyn TenantStore>,
) {
    add_user(&*store, "alice").await;
    add_device(&*store, "alice", "D").await;
    let keys: Vec<_> = (0..10)
        .map(|i| key(&format!("signed_curve25519:{i:02}"), &i.to_string()))
        .collect();
    store.add_one_time_keys("alice", "D", &keys).await.unwrap();
    let fallback = key("signed_curve25519:fb", "fallback");
    store
        .set_fallback_keys("alice", "D", std::slice::from_ref(&fallback))
        .await
        .unwrap();

    let claims: Vec<_> = (0..30)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_key("alice", "D", OTK).await })
        })
        .collect();
    let mut one_time = Vec::new();
    let mut fallbacks = 0;
    for claim in claims {
        let claimed = claim
            .await
            .unwrap()
            .unwrap()
            .expect("a key for every claim");
        if claimed == fallback {
            fallbacks += 1;
        } else {
            one_time.push(claimed.key_id);
        }
    }
    one_time.sort();
    let expected: Vec<_> = keys.into_iter().map(|k| k.key_id).collect();
    assert_eq!(one_time, expected);
    assert_eq!(fallbacks, 20);
    assert!(
        store
            .unused_fallback_key_types("alice", "D")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_large_send_keeps_its_order(store: &dyn TenantStore) {
    add_user(store, "alice").await;
    add_device(store, "alice", "A").await;
    add_device(store, "alice", "B").await;
    let sent: Vec<_> = (0..500)
        .map(|i| {
            message(
                "alice",
                if i % 3 == 0 { "A" } else { "B" },
                9,
                &i.to_string(),
            )
        })
        .collect();
    assert!(
        store
            .insert_to_device(&txn("alice", "A", "big"), &sent)
            .await
            .unwrap()
    );
    for device_id in ["A", "B"] {
        let expected: Vec<_> = sent
            .iter()
            .filter(|m| m.device_id == device_id)
            .cloned()
            .collect();
        assert_eq!(
            store
                .to_device_messages("alice", device_id, 9, 1_000)
                .await
                .unwrap(),
            expected
        );
    }

    // Many one-time keys in one upload are claimed in upload order too.
    let keys: Vec<_> = (0..200)
        .map(|i| key(&format!("signed_curve25519:{:03}", 199 - i), &i.to_string()))
        .collect();
    store.add_one_time_keys("alice", "A", &keys).await.unwrap();
    for expected in &keys {
        assert_eq!(
            store.claim_key("alice", "A", OTK).await.unwrap().as_ref(),
            Some(expected)
        );
    }
}

async fn concurrent_sends_of_one_transaction_store_it_once(store: Arc<dyn TenantStore>) {
    add_user(&*store, "alice").await;
    add_device(&*store, "alice", "A").await;
    let sends: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .insert_to_device(&txn("alice", "A", "t"), &[message("alice", "A", i, "m")])
                    .await
            })
        })
        .collect();
    let mut stored = 0;
    for send in sends {
        if send.await.unwrap().unwrap() {
            stored += 1;
        }
    }
    assert_eq!(stored, 1);
    assert_eq!(
        store
            .to_device_messages("alice", "A", 100, 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn concurrent_backup_versions_get_distinct_numbers(store: Arc<dyn TenantStore>) {
    add_user(&*store, "alice").await;
    let creations: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.create_backup_version("alice", "alg", "{}").await })
        })
        .collect();
    let mut versions = Vec::new();
    for creation in creations {
        versions.push(creation.await.unwrap().unwrap().parse::<u32>().unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=10).collect::<Vec<_>>());
}
