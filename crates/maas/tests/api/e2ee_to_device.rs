//! Send-to-device messaging over raw HTTP (spec v1.15, "Send-to-Device messaging"):
//! `PUT /sendToDevice/{eventType}/{txnId}` is idempotent per device and transaction id,
//! `*` reaches every device of a user, messages come in `to_device.events` in order of
//! arrival, stay until a later sync acknowledges them, and are never delivered twice.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::e2ee_support::*;
use crate::harness::*;
use crate::room_support::*;

async fn send_to_device_raw(api: &Api<'_>, event_type: &str, txn: &str, messages: Value) -> Resp {
    api.put(
        &format!("{CS}/sendToDevice/{}/{}", enc(event_type), enc(txn)),
        json!({"messages": messages}),
    )
    .await
}

async fn send_to_device(api: &Api<'_>, event_type: &str, txn: &str, messages: Value) {
    let body = send_to_device_raw(api, event_type, txn, messages)
        .await
        .ok();
    assert_eq!(body, json!({}));
}

/// The `(sender, type, content)` of the to-device events of a sync.
fn received(sync: &Value) -> Vec<(String, String, Value)> {
    to_device_events(sync)
        .into_iter()
        .map(|e| {
            (
                e["sender"].as_str().unwrap_or_default().to_owned(),
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["content"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn to_device_messages_are_delivered_once() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob1 = local_user(&srv, "bob").await;
    let bob2 = srv.login("localhost", "bob", "pw-bob-1").await;
    let api = srv.on("localhost");
    let alice_api = api.as_user(&alice);
    let (b1, b2) = (api.as_user(&bob1), api.as_user(&bob2));
    let a = alice.user_id.clone();
    let bob = bob1.user_id.clone();
    let ping = |n: u32| ("m.test.ping".to_owned(), json!({"n": n}));
    let from_alice = |(t, c): (String, Value)| (a.clone(), t, c);

    let s = sync(&b1, None, None).await;
    assert!(received(&s).is_empty(), "{s}");
    let t1 = next_batch(&s);
    let t2 = next_batch(&sync(&b2, None, None).await);

    // To one device.
    send_to_device(
        &alice_api,
        "m.test.ping",
        "txn-1",
        json!({&bob: {&bob1.device_id: {"n": 1}}}),
    )
    .await;
    let s = sync(&b1, Some(&t1), None).await;
    assert_eq!(received(&s), vec![from_alice(ping(1))], "{s}");
    let t1b = next_batch(&s);
    let s = sync(&b2, Some(&t2), None).await;
    assert!(
        received(&s).is_empty(),
        "sent to the other device only: {s}"
    );

    // Retrying the transaction, even with other content, sends nothing more.
    send_to_device(
        &alice_api,
        "m.test.ping",
        "txn-1",
        json!({&bob: {&bob1.device_id: {"n": 1}}}),
    )
    .await;
    send_to_device(
        &alice_api,
        "m.test.ping",
        "txn-1",
        json!({&bob: {&bob1.device_id: {"n": 99}}}),
    )
    .await;
    // Not acknowledged yet (the same `since` again, as after a lost response): delivered
    // again, still once.
    let s = sync(&b1, Some(&t1), None).await;
    assert_eq!(received(&s), vec![from_alice(ping(1))], "{s}");
    // Acknowledged by the next sync: gone for good.
    let s = sync(&b1, Some(&t1b), None).await;
    assert!(received(&s).is_empty(), "delivered twice: {s}");
    let t1 = next_batch(&s);
    let s = sync(&b1, Some(&t1), None).await;
    assert!(received(&s).is_empty(), "{s}");
    let s = sync(&b1, None, None).await;
    assert!(
        received(&s).is_empty(),
        "an acknowledged message came back: {s}"
    );

    // Transaction ids are per device: Alice's other device may use the same one.
    let alice2 = srv.login("localhost", "alice", "pw-alice-1").await;
    send_to_device(
        &api.as_user(&alice2),
        "m.test.ping",
        "txn-1",
        json!({&bob: {&bob1.device_id: {"n": 2}}}),
    )
    .await;
    let s = sync(&b1, Some(&t1), None).await;
    assert_eq!(received(&s), vec![from_alice(ping(2))], "{s}");
    let t1 = next_batch(&s);

    // `*` reaches every device of the user, in order of arrival.
    for n in 3..6 {
        send_to_device(
            &alice_api,
            "m.test.ping",
            &format!("txn-star-{n}"),
            json!({&bob: {"*": {"n": n}}}),
        )
        .await;
    }
    send_to_device(
        &alice_api,
        "m.test.other",
        "txn-other",
        json!({&bob: {&bob2.device_id: {"other": true}}}),
    )
    .await;
    let s = sync(&b1, Some(&t1), None).await;
    assert_eq!(
        received(&s),
        vec![
            from_alice(ping(3)),
            from_alice(ping(4)),
            from_alice(ping(5))
        ],
        "{s}"
    );
    let t1 = next_batch(&s);
    let s = sync(&b2, Some(&t2), None).await;
    assert_eq!(
        received(&s),
        vec![
            from_alice(ping(3)),
            from_alice(ping(4)),
            from_alice(ping(5)),
            from_alice(("m.test.other".to_owned(), json!({"other": true}))),
        ],
        "{s}"
    );
    let t2 = next_batch(&s);
    assert!(received(&sync(&b2, Some(&t2), None).await).is_empty());
    assert!(received(&sync(&b1, Some(&t1), None).await).is_empty());

    // Several users and devices in one request; a device that doesn't exist is ignored.
    let carol = local_user(&srv, "carol").await;
    let tc = next_batch(&sync(&api.as_user(&carol), None, None).await);
    send_to_device(
        &alice_api,
        "m.test.ping",
        "txn-multi",
        json!({
            &bob: {&bob2.device_id: {"n": 6}, "NOSUCHDEVICE": {"n": 6}},
            &carol.user_id: {&carol.device_id: {"n": 7}},
        }),
    )
    .await;
    let s = sync(&b2, Some(&t2), None).await;
    assert_eq!(received(&s), vec![from_alice(ping(6))], "{s}");
    let s = sync(&api.as_user(&carol), Some(&tc), None).await;
    assert_eq!(received(&s), vec![from_alice(ping(7))], "{s}");
    assert!(received(&sync(&b1, Some(&t1), None).await).is_empty());

    // A sender gets nothing back.
    let s = sync(&alice_api, None, None).await;
    assert!(received(&s).is_empty(), "{s}");
}

#[tokio::test]
async fn to_device_message_wakes_a_waiting_sync() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost");
    let bob_api = api.as_user(&bob);
    let since = next_batch(&sync(&bob_api, None, None).await);

    let waiting = async {
        let started = Instant::now();
        let resp = bob_api
            .get(&format!("{CS}/sync?timeout=15000&since={}", enc(&since)))
            .await;
        (started.elapsed(), resp.ok())
    };
    let sending = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        send_to_device(
            &api.as_user(&alice),
            "m.test.wake",
            "txn-wake",
            json!({&bob.user_id: {&bob.device_id: {"wake": "up"}}}),
        )
        .await;
    };
    let ((elapsed, s), ()) = tokio::join!(waiting, sending);
    assert_eq!(
        received(&s),
        vec![(
            alice.user_id.clone(),
            "m.test.wake".to_owned(),
            json!({"wake": "up"})
        )],
        "{s}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "the sync wasn't woken by the to-device message: {elapsed:?}"
    );
}

#[tokio::test]
async fn bad_send_to_device_requests_are_refused() {
    let srv = TestServer::start().await;
    let alice = local_user(&srv, "alice").await;
    let bob = local_user(&srv, "bob").await;
    let api = srv.on("localhost");
    let alice_api = api.as_user(&alice);
    let bob_api = api.as_user(&bob);
    let since = next_batch(&sync(&bob_api, None, None).await);
    let path = format!("{CS}/sendToDevice/m.test/txn-bad");

    for body in [
        json!({"messages": "nope"}),
        json!({"messages": {&bob.user_id: ["x"]}}),
        json!({"messages": {&bob.user_id: {&bob.device_id: "not an object"}}}),
        json!({"messages": {"not a user id": {"X": {}}}}),
    ] {
        let resp = alice_api.put(&path, body.clone()).await;
        assert!(
            resp.status == 400 && ["M_BAD_JSON", "M_INVALID_PARAM"].contains(&resp.errcode()),
            "{body}: {} {}",
            resp.status,
            resp.text
        );
    }
    assert_error(
        &api.put(&path, json!({"messages": {}})).await,
        401,
        "M_MISSING_TOKEN",
    );
    let s = sync(&bob_api, Some(&since), None).await;
    assert!(
        received(&s).is_empty(),
        "a refused request delivered something: {s}"
    );
}
