//! State resolution v2 (ruma-state-res `resolve`, as `rooms::state::resolve` calls it) of a room
//! whose history splits into K concurrent forks from a common base. In fork `i` user `i` (power
//! 50) sets the topic and changes their display name; every fifth fork also has the creator
//! raise user `i` to power 60, so power events conflict too. The K states after the forks are
//! resolved.

mod common;

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use common::{Branch, RoomBuilder, power_levels_content, user};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use maas_core::rooms::pdu::{EventDraft, Pdu};
use maas_core::rooms::state::RoomState;
use ruma::room_version_rules::StateResolutionVersion;
use ruma::state_res::StateMap;
use ruma::state_res::utils::event_id_set::EventIdSet;
use ruma::{EventId, OwnedEventId, RoomVersionId};
use serde_json::json;

struct Forked {
    room: RoomBuilder,
    states: Vec<RoomState>,
    auth_chains: Vec<Vec<OwnedEventId>>,
}

fn forked_room(version: &RoomVersionId, forks: usize) -> Forked {
    let creator = user("alice");
    let users: Vec<_> = (0..forks).map(|i| user(&format!("user{i:03}"))).collect();
    let (mut room, base) = RoomBuilder::with_members(version, &creator, &users, &users);
    let mut states = Vec::with_capacity(forks);
    for (i, member) in users.iter().enumerate() {
        let mut branch: Branch = base.clone();
        if i % 5 == 0 {
            let pl = power_levels_content(&room.rules, &creator, &users, &[(member, 60)]);
            room.append(
                &mut branch,
                &creator,
                EventDraft::state("m.room.power_levels", "", pl),
            );
        }
        room.append(
            &mut branch,
            member,
            EventDraft::state("m.room.topic", "", json!({ "topic": format!("Fork {i}") })),
        );
        room.append(
            &mut branch,
            member,
            EventDraft::state(
                "m.room.member",
                member.as_str(),
                json!({ "membership": "join", "displayname": format!("User {i} (fork)") }),
            ),
        );
        states.push(branch.state);
    }
    let auth_chains = states.iter().map(|s| room.auth_chain(s)).collect();
    Forked {
        room,
        states,
        auth_chains,
    }
}

/// The conflicted state subgraph of room version 12: the events on an auth-event path from
/// one conflicted event to another (the conflicted events included).
fn conflicted_subgraph(
    events: &HashMap<OwnedEventId, Arc<Pdu>>,
    conflicted: &StateMap<Vec<OwnedEventId>>,
) -> Option<EventIdSet<OwnedEventId>> {
    let targets: HashSet<&EventId> = conflicted.values().flatten().map(|id| &**id).collect();
    // Whether an event reaches a conflicted event by auth events, for every visited event.
    let mut reaches: HashMap<&EventId, bool> = HashMap::new();
    fn visit<'a>(
        id: &'a EventId,
        events: &'a HashMap<OwnedEventId, Arc<Pdu>>,
        targets: &HashSet<&EventId>,
        reaches: &mut HashMap<&'a EventId, bool>,
    ) -> Option<bool> {
        if let Some(known) = reaches.get(id) {
            return Some(*known);
        }
        let pdu = events.get(id)?;
        let mut found = false;
        for auth in &pdu.auth_events {
            found |= targets.contains(&**auth) || visit(auth, events, targets, reaches)?;
        }
        reaches.insert(id, found);
        Some(found)
    }
    let mut subgraph = EventIdSet::new();
    for target in &targets {
        visit(target, events, &targets, &mut reaches)?;
        subgraph.insert((*target).to_owned());
    }
    subgraph.extend(
        reaches
            .into_iter()
            .filter(|(_, found)| *found)
            .map(|(id, _)| id.to_owned()),
    );
    Some(subgraph)
}

fn resolve(forked: &Forked) -> RoomState {
    let room = &forked.room;
    let StateResolutionVersion::V2(v2_rules) = room.rules.state_res else {
        unreachable!("benched versions use state resolution v2");
    };
    let auth_chains = forked
        .auth_chains
        .iter()
        .map(|chain| chain.iter().cloned().collect())
        .collect();
    ruma::state_res::resolve(
        &room.rules.authorization,
        &v2_rules,
        forked.states.iter(),
        auth_chains,
        |id| room.events.get(id).cloned(),
        |conflicted| conflicted_subgraph(&room.events, conflicted),
    )
    .expect("state resolution")
}

fn bench_state_res(c: &mut Criterion) {
    let mut group = c.benchmark_group("state_res");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(20);
    for version in [RoomVersionId::V12, RoomVersionId::V10] {
        for forks in [10usize, 50, 100] {
            let forked = forked_room(&version, forks);
            let resolved = resolve(&forked);
            // Create, power levels, join rules, history visibility, topic, members.
            assert_eq!(resolved.len(), forks + 6);
            group.bench_with_input(
                BenchmarkId::new(format!("resolve/v{}", version.as_str()), forks),
                &forked,
                |b, forked| b.iter(|| resolve(black_box(forked))),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_state_res);
criterion_main!(benches);
