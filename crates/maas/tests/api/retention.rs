//! Pruning (`[retention]`): notifications nobody can count any more and old device list
//! changes go, and what clients see stays right — unread counts, `device_lists` of sync and
//! `keys/changes`, also from a sync token older than what was pruned. The servers here prune
//! every second and keep nothing for history, so what may go goes at once.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection;

use crate::e2ee_support::*;
use crate::harness::*;
use crate::room_support::*;

fn pruning_at_once() -> Options {
    Options::default()
        .env("MAAS_RETENTION__INTERVAL_SECS", "1")
        .env("MAAS_RETENTION__NOTIFICATIONS_SECS", "0")
        .env("MAAS_RETENTION__DEVICE_LISTS_SECS", "0")
}

/// Runs `sql` (a query of one integer) in the database of tenant `tenant_id`.
async fn scalar(srv: &TestServer, tenant_id: &str, sql: &str) -> i64 {
    let sql = || sqlx::AssertSqlSafe(sql.to_owned());
    let value = match &srv.database {
        None => {
            let path = srv.data_dir.join("tenants").join(tenant_id);
            let url = format!("sqlite://{}/homeserver.db", path.display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await;
            let conn = conn.as_mut().expect("tenant database");
            sqlx::query_scalar(sql()).fetch_one(conn).await
        }
        Some(database) => {
            // The tenant's schema first on the search path, for unqualified table names.
            let url = format!("{}?options=-csearch_path%3Dt_{tenant_id}", database.url);
            let mut conn = sqlx::PgConnection::connect(&url).await;
            let conn = conn.as_mut().expect("test database");
            sqlx::query_scalar(sql()).fetch_one(conn).await
        }
    };
    value.expect("query")
}

async fn rows(srv: &TestServer, tenant_id: &str, table: &str) -> i64 {
    scalar(srv, tenant_id, &format!("SELECT COUNT(*) FROM {table}")).await
}

async fn tenant_id(srv: &TestServer) -> String {
    srv.get_tenant("localhost").await["tenant_id"]
        .as_str()
        .expect("tenant id")
        .to_owned()
}

/// A server that prunes at once, its tenant's id, and three users of it.
async fn pruning_server() -> (TestServer, String, [Session; 3]) {
    let srv = TestServer::start_with(pruning_at_once()).await;
    let tenant = tenant_id(&srv).await;
    let users = [
        local_user(&srv, "alice").await,
        local_user(&srv, "bob").await,
        local_user(&srv, "carol").await,
    ];
    (srv, tenant, users)
}

async fn read_up_to(api: &Api<'_>, room: &str, event_id: &str) {
    api.post(
        &format!("{CS}/rooms/{}/receipt/m.read/{}", enc(room), enc(event_id)),
        json!({}),
    )
    .await
    .ok();
}

/// `(notification_count, highlight_count)` of `room` in a fresh initial sync.
async fn unread(api: &Api<'_>, room: &str) -> (Value, Value) {
    let s = sync(api, None, None).await;
    let counts = &joined(&s, room)["unread_notifications"];
    (
        counts["notification_count"].clone(),
        counts["highlight_count"].clone(),
    )
}

#[tokio::test]
async fn read_notifications_go_and_unread_counts_stay() {
    let (srv, tenant, [alice, bob, carol]) = pruning_server().await;
    let api = srv.on("localhost");
    let (alice_api, bob_api, carol_api) =
        (api.as_user(&alice), api.as_user(&bob), api.as_user(&carol));
    let room = create_room(
        &alice_api,
        json!({"preset": "private_chat", "invite": [bob.user_id, carol.user_id]}),
    )
    .await;
    join(&bob_api, &room).await;
    join(&carol_api, &room).await;
    let mention = |n: u32| {
        json!({"msgtype": "m.text", "body": format!("bob, {n}"),
               "m.mentions": {"user_ids": [bob.user_id]}})
    };
    send_text(&alice_api, &room, "one").await;
    send_text(&alice_api, &room, "two").await;
    let three = send(&alice_api, &room, "m.room.message", mention(3)).await;
    let four = send(&alice_api, &room, "m.room.message", mention(4)).await;
    let five = send_text(&alice_api, &room, "five").await;
    // Bob read up to the first mention; Carol read everything; Alice reads nothing (what
    // she sent doesn't notify her).
    read_up_to(&bob_api, &room, &three).await;
    read_up_to(&carol_api, &room, &five).await;
    let before = [
        unread(&alice_api, &room).await,
        unread(&bob_api, &room).await,
        unread(&carol_api, &room).await,
    ];
    assert_eq!(
        before[1],
        (json!(2), json!(1)),
        "bob: four (a mention) and five"
    );
    assert_eq!(before[2], (json!(0), json!(0)), "carol read everything");

    // What every member but the sender read goes: room-wide notifications one and two, and
    // the mentions' rows of their own (Bob's and Carol's) but Bob's unread one of four. What
    // stays is exactly what the counts are made of.
    wait_for("pruning", Duration::from_secs(20), || async {
        let room_rows = rows(&srv, &tenant, "room_push_actions").await;
        let own_rows = rows(&srv, &tenant, "event_push_actions").await;
        (room_rows == 1 && own_rows == 1).then_some(())
    })
    .await;
    let room_kept = scalar(
        &srv,
        &tenant,
        &format!("SELECT COUNT(*) FROM room_push_actions WHERE event_id = '{five}'"),
    )
    .await;
    let own_kept = scalar(
        &srv,
        &tenant,
        &format!(
            "SELECT COUNT(*) FROM event_push_actions WHERE event_id = '{four}' AND user_id = '{}'",
            bob.user_id
        ),
    )
    .await;
    assert_eq!((room_kept, own_kept), (1, 1));

    let after = [
        unread(&alice_api, &room).await,
        unread(&bob_api, &room).await,
        unread(&carol_api, &room).await,
    ];
    assert_eq!(after, before);
    // And counting goes on from there.
    send_text(&alice_api, &room, "six").await;
    assert_eq!(unread(&bob_api, &room).await, (json!(3), json!(1)));
    assert_eq!(unread(&carol_api, &room).await, (json!(1), json!(0)));
}

#[tokio::test]
async fn device_lists_stay_right_after_pruning() {
    let (srv, tenant, [alice, bob, carol]) = pruning_server().await;
    let api = srv.on("localhost");
    let (alice_api, bob_api, carol_api) =
        (api.as_user(&alice), api.as_user(&bob), api.as_user(&carol));
    let room = create_room(
        &alice_api,
        json!({"preset": "private_chat", "invite": [bob.user_id]}),
    )
    .await;
    join(&bob_api, &room).await;
    // Bob's token from before the changes.
    let old = next_batch(&sync(&bob_api, None, None).await);

    // Alice, who shares a room with Bob, and Carol, who doesn't, change their keys.
    upload_device_keys(&alice_api, &TestDevice::of(&alice)).await;
    upload_device_keys(&carol_api, &TestDevice::of(&carol)).await;
    wait_for("pruning", Duration::from_secs(20), || async {
        let left = rows(&srv, &tenant, "device_list_changes").await;
        let pruned = scalar(
            &srv,
            &tenant,
            "SELECT device_lists_pruned_through FROM counters",
        )
        .await;
        (left == 0 && pruned > 0).then_some(())
    })
    .await;

    // The changes are gone, yet Bob's old token still learns of Alice's (and of nobody he
    // shares no room with).
    let s = sync(&bob_api, Some(&old), None).await;
    let changed = device_lists(&s, "changed");
    assert!(changed.contains(&alice.user_id), "{s}");
    assert!(!changed.contains(&carol.user_id), "{s}");
    let now = next_batch(&s);
    let listed = keys_changes(&bob_api, &old, &now).await;
    assert!(listed.contains(&alice.user_id), "{listed:?}");
    assert!(!listed.contains(&carol.user_id), "{listed:?}");

    // A change after the pruning is seen from a token after it: Alice's second device.
    let recent = next_batch(&sync(&bob_api, Some(&now), None).await);
    let second = srv.login("localhost", "alice", "pw-alice-1").await;
    upload_device_keys(&api.as_user(&second), &TestDevice::of(&second)).await;
    let s = sync(&bob_api, Some(&recent), None).await;
    assert!(device_lists(&s, "changed").contains(&alice.user_id), "{s}");
}
