//! Two maas processes federate over the network (spec: Server-Server API, "Resolving server
//! names", TLS): each hosts two tenants named by IP literals on loopback (`127.0.0.1:PORT`,
//! `127.0.0.2:PORT`), its federation listener speaks TLS with a certificate of a test CA the
//! other process trusts by configuration (`federation.ca_files`, no system roots). Users of all
//! four tenants share a room, join by alias across processes, talk, and a process restarted
//! mid-conversation catches up with nothing lost; users of the two processes invite, see each
//! other typing and reading, edit and redact, leave and come back, and change the room's state
//! at the same time with both servers resolving it alike.

use std::time::Duration;

use serde_json::{Value, json};

use crate::federation_rooms;
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

/// The two processes, and the test CA whose files they read.
struct World {
    procs: [TestServer; 2],
    _pki: Pki,
}

impl World {
    fn api<'a>(&'a self, member: &'a Member) -> Api<'a> {
        self.procs[member.process]
            .on(member.host)
            .as_user(&member.session)
    }

    async fn send(&self, member: &Member, room_id: &str, body: &str) {
        federation_rooms::send(
            self.server(member),
            member.host,
            &member.session,
            room_id,
            body,
        )
        .await;
    }

    async fn bodies(&self, member: &Member, room_id: &str) -> Vec<String> {
        federation_rooms::bodies(self.server(member), member.host, &member.session, room_id).await
    }

    fn server(&self, member: &Member) -> &TestServer {
        &self.procs[member.process]
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

/// Two processes, each hosting two tenants, and a user of each tenant: alice (process one),
/// dave (one), bob (two), carol (two). Returns the processes' federation ports too.
async fn world() -> (World, [Member; 4], [u16; 2]) {
    let pki = Pki::new();
    let leaf = pki.issue(&["127.0.0.1", "127.0.0.2"]);
    let files = pki.write("federation", &leaf);
    let ca = pki.write_ca("ca.pem");
    let ca = ca.to_str().expect("UTF-8 path");
    let ports = [free_port(), free_port()];
    let procs = [
        process(ports[0], &files, ca).await,
        process(ports[1], &files, ca).await,
    ];
    let world = World { procs, _pki: pki };
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
    let members = <[Member; 4]>::try_from(members).ok().expect("four");
    (world, members, ports)
}

#[tokio::test]
async fn two_processes_share_a_room_over_tls_and_catch_up_after_a_restart() {
    let (mut world, [alice, dave, bob, carol], ports) = world().await;
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

impl World {
    /// Sends `content` as an `m.room.message` of `member`; returns its event id.
    async fn send_content(
        &self,
        member: &Member,
        room_id: &str,
        txn: &str,
        content: Value,
    ) -> String {
        let sent = self
            .api(member)
            .put(
                &format!(
                    "/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
                    enc(room_id)
                ),
                content,
            )
            .await
            .ok();
        sent["event_id"].as_str().expect("event id").to_owned()
    }

    /// Waits until the member's server holds `event_id` and `check` holds for it.
    async fn event_seen(
        &self,
        member: &Member,
        room_id: &str,
        event_id: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(room_id),
            enc(event_id)
        );
        let mut last = Value::Null;
        for _ in 0..150 {
            let resp = self.api(member).get(&path).await;
            if resp.status == 200 {
                last = resp.body;
                if check(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{} never saw {event_id} as expected: {last}", member.host);
    }

    /// Waits until `user_id`'s membership of the room, as the member's server has it, is
    /// `membership`.
    async fn membership_seen(
        &self,
        member: &Member,
        room_id: &str,
        user_id: &str,
        membership: &str,
    ) {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
            enc(room_id),
            enc(user_id)
        );
        for _ in 0..150 {
            let resp = self.api(member).get(&path).await;
            if resp.status == 200 && resp.body["membership"] == membership {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{} never saw {user_id} {membership}", member.host);
    }

    /// The room's state on the member's server, one line per event, sorted.
    async fn full_state(&self, member: &Member, room_id: &str) -> Vec<String> {
        let path = format!("/_matrix/client/v3/rooms/{}/state", enc(room_id));
        let all = self.api(member).get(&path).await.body;
        let mut entries: Vec<String> = all
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{} {} {} {}",
                    e["type"], e["state_key"], e["event_id"], e["content"]
                )
            })
            .collect();
        entries.sort();
        entries
    }

    async fn invite_and_join(&self, inviter: &Member, invitee: &Member, room_id: &str) {
        let room = |action: &str| format!("/_matrix/client/v3/rooms/{}/{action}", enc(room_id));
        self.api(inviter)
            .post(&room("invite"), json!({"user_id": invitee.session.user_id}))
            .await
            .ok();
        self.api(invitee).post(&room("join"), json!({})).await.ok();
    }
}

#[tokio::test]
async fn two_processes_invite_talk_edit_redact_leave_and_resolve_alike() {
    let (world, [alice, _dave, bob, _carol], _) = world().await;
    let bob_id = bob.session.user_id.clone();
    let room = world
        .api(&alice)
        .post(
            "/_matrix/client/v3/createRoom",
            json!({"preset": "private_chat", "name": "Private"}),
        )
        .await
        .ok();
    let room_id = room["room_id"].as_str().expect("room id").to_owned();

    // An invite across processes, accepted.
    world.invite_and_join(&alice, &bob, &room_id).await;
    world.send(&bob, &room_id, "thanks for the invite").await;
    world
        .sees(&alice, &room_id, &["thanks for the invite"])
        .await;

    // Typing and read receipts travel as EDUs over TLS.
    world
        .api(&bob)
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/typing/{}",
                enc(&room_id),
                enc(&bob_id)
            ),
            json!({"typing": true, "timeout": 30000}),
        )
        .await
        .ok();
    let alice_proc = &world.procs[alice.process];
    federation_rooms::wait_for_ephemeral(
        alice_proc,
        alice.host,
        &alice.session,
        &room_id,
        "m.typing",
        |e| e["content"]["user_ids"] == json!([bob_id]),
    )
    .await;
    let typo = world
        .send_content(
            &alice,
            &room_id,
            "t1",
            json!({"msgtype": "m.text", "body": "helo"}),
        )
        .await;
    world.event_seen(&bob, &room_id, &typo, |_| true).await;
    world
        .api(&alice)
        .post(
            &format!(
                "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
                enc(&room_id),
                enc(&typo)
            ),
            json!({}),
        )
        .await
        .ok();
    let bob_proc = &world.procs[bob.process];
    let alice_id = alice.session.user_id.as_str();
    federation_rooms::wait_for_ephemeral(
        bob_proc,
        bob.host,
        &bob.session,
        &room_id,
        "m.receipt",
        |e| e["content"][typo.as_str()]["m.read"][alice_id].is_object(),
    )
    .await;

    // An edit, then a redaction of the original.
    let edit = world
        .send_content(
            &alice,
            &room_id,
            "t2",
            json!({
                "msgtype": "m.text",
                "body": "* hello",
                "m.new_content": {"msgtype": "m.text", "body": "hello"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": typo},
            }),
        )
        .await;
    let seen = world.event_seen(&bob, &room_id, &edit, |_| true).await;
    assert_eq!(seen["content"]["m.relates_to"]["event_id"], typo.as_str());
    world
        .api(&alice)
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/redact/{}/r1",
                enc(&room_id),
                enc(&typo)
            ),
            json!({"reason": "typo"}),
        )
        .await
        .ok();
    let redacted = world
        .event_seen(&bob, &room_id, &typo, |e| e["content"] == json!({}))
        .await;
    assert!(
        redacted["unsigned"]["redacted_because"].is_object(),
        "{redacted}"
    );

