//! Interoperability with Synapse (spec: Server-Server API): a Synapse from PyPI
//! (`synapse_peer`) and a maas tenant federate over TLS on loopback, each trusting the tests'
//! CA. A Synapse user joins a maas room and a maas user joins a Synapse room, both by alias;
//! messages, state, redactions, typing and history cross both ways; and matrix-sdk clients on
//! both servers hold an encrypted conversation (keys, one-time keys and to-device messages
//! across the servers). Media cross too: each server's users download and thumbnail the
//! other's uploads, fetched over federation (multipart/mixed both ways). It runs once, on the
//! SQLite pass: what it checks does not depend on the storage backend.

use std::net::SocketAddr;
use std::time::Duration;

use matrix_sdk::Client;
use matrix_sdk::ruma::OwnedUserId;
use serde_json::{Value, json};

use crate::e2ee_sdk::{accept_invite, create_encrypted_room, send_text};
use crate::e2ee_support::*;
use crate::federation_tls::Pki;
use crate::harness::*;
use crate::media::{Downloaded, dimensions, download, png, upload};
use crate::synapse_peer::{Synapse, SynapseUser};

/// Tries `check` every 100 ms for 15 s.
macro_rules! eventually {
    ($what:expr, $check:expr) => {{
        let mut ok = false;
        for _ in 0..150 {
            if $check {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ok, "{} never happened", $what);
    }};
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn maas_bodies(srv: &TestServer, user: &Session, room_id: &str) -> Vec<String> {
    let page = srv
        .on("maas.test")
        .as_user(user)
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100",
            enc(room_id)
        ))
        .await
        .ok();
    let mut bodies: Vec<String> = page["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| {
            e["content"]["body"]
                .as_str()
                .unwrap_or("(redacted)")
                .to_owned()
        })
        .collect();
    bodies.reverse();
    bodies
}

async fn maas_send(srv: &TestServer, user: &Session, room_id: &str, body: &str) -> String {
    let sent = srv
        .on("maas.test")
        .as_user(user)
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
                enc(room_id),
                enc(body)
            ),
            json!({"msgtype": "m.text", "body": body}),
        )
        .await
        .ok();
    sent["event_id"].as_str().expect("event id").to_owned()
}

async fn synapse_send(synapse: &Synapse, user: &SynapseUser, room_id: &str, body: &str) -> String {
    let sent = synapse
        .call(
            "PUT",
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
                enc(room_id),
                enc(body)
            ),
            Some(user),
            Some(json!({"msgtype": "m.text", "body": body})),
        )
        .await;
    sent["event_id"].as_str().expect("event id").to_owned()
}

fn has(bodies: &[String], body: &str) -> bool {
    bodies.iter().any(|b| b == body)
}

/// A maas tenant (`127.0.0.1:PORT`, client host `maas.test`) and a Synapse, federating over
/// TLS with certificates of one test CA; `None` on the PostgreSQL pass.
async fn peers() -> Option<(TestServer, String, Synapse, Pki)> {
    if postgres_base_url().is_some() {
        eprintln!("runs on the SQLite pass only: Synapse interoperability is backend-independent");
        return None;
    }
    let pki = Pki::new();
    let files = pki.write("federation", &pki.issue(&["127.0.0.1", "127.0.0.3"]));
    let ca = pki.write_ca("ca.pem");
    let port = free_port();
    let ca_list = format!("[\"{}\"]", ca.display());
    let srv = TestServer::start_with(
        Options::default()
            .env("MAAS_FEDERATION__LISTEN", &format!("127.0.0.1:{port}"))
            .env("MAAS_FEDERATION__TLS_CERTIFICATE", files.certificate())
            .env("MAAS_FEDERATION__TLS_KEY", files.key())
            .env("MAAS_FEDERATION__CA_FILES", &ca_list)
            .env("MAAS_FEDERATION__SYSTEM_ROOTS", "false")
            .env("MAAS_FEDERATION__ALLOW_PRIVATE_ADDRESSES", "true"),
    )
    .await;
    let maas_name = format!("127.0.0.1:{port}");
    srv.create_tenant(&maas_name, &["maas.test"], "open").await;
    let synapse = Synapse::start(&files, &ca).await;
    Some((srv, maas_name, synapse, pki))
}

