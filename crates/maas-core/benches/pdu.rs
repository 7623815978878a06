//! Event hashing and signing: building a signed PDU with `rooms::pdu::build` (content hash,
//! ed25519 signature, reference hash as event id), and ruma's `hash_and_sign_event` and
//! `verify_event` alone, for a small message and a power levels event with 100 users.

mod common;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use common::{Branch, RoomBuilder, message_content, power_levels_content, user};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use maas_core::rooms::pdu::EventDraft;
use ruma::RoomVersionId;
use ruma::canonical_json::CanonicalJsonObject;
use ruma::serde::Base64;
use ruma::signatures::PublicKeyMap;

/// A room of `version` with the creator and 100 members at power 50.
fn room(version: &RoomVersionId) -> (RoomBuilder, Branch, Vec<ruma::OwnedUserId>) {
    let creator = user("alice");
    let members: Vec<_> = (0..100).map(|i| user(&format!("user{i:03}"))).collect();
    let (room, branch) = RoomBuilder::with_members(version, &creator, &members, &members);
    (room, branch, members)
}

/// The two drafts of every case: a short message and power levels listing 100 users.
fn drafts(room: &RoomBuilder, members: &[ruma::OwnedUserId]) -> [(&'static str, EventDraft); 2] {
    let creator = user("alice");
    [
        (
            "message",
            EventDraft::message("m.room.message", message_content(1)),
        ),
        (
            "power_levels_100_users",
            EventDraft::state(
                "m.room.power_levels",
                "",
                power_levels_content(&room.rules, &creator, members, &[]),
            ),
        ),
    ]
}

/// The unsigned JSON of a draft, as `pdu::build` assembles it before hashing.
fn unsigned_json(
    room: &mut RoomBuilder,
    branch: &Branch,
    draft: EventDraft,
) -> CanonicalJsonObject {
    let creator = user("alice");
    let mut json = room.build(branch, &creator, draft).json;
    json.remove("hashes");
    json.remove("signatures");
    json
}

fn bench_pdu(c: &mut Criterion) {
    let mut group = c.benchmark_group("pdu");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    for version in [RoomVersionId::V12, RoomVersionId::V10] {
        let (mut room, branch, members) = room(&version);
        let creator = user("alice");
        let public_keys: PublicKeyMap = BTreeMap::from([(
            common::SERVER.to_owned(),
            BTreeMap::from([(
                format!("ed25519:{}", room.key.version()),
                Base64::new(room.key.public_key().to_vec()),
            )]),
        )]);
        for (name, draft) in drafts(&room, &members) {
            let v = version.as_str();
            // What `Rooms::append` pays to turn a draft into a PDU (auth events already chosen).
            let auth_events = room.auth_events(&branch.state, &creator, &draft);
            group.bench_function(format!("build/v{v}/{name}"), |b| {
                let ctx = maas_core::rooms::pdu::PduContext {
                    rules: &room.rules,
                    server_name: &room.server_name,
                    key: &room.key,
                    room_id: Some(&room.room_id),
                    sender: &creator,
                    prev_events: std::slice::from_ref(&branch.head),
                    auth_events: &auth_events,
                    origin_server_ts: ruma::MilliSecondsSinceUnixEpoch::now(),
                };
                b.iter_batched(
                    || draft.clone(),
                    |draft| maas_core::rooms::pdu::build(&ctx, draft).expect("build"),
                    BatchSize::SmallInput,
                );
            });

            let json = unsigned_json(&mut room, &branch, draft.clone());
            group.bench_function(format!("hash_and_sign_event/v{v}/{name}"), |b| {
                b.iter_batched(
                    || json.clone(),
                    |mut json| {
                        ruma::signatures::hash_and_sign_event(
                            common::SERVER,
                            &room.key,
                            &mut json,
                            &room.rules.redaction,
                        )
                        .expect("sign");
                        json
                    },
                    BatchSize::SmallInput,
                );
            });

            let signed = room.build(&branch, &creator, draft).json;
            group.bench_function(format!("verify_event/v{v}/{name}"), |b| {
                b.iter(|| {
                    let verified = ruma::signatures::verify_event(
                        &public_keys,
                        black_box(&signed),
                        &room.rules,
                    )
                    .expect("verify");
                    assert_eq!(verified, ruma::signatures::Verified::All);
                });
            });

            group.bench_function(format!("reference_hash/v{v}/{name}"), |b| {
                b.iter(|| {
                    ruma::signatures::reference_hash(black_box(&signed), &room.rules).expect("hash")
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_pdu);
criterion_main!(benches);
