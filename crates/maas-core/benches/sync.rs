//! `/sync` response building (`Tenant::sync`) for a user in 100 or 300 rooms, on a real
//! `Platform` with SQLite in a temporary data directory. Each room: created by Alice (public
//! chat preset), joined by Bob, then 10 messages. Benched: an initial sync, an incremental sync
//! with nothing new, and an incremental sync with one new message in one room.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use maas_core::accounts::AuthedUser;
use maas_core::config::Config;
use maas_core::filter::Filter;
use maas_core::rooms::{CreateRoom, EventDraft, Preset};
use maas_core::sync::{SyncRequest, parse_token};
use maas_core::{Platform, Tenant};
use maas_store::sqlite::SqliteBackend;
use ruma::OwnedDeviceId;
use serde_json::{Value, json};

const MESSAGES_PER_ROOM: usize = 10;

struct Fixture {
    // Kept for the platform's data; dropped last.
    _dir: tempfile::TempDir,
    _platform: Arc<Platform>,
    tenant: Tenant,
    alice: AuthedUser,
    /// Before the one extra message: an incremental sync from here carries it.
    before_last_message: i64,
    /// The newest position: an incremental sync from here has nothing new.
    now: i64,
}

async fn authed(tenant: &Tenant, localpart: &str) -> AuthedUser {
    tenant
        .accounts()
        .create_user(localpart, Some("bench-password-1"), false, Some(localpart))
        .await
        .expect("user");
    AuthedUser {
        user_id: maas_core::accounts::usernames::user_id(localpart, tenant.server_name())
            .expect("user id"),
        localpart: localpart.to_owned(),
        device_id: OwnedDeviceId::from("BENCHDEVICE"),
        admin: false,
        guest: false,
    }
}

fn request(since: Option<i64>) -> SyncRequest {
    SyncRequest {
        since,
        set_presence: None,
        timeout: Duration::ZERO,
        full_state: false,
        filter: Filter::default(),
    }
}

fn next_batch(response: &Value) -> i64 {
    parse_token(response["next_batch"].as_str().expect("next_batch")).expect("token")
}

async fn fixture(rooms: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    config.operator.token = Some("bench-operator-token".into());
    config.passwords.memory_kib = 1024;
    config.passwords.iterations = 1;
    config.rate_limits.enabled = false;
    let backend = SqliteBackend::open(dir.path()).await.expect("backend");
    let platform = Platform::start(config, Arc::new(backend))
        .await
        .expect("platform");
    platform.bootstrap_default_tenant().await.expect("tenant");
    let tenant = platform
        .tenant_by_server_name("localhost")
        .await
        .expect("tenant");
    let alice = authed(&tenant, "alice").await;
    let bob = authed(&tenant, "bob").await;
    let mut first_room = None;
    for r in 0..rooms {
        let room_id = tenant
            .rooms()
            .create(
                &alice.user_id,
                CreateRoom {
                    preset: Some(Preset::PublicChat),
                    name: Some(format!("Room {r}")),
                    topic: Some(format!("The topic of room {r}")),
                    ..CreateRoom::default()
                },
            )
            .await
            .expect("room");
        tenant
            .rooms()
            .join(&bob.user_id, &room_id, &[], None)
            .await
            .expect("join");
        for m in 0..MESSAGES_PER_ROOM {
            let sender = if m % 2 == 0 { &alice } else { &bob };
            let content =
                json!({ "msgtype": "m.text", "body": format!("Message {m} in room {r}") });
            tenant
                .rooms()
                .send(
                    &sender.user_id,
                    &room_id,
                    EventDraft::message("m.room.message", content),
                    None,
                )
                .await
                .expect("send");
        }
        first_room.get_or_insert(room_id);
    }
    // A first sync marks Alice online; later ones change nothing.
    let response = tenant.sync(&alice, request(None)).await.expect("sync");
    let before_last_message = next_batch(&response);
    let room_id = first_room.expect("a room");
    tenant
        .rooms()
        .send(
            &bob.user_id,
            &room_id,
            EventDraft::message(
                "m.room.message",
                json!({ "msgtype": "m.text", "body": "New" }),
            ),
            None,
        )
        .await
        .expect("send");
    let response = tenant
        .sync(&alice, request(Some(before_last_message)))
        .await
        .expect("sync");
    let now = next_batch(&response);
    assert!(now > before_last_message);
    Fixture {
        _dir: dir,
        _platform: platform,
        tenant,
        alice,
        before_last_message,
        now,
    }
}

impl Fixture {
    async fn close(self) {
        let Fixture {
            _dir: dir,
            _platform: platform,
            tenant,
            ..
        } = self;
        drop(tenant);
        platform.shutdown().await;
        drop(dir);
    }
}

fn bench_sync(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("sync");
    group.measurement_time(Duration::from_secs(5));
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(10);
    for rooms in [100usize, 300] {
        let setup = std::time::Instant::now();
        let fixture = rt.block_on(fixture(rooms));
        eprintln!(
            "sync fixture with {rooms} rooms built in {:.1?}",
            setup.elapsed()
        );
        let f = &fixture;

        // The responses are what they should be, once, outside the measurement.
        let joined = |since| {
            let response = rt
                .block_on(f.tenant.sync(&f.alice, request(since)))
                .expect("sync");
            response["rooms"]["join"]
                .as_object()
                .map_or(0, serde_json::Map::len)
        };
        assert_eq!(joined(None), rooms);
        assert_eq!(joined(Some(f.now)), 0);
        assert_eq!(joined(Some(f.before_last_message)), 1);

        let cases = [
            ("initial", None),
            ("incremental_no_change", Some(f.now)),
            ("incremental_one_message", Some(f.before_last_message)),
        ];
        for (name, since) in cases {
            group.bench_function(BenchmarkId::new(name, rooms), |b| {
                b.to_async(&rt).iter(|| async move {
                    black_box(f.tenant.sync(&f.alice, request(since)).await.expect("sync"))
                });
            });
        }
        rt.block_on(fixture.close());
    }
    group.finish();
}

criterion_group!(benches, bench_sync);
criterion_main!(benches);