#[tokio::test]
async fn synapse_and_maas_users_share_rooms_both_ways() {
    let Some((srv, maas_name, synapse, _pki)) = peers().await else {
        return;
    };
    let alice = srv.register("maas.test", "alice", "password-alice").await;
    let as_alice = srv.on("maas.test").as_user(&alice);
    let sam = synapse.register("sam").await;

    // A Synapse user joins a maas room by alias, and sees its history.
    let room = as_alice
        .post(
            "/_matrix/client/v3/createRoom",
            json!({"preset": "public_chat", "room_alias_name": "lobby", "name": "Lobby"}),
        )
        .await
        .ok();
    let lobby = room["room_id"].as_str().expect("room id").to_owned();
    maas_send(&srv, &alice, &lobby, "before sam came").await;
    let joined = synapse
        .call(
            "POST",
            &format!(
                "/_matrix/client/v3/join/{}",
                enc(&format!("#lobby:{maas_name}"))
            ),
            Some(&sam),
            Some(json!({})),
        )
        .await;
    assert_eq!(joined["room_id"], lobby.as_str());
    let members = as_alice
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/joined_members",
            enc(&lobby)
        ))
        .await
        .ok();
    assert!(members["joined"][&sam.user_id].is_object(), "{members}");
    let name = synapse
        .call(
            "GET",
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.name/",
                enc(&lobby)
            ),
            Some(&sam),
            None,
        )
        .await;
    assert_eq!(name["name"], "Lobby");
    eventually!(
        "sam reading the history from before he joined",
        has(&synapse.bodies(&sam, &lobby).await, "before sam came")
    );

    // Messages, state and redactions, both ways.
    maas_send(&srv, &alice, &lobby, "hello from maas").await;
    eventually!(
        "alice's message on Synapse",
        has(&synapse.bodies(&sam, &lobby).await, "hello from maas")
    );
    let sams = synapse_send(&synapse, &sam, &lobby, "hello from synapse").await;
    eventually!(
        "sam's message on maas",
        has(
            &maas_bodies(&srv, &alice, &lobby).await,
            "hello from synapse"
        )
    );
    as_alice
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.topic/",
                enc(&lobby)
            ),
            json!({"topic": "federated"}),
        )
        .await
        .ok();
    let topic_path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.topic/",
        enc(&lobby)
    );
    eventually!("the topic on Synapse", {
        let mut request = http_client().get(format!("{}{topic_path}", synapse.client_url));
        request = request.bearer_auth(&sam.token);
        let answer: Value = request
            .send()
            .await
            .expect("Synapse answers")
            .json()
            .await
            .unwrap_or(Value::Null);
        answer["topic"] == "federated"
    });
    synapse
        .call(
            "PUT",
            &format!(
                "/_matrix/client/v3/rooms/{}/redact/{}/r1",
                enc(&lobby),
                enc(&sams)
            ),
            Some(&sam),
            Some(json!({"reason": "oops"})),
        )
        .await;
    eventually!(
        "sam's redaction on maas",
        !has(
            &maas_bodies(&srv, &alice, &lobby).await,
            "hello from synapse"
        )
    );

    // A maas user joins a Synapse room by alias; they talk there, and type.
    let room = synapse
        .call(
            "POST",
            "/_matrix/client/v3/createRoom",
            Some(&sam),
            Some(json!({"preset": "public_chat", "room_alias_name": "syn", "name": "Syn"})),
        )
        .await;
    let syn = room["room_id"].as_str().expect("room id").to_owned();
    synapse_send(&synapse, &sam, &syn, "before alice came").await;
    let joined = as_alice
        .post(
            &format!(
                "/_matrix/client/v3/join/{}",
                enc(&format!("#syn:{}", synapse.server_name))
            ),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(joined["room_id"], syn.as_str());
    let name = as_alice
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.name/",
            enc(&syn)
        ))
        .await
        .ok();
    assert_eq!(name["name"], "Syn");
    // Paging back past her join, maas backfills the room's history from Synapse.
    assert!(
        has(&maas_bodies(&srv, &alice, &syn).await, "before alice came"),
        "alice reads the history from before she joined"
    );
    synapse_send(&synapse, &sam, &syn, "welcome to synapse").await;
    eventually!(
        "sam's message on maas",
        has(&maas_bodies(&srv, &alice, &syn).await, "welcome to synapse")
    );
    let mine = maas_send(&srv, &alice, &syn, "thanks from maas").await;
    eventually!(
        "alice's message on Synapse",
        has(&synapse.bodies(&sam, &syn).await, "thanks from maas")
    );
    as_alice
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/redact/{}/r1",
                enc(&syn),
                enc(&mine)
            ),
            json!({}),
        )
        .await
        .ok();
    eventually!(
        "alice's redaction on Synapse",
        !has(&synapse.bodies(&sam, &syn).await, "thanks from maas")
    );
    as_alice
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/typing/{}",
                enc(&syn),
                enc(&alice.user_id)
            ),
            json!({"typing": true, "timeout": 20000}),
        )
        .await
        .ok();
    eventually!("alice typing on Synapse", {
        let sync = synapse
            .call("GET", "/_matrix/client/v3/sync?timeout=0", Some(&sam), None)
            .await;
        let events = &sync["rooms"]["join"][&syn]["ephemeral"]["events"];
        events.as_array().is_some_and(|events| {
            events.iter().any(|e| {
                e["type"] == "m.typing" && e["content"]["user_ids"] == json!([alice.user_id])
            })
        })
    });

    media_crosses_both_ways(&srv, &maas_name, &synapse, &alice, &sam).await;
}