    // Bob leaves, and comes back on a new invite.
    world
        .api(&bob)
        .post(
            &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room_id)),
            json!({}),
        )
        .await
        .ok();
    world
        .membership_seen(&alice, &room_id, &bob_id, "leave")
        .await;
    world.send(&alice, &room_id, "while bob was out").await;
    world.invite_and_join(&alice, &bob, &room_id).await;
    world
        .membership_seen(&alice, &room_id, &bob_id, "join")
        .await;
    world.send(&alice, &room_id, "welcome back").await;
    // Bob's server, back in the room, has what was said while it was out too.
    world
        .sees(&bob, &room_id, &["while bob was out", "welcome back"])
        .await;

    // Both change the room's name at once: each server receives the other's beside its own
    // and both resolve the room alike.
    let mut levels = federation_rooms::state_of(
        alice_proc,
        alice.host,
        &alice.session,
        &room_id,
        "m.room.power_levels",
    )
    .await;
    levels["users"][bob_id.as_str()] = json!(100);
    let levels_path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.power_levels/",
        enc(&room_id)
    );
    world.api(&alice).put(&levels_path, levels).await.ok();
    world.send(&alice, &room_id, "you may rename it").await;
    world.sees(&bob, &room_id, &["you may rename it"]).await;
    let name_path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.name/",
        enc(&room_id)
    );
    let (as_alice, as_bob) = (world.api(&alice), world.api(&bob));
    for round in 0..3 {
        let (from_alice, from_bob) = tokio::join!(
            as_alice.put(&name_path, json!({"name": format!("a{round}")})),
            as_bob.put(&name_path, json!({"name": format!("b{round}")})),
        );
        from_alice.ok();
        from_bob.ok();
    }
    // A last word from each side, in turn, merges what forked.
    world.send(&alice, &room_id, "alice done").await;
    world.sees(&bob, &room_id, &["alice done"]).await;
    world.send(&bob, &room_id, "bob done").await;
    world.sees(&alice, &room_id, &["bob done"]).await;
    let on_alice = federation_rooms::state_of(
        alice_proc,
        alice.host,
        &alice.session,
        &room_id,
        "m.room.name",
    )
    .await;
    let on_bob =
        federation_rooms::state_of(bob_proc, bob.host, &bob.session, &room_id, "m.room.name").await;
    if on_alice != on_bob {
        let (a, b) = (
            world.full_state(&alice, &room_id).await,
            world.full_state(&bob, &room_id).await,
        );
        let only_a: Vec<&String> = a.iter().filter(|e| !b.contains(e)).collect();
        let only_b: Vec<&String> = b.iter().filter(|e| !a.contains(e)).collect();
        eprintln!("only on alice's server: {only_a:#?}\nonly on bob's: {only_b:#?}");
        let log = world
            .procs
            .iter()
            .map(TestServer::stderr)
            .collect::<Vec<_>>()
            .join("\n");
        let received: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("maas_core::federation") || l.contains("maas_core::rooms"))
            .collect();
        panic!(
            "the same name must win on both servers: {on_alice} / {on_bob}\n{}",
            received.join("\n")
        );
    }
}
