//! Two maas processes federate over the network (spec: Server-Server API, "Resolving server
//! names", TLS): each hosts two tenants named by IP literals on loopback (`127.0.0.1:PORT`,
//! `127.0.0.2:PORT`), its federation listener speaks TLS with a certificate of a test CA the
//! other process trusts by configuration (`federation.ca_files`, no system roots). Users of all
//! four tenants share a room, join by alias across processes, talk, and a process restarted
//! mid-conversation catches up with nothing lost.

use std::time::Duration;

use serde_json::{Value, json};

use crate::federation_tls::{Files, Pki};
use crate::harness::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A process whose federation listener is on `port` of every loopback address, TLS with
/// `files`, trusting only `ca`.
async fn process(port: u16, files: &Files, ca: &str) -> TestServer {
    let options = Options::default()
        .env("MAAS_FEDERATION__LISTEN", &format!("0.0.0.0:{port}"))
        .env("MAAS_FEDERATION__TLS_CERTIFICATE", files.certificate())
        .env("MAAS_FEDERATION__TLS_KEY", files.key())
        .env("MAAS_FEDERATION__CA_FILES", &format!("[\"{ca}\"]"))
        .env("MAAS_FEDERATION__SYSTEM_ROOTS", "false")
        .env("MAAS_FEDERATION__ALLOW_PRIVATE_ADDRESSES", "true");
    TestServer::start_with(options).await
}

/// One user of one tenant: which process (0 or 1), the tenant's client host, the session.
struct Member {
    process: usize,
    host: &'static str,
    session: Session,
}

/// The two processes.
struct World {
    procs: [TestServer; 2],
}

impl World {
    fn api<'a>(&'a self, member: &'a Member) -> Api<'a> {
        self.procs[member.process]
            .on(member.host)
            .as_user(&member.session)
    }

    async fn send(&self, member: &Member, room_id: &str, body: &str) {
        self.api(member)
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
    }

    async fn bodies(&self, member: &Member, room_id: &str) -> Vec<String> {
        let page = self
            .api(member)
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
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .collect();
        bodies.reverse();
        bodies
    }

    /// Waits until the member's server holds every one of `said` in the room.
    async fn sees(&self, member: &Member, room_id: &str, said: &[&str]) {
        let mut seen = Vec::new();
        for _ in 0..150 {
            seen = self.bodies(member, room_id).await;
            if said.iter().all(|s| seen.iter().any(|b| b == s)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = self
            .procs
            .iter()
            .map(TestServer::stderr)
            .collect::<Vec<_>>()
            .join("\n");
        let refusals: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("refused") || l.contains("failed") || l.contains("ERROR"))
            .collect();
        panic!(
            "{} misses some of {said:?}: {seen:?}\n{}",
            member.host,
            refusals.join("\n")
        );
    }

    async fn join(&self, member: &Member, alias: &str) -> Value {
        self.api(member)
            .post(
                &format!("/_matrix/client/v3/join/{}", enc(alias)),
                json!({}),
            )
            .await
            .ok()
    }
}

#[tokio::test]
async fn two_processes_share_a_room_over_tls_and_catch_up_after_a_restart() {
    let pki = Pki::new();
    let leaf = pki.issue(&["127.0.0.1", "127.0.0.2"]);
    let files = pki.write("federation", &leaf);
    let ca = pki.write_ca("ca.pem");
    let ca = ca.to_str().expect("UTF-8 path");
    let ports = [free_port(), free_port()];
    let mut world = World {
        procs: [
            process(ports[0], &files, ca).await,
            process(ports[1], &files, ca).await,
        ],
    };
    let tenants = [
        (0, "127.0.0.1", "one-a.test"),
        (0, "127.0.0.2", "one-b.test"),
        (1, "127.0.0.1", "two-a.test"),
        (1, "127.0.0.2", "two-b.test"),
    ];
    for (process, ip, host) in tenants {
        let server_name = format!("{ip}:{}", ports[process]);
        world.procs[process]
            .create_tenant(&server_name, &[host], "open")
            .await;
    }
    let mut members = Vec::new();
    for ((process, _, host), user) in tenants.into_iter().zip(["alice", "dave", "bob", "carol"]) {
        let session = world.procs[process]
            .register(host, user, &format!("password-{user}"))
            .await;
        members.push(Member {
            process,
            host,
            session,
        });
    }
    let [alice, dave, bob, carol] = <[Member; 4]>::try_from(members).ok().expect("four");

    let room = world
        .api(&alice)
        .post(
            "/_matrix/client/v3/createRoom",
            json!({"preset": "public_chat", "room_alias_name": "lobby"}),
        )
        .await
        .ok();
    let room_id = room["room_id"].as_str().expect("room id").to_owned();
    let alias = format!("#lobby:127.0.0.1:{}", ports[0]);
    // Across processes (TLS) and within one (in-process), by alias.
    for joiner in [&bob, &carol, &dave] {
        assert_eq!(
            world.join(joiner, &alias).await["room_id"],
            room_id.as_str()
        );
    }
    let everyone = [&alice, &bob, &carol, &dave];
    for speaker in everyone {
        let line = format!("from {}", speaker.host);
        world.send(speaker, &room_id, &line).await;
        for listener in everyone {
            world.sees(listener, &room_id, &[&line]).await;
        }
    }

    // Process two goes away mid-conversation; what alice and dave say meanwhile reaches it
    // once it is back.
    world.procs[1].stop().await;
    world.send(&alice, &room_id, "while two was down").await;
    world.send(&dave, &room_id, "also while two was down").await;
    world.procs[1].restart_after_stop().await;
    for listener in [&bob, &carol] {
        world
            .sees(
                listener,
                &room_id,
                &["while two was down", "also while two was down"],
            )
            .await;
    }
    world.send(&bob, &room_id, "back").await;
    world.sees(&alice, &room_id, &["back"]).await;
    world.sees(&dave, &room_id, &["back"]).await;
}
