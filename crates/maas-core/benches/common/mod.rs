//! Shared setup of the benches: rooms built in memory out of real signed PDUs, the way
//! `Rooms::append` builds local events (auth events from the state, `pdu::build`, auth check),
//! without a store. Each bench uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use maas_core::rooms::auth;
use maas_core::rooms::pdu::{self, EventDraft, Pdu, PduContext};
use maas_core::rooms::state::RoomState;
use ruma::events::StateEventType;
use ruma::room_version_rules::RoomVersionRules;
use ruma::signatures::Ed25519KeyPair;
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedServerName, OwnedUserId,
    RoomVersionId, UInt, UserId,
};
use serde_json::{Value, json};

pub const SERVER: &str = "bench.test";

/// A fresh ed25519 key pair with version `bench`.
pub fn key_pair() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate();
    Ed25519KeyPair::from_der(&pkcs8, "bench".to_owned()).expect("parse key")
}

pub fn user(localpart: &str) -> OwnedUserId {
    UserId::parse(format!("@{localpart}:{SERVER}")).expect("user id")
}

pub fn rules(version: &RoomVersionId) -> RoomVersionRules {
    version.rules().expect("known room version")
}

/// A typical short text message.
pub fn message_content(i: usize) -> Value {
    json!({
        "msgtype": "m.text",
        "body": format!("Hello there, this is message number {i} of the benchmark."),
    })
}

/// Power levels as maas creates them, with every user of `users` at 50. Version 12 creators
/// have unlimited power and are not listed; older versions list the creator at 100.
pub fn power_levels_content(
    rules: &RoomVersionRules,
    creator: &UserId,
    users: &[OwnedUserId],
    overrides: &[(&UserId, i64)],
) -> Value {
    let mut map = serde_json::Map::new();
    if !rules.authorization.explicitly_privilege_room_creators {
        map.insert(creator.to_string(), json!(100));
    }
    for user in users {
        map.insert(user.to_string(), json!(50));
    }
    for (user, level) in overrides {
        map.insert(user.to_string(), json!(level));
    }
    json!({
        "users": map,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "notifications": { "room": 50 },
    })
}

pub fn join_draft(user: &UserId) -> EventDraft {
    EventDraft::state(
        "m.room.member",
        user.as_str(),
        json!({ "membership": "join", "displayname": user.localpart() }),
    )
}

/// One line of history: its forward extremity and the state after it.
#[derive(Clone)]
pub struct Branch {
    pub head: Arc<Pdu>,
    pub state: RoomState,
}

/// A room's events, all kept in memory.
pub struct RoomBuilder {
    pub rules: RoomVersionRules,
    pub server_name: OwnedServerName,
    pub key: Ed25519KeyPair,
    pub room_id: OwnedRoomId,
    pub events: HashMap<OwnedEventId, Arc<Pdu>>,
    ts: u64,
}

impl RoomBuilder {
    /// A room of `version` created by `creator`: create event only.
    pub fn create(version: &RoomVersionId, creator: &UserId) -> (Self, Branch) {
        let rules = rules(version);
        let server_name = OwnedServerName::try_from(SERVER).expect("server name");
        let key = key_pair();
        let mut content = json!({ "room_version": version.as_str() });
        if !rules.authorization.use_room_create_sender {
            content["creator"] = json!(creator);
        }
        let ts: u64 = 1_700_000_000_000;
        let create = {
            let room_id;
            let ctx = PduContext {
                rules: &rules,
                server_name: &server_name,
                key: &key,
                room_id: if rules.room_id_format
                    == ruma::room_version_rules::RoomIdFormatVersion::V1
                {
                    room_id = ruma::RoomId::parse(format!("!benchroom:{SERVER}")).expect("id");
                    Some(&*room_id)
                } else {
                    None
                },
                sender: creator,
                prev_events: &[],
                auth_events: &[],
                origin_server_ts: MilliSecondsSinceUnixEpoch(UInt::try_from(ts).expect("ts")),
            };
            Arc::new(
                pdu::build(&ctx, EventDraft::state("m.room.create", "", content))
                    .expect("create event")
                    .0,
            )
        };
        let mut state = RoomState::new();
        state.insert(
            (StateEventType::RoomCreate, String::new()),
            create.event_id.clone(),
        );
        let builder = Self {
            room_id: create.room_id.clone(),
            events: HashMap::from([(create.event_id.clone(), create.clone())]),
            rules,
            server_name,
            key,
            ts,
        };
        (
            builder,
            Branch {
                head: create,
                state,
            },
        )
    }

