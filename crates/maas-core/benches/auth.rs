//! Auth checks: `rooms::auth::check` (ruma-state-res's state-independent and state-dependent
//! rules) of a message and of a join, in a room whose state holds 10 or 1,000 members.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{RoomBuilder, join_draft, message_content, user};
use criterion::{Criterion, criterion_group, criterion_main};
use maas_core::rooms::auth;
use maas_core::rooms::pdu::EventDraft;
use ruma::RoomVersionId;

fn bench_auth(c: &mut Criterion) {
    let mut group = c.benchmark_group("auth");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    for version in [RoomVersionId::V12, RoomVersionId::V10] {
        for members in [10usize, 1000] {
            let creator = user("alice");
            let users: Vec<_> = (0..members).map(|i| user(&format!("user{i:04}"))).collect();
            // A handful of moderators, as in a real large room.
            let (mut room, branch) =
                RoomBuilder::with_members(&version, &creator, &users, &users[..5]);
            assert_eq!(branch.state.len(), members + 5);
            let v = version.as_str();

            let sender = &users[members / 2];
            let message = room.build(
                &branch,
                sender,
                EventDraft::message("m.room.message", message_content(1)),
            );
            group.bench_function(format!("check/v{v}/message/{members}_members"), |b| {
                b.iter(|| {
                    auth::check(
                        &room.rules,
                        black_box(&message),
                        &branch.state,
                        &room.events,
                    )
                    .expect("allowed");
                });
            });

            let newcomer = user("newcomer");
            let join = room.build(&branch, &newcomer, join_draft(&newcomer));
            group.bench_function(format!("check/v{v}/join/{members}_members"), |b| {
                b.iter(|| {
                    auth::check(&room.rules, black_box(&join), &branch.state, &room.events)
                        .expect("allowed");
                });
            });

            // What `Rooms::append` does before the check: pick the auth events from the state.
            let draft = EventDraft::message("m.room.message", message_content(2));
            group.bench_function(
                format!("select_auth_events/v{v}/message/{members}_members"),
                |b| b.iter(|| room.auth_events(black_box(&branch.state), sender, &draft)),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_auth);
criterion_main!(benches);