/// The server name and media id of an `mxc://` URI.
fn mxc_parts(uri: &str) -> (String, String) {
    let rest = uri.strip_prefix("mxc://").expect("an mxc URI");
    let (server, id) = rest.split_once('/').expect("mxc://server/id");
    (server.to_owned(), id.to_owned())
}

#[track_caller]
fn assert_downloaded(d: &Downloaded, what: &str) {
    assert_eq!(
        d.status,
        200,
        "{what}: {}",
        String::from_utf8_lossy(&d.bytes[..d.bytes.len().min(500)])
    );
}

/// Each side downloads and thumbnails the other's upload through its own homeserver, which
/// fetches it from the origin with the federation media endpoints: maas's multipart answers
/// parsed by Synapse, and Synapse's by maas.
async fn media_crosses_both_ways(
    srv: &TestServer,
    maas_name: &str,
    synapse: &Synapse,
    alice: &Session,
    sam: &SynapseUser,
) {
    // Alice's picture, read by sam through Synapse.
    let picture = png(640, 480);
    let as_alice = srv.on("maas.test").as_user(alice);
    let up = upload(&as_alice, picture.clone(), "image/png", Some("maas.png")).await;
    let uri = up.resp.ok()["content_uri"]
        .as_str()
        .expect("content_uri")
        .to_owned();
    let (server, media_id) = mxc_parts(&uri);
    assert_eq!(server, maas_name, "{uri}");
    let d = synapse
        .download(
            sam,
            &format!("/_matrix/client/v1/media/download/{maas_name}/{media_id}"),
        )
        .await;
    assert_downloaded(&d, "sam downloading alice's picture through Synapse");
    assert!(d.bytes == picture, "sam's copy differs from alice's upload");
    assert_eq!(d.header("content-type"), "image/png");
    let d = synapse
        .download(
            sam,
            &format!(
                "/_matrix/client/v1/media/thumbnail/{maas_name}/{media_id}\
                 ?width=96&height=96&method=crop"
            ),
        )
        .await;
    assert_downloaded(&d, "sam's thumbnail of alice's picture through Synapse");
    // Synapse may cut it from the original it fetched or ask maas for it; either way a
    // thumbnail is an image at least as large as the box asked for and smaller than the
    // original, cropped to the box's shape.
    let (width, height) = dimensions(&d.bytes);
    assert!(
        width == height && (96..640).contains(&width),
        "a {width}x{height} thumbnail for a 96x96 crop"
    );

    // Sam's picture, read by alice through maas.
    let uri = synapse.upload(sam, picture.clone(), "image/png").await;
    let (server, media_id) = mxc_parts(&uri);
    assert_eq!(server, synapse.server_name, "{uri}");
    let d = download(
        &as_alice,
        &format!("/_matrix/client/v1/media/download/{server}/{media_id}"),
    )
    .await;
    assert_downloaded(&d, "alice downloading sam's picture through maas");
    assert!(d.bytes == picture, "alice's copy differs from sam's upload");
    assert_eq!(d.header("content-type"), "image/png");
    // maas scales the original it fetched: 640x480 fits 320x240 exactly.
    let d = download(
        &as_alice,
        &format!(
            "/_matrix/client/v1/media/thumbnail/{server}/{media_id}\
             ?width=320&height=240&method=scale"
        ),
    )
    .await;
    assert_downloaded(&d, "alice's thumbnail of sam's picture through maas");
    assert_eq!(dimensions(&d.bytes), (320, 240));
}