    /// A room with the usual initial state (creator join, power levels with `members` at 50,
    /// public join rules, shared history) and every one of `members` joined.
    pub fn with_members(
        version: &RoomVersionId,
        creator: &UserId,
        members: &[OwnedUserId],
        powered: &[OwnedUserId],
    ) -> (Self, Branch) {
        let (mut room, mut branch) = Self::create(version, creator);
        room.append(&mut branch, creator, join_draft(creator));
        let pl = power_levels_content(&room.rules, creator, powered, &[]);
        room.append(
            &mut branch,
            creator,
            EventDraft::state("m.room.power_levels", "", pl),
        );
        room.append(
            &mut branch,
            creator,
            EventDraft::state("m.room.join_rules", "", json!({ "join_rule": "public" })),
        );
        room.append(
            &mut branch,
            creator,
            EventDraft::state(
                "m.room.history_visibility",
                "",
                json!({ "history_visibility": "shared" }),
            ),
        );
        for member in members {
            room.append(&mut branch, member, join_draft(member));
        }
        (room, branch)
    }

    /// The auth events `draft` by `sender` cites in `state`.
    pub fn auth_events(
        &self,
        state: &RoomState,
        sender: &UserId,
        draft: &EventDraft,
    ) -> Vec<Arc<Pdu>> {
        let content = serde_json::value::to_raw_value(&draft.content).expect("content");
        let types = auth::auth_types(
            &self.rules,
            &draft.kind,
            sender,
            draft.state_key.as_deref(),
            &content,
        )
        .expect("auth types");
        auth::select_auth_events(&self.rules, state, &types)
            .iter()
            .map(|id| self.events[id].clone())
            .collect()
    }

    /// Builds (signs) `draft` on top of `branch` without adding it.
    pub fn build(&mut self, branch: &Branch, sender: &UserId, draft: EventDraft) -> Pdu {
        let auth_events = self.auth_events(&branch.state, sender, &draft);
        self.ts += 1;
        let ctx = PduContext {
            rules: &self.rules,
            server_name: &self.server_name,
            key: &self.key,
            room_id: Some(&self.room_id),
            sender,
            prev_events: std::slice::from_ref(&branch.head),
            auth_events: &auth_events,
            origin_server_ts: MilliSecondsSinceUnixEpoch(UInt::try_from(self.ts).expect("ts")),
        };
        pdu::build(&ctx, draft).expect("build pdu").0
    }

    /// Builds, checks and adds `draft` on top of `branch`.
    pub fn append(&mut self, branch: &mut Branch, sender: &UserId, draft: EventDraft) -> Arc<Pdu> {
        let pdu = Arc::new(self.build(branch, sender, draft));
        auth::check(&self.rules, &pdu, &branch.state, &self.events).expect("event passes auth");
        if let Some(key) = &pdu.state_key {
            branch.state.insert(
                (pdu.kind.to_string().into(), key.clone()),
                pdu.event_id.clone(),
            );
        }
        self.events.insert(pdu.event_id.clone(), pdu.clone());
        branch.head = pdu.clone();
        pdu
    }

    /// Every event the auth events of `state`'s events lead to (the auth chain).
    pub fn auth_chain(&self, state: &RoomState) -> Vec<OwnedEventId> {
        let mut chain = std::collections::HashSet::new();
        let mut todo: Vec<&OwnedEventId> = state.values().collect();
        while let Some(id) = todo.pop() {
            for auth in &self.events[id].auth_events {
                if chain.insert(auth.clone()) {
                    todo.push(auth);
                }
            }
        }
        chain.into_iter().collect()
    }
}