/// A matrix-sdk client logged in as `user` on `homeserver`; `maas.test` resolves to loopback.
async fn sdk_client(homeserver: &str, maas_port: u16, user: &str, password: &str) -> Client {
    let http = reqwest::Client::builder()
        .resolve("maas.test", SocketAddr::from(([127, 0, 0, 1], maas_port)))
        .build()
        .expect("HTTP client");
    let client = bounded(
        "building client",
        Client::builder()
            .homeserver_url(homeserver)
            .http_client(http)
            .build(),
    )
    .await
    .expect("building client");
    bounded(
        "login",
        client
            .matrix_auth()
            .login_username(user, password)
            .initial_device_display_name("interop test")
            .send(),
    )
    .await
    .unwrap_or_else(|e| panic!("login of {user}: {e}"));
    client
}

#[tokio::test]
async fn matrix_sdk_clients_on_synapse_and_maas_talk_encrypted() {
    let Some((srv, _maas_name, synapse, _pki)) = peers().await else {
        return;
    };
    srv.register("maas.test", "alice", "password-alice").await;
    let sam_user = synapse.register("sam").await;
    let alice = sdk_client(
        &format!("http://maas.test:{}", srv.port),
        srv.port,
        "alice",
        "password-alice",
    )
    .await;
    let sam = sdk_client(&synapse.client_url, srv.port, "sam", "password-sam-long").await;
    sdk_sync(&alice).await;
    sdk_sync(&sam).await;

    // Alice's encrypted room on maas, with sam of Synapse invited.
    let sam_id = OwnedUserId::try_from(sam_user.user_id.as_str()).expect("user id");
    let alice_room = create_encrypted_room(&alice, &[sam_id]).await;
    let room_id = alice_room.room_id().to_owned();
    let sam_room = accept_invite(&sam, &room_id).await;
    sdk_sync(&alice).await;
    sdk_sync(&sam).await;

    send_text(&alice_room, "a secret from maas").await;
    let events = sync_until(&sam, &room_id, 40, "sam decrypts alice's message", |ev| {
        decrypted_bodies(ev)
            .iter()
            .any(|b| b == "a secret from maas")
    })
    .await;
    assert!(decrypted_bodies(&events).contains(&"a secret from maas".to_owned()));

    send_text(&sam_room, "a secret from synapse").await;
    let events = sync_until(&alice, &room_id, 40, "alice decrypts sam's message", |ev| {
        decrypted_bodies(ev)
            .iter()
            .any(|b| b == "a secret from synapse")
    })
    .await;
    assert!(decrypted_bodies(&events).contains(&"a secret from synapse".to_owned()));
}
