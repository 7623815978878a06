//! One room of a space tree as this tenant knows it (spec: `RoomSummary`, "Spaces"): its
//! summary from its current state, its `m.space.child` children in the spec's order, and whether
//! a user (Client-Server API) or another server (Server-Server API) may see it.

use std::sync::Arc;

use ruma::events::StateEventType;
use ruma::events::room::avatar::RoomAvatarEventContent;
use ruma::events::room::canonical_alias::RoomCanonicalAliasEventContent;
use ruma::events::room::encryption::RoomEncryptionEventContent;
use ruma::events::room::guest_access::{GuestAccess, RoomGuestAccessEventContent};
use ruma::events::room::history_visibility::{
    HistoryVisibility, RoomHistoryVisibilityEventContent,
};
use ruma::events::room::join_rules::RoomJoinRulesEventContent;
use ruma::events::room::name::RoomNameEventContent;
use ruma::events::room::topic::RoomTopicEventContent;
use ruma::events::space::child::HierarchySpaceChildEvent;
use ruma::room::{JoinRuleSummary, RoomSummary, RoomType};
use ruma::serde::Raw;
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, RoomVersionId,
    ServerName, UInt, UserId,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::rooms::heads::RoomHead;
use crate::rooms::pdu::Pdu;
use crate::rooms::state::RoomState;
use crate::{Error, Result, Tenant};

/// A room of a space tree as clients and other servers are told of it.
#[derive(Clone, Debug)]
pub struct SpaceRoom {
    pub summary: RoomSummary,
    /// Its `m.space.child` events, stripped, with their `origin_server_ts`; empty unless the
    /// room is a space.
    pub children_state: Vec<Raw<HierarchySpaceChildEvent>>,
}

/// A child a space names: the room, the servers to reach it through, and the event naming it.
#[derive(Clone, Debug)]
pub(crate) struct Child {
    pub(crate) room_id: OwnedRoomId,
    pub(crate) via: Vec<OwnedServerName>,
    pub(crate) event: Raw<HierarchySpaceChildEvent>,
}

/// A room this tenant is in (one of its users is joined), from its current state.
pub(crate) struct KnownRoom {
    pub(crate) summary: RoomSummary,
    /// Its children in the spec's order; empty unless the room is a space.
    pub(crate) children: Vec<Child>,
    /// Its joined members, sorted, to tell which servers are in it.
    joined: Arc<Vec<OwnedUserId>>,
}

impl KnownRoom {
    pub(crate) fn space_room(&self) -> SpaceRoom {
        SpaceRoom {
            summary: self.summary.clone(),
            children_state: events_of(&self.children),
        }
    }
}

pub(crate) fn events_of(children: &[Child]) -> Vec<Raw<HierarchySpaceChildEvent>> {
    children.iter().map(|c| c.event.clone()).collect()
}

/// The room as this tenant knows it, `None` when none of its users is joined to it or its
/// members are still being fetched: then its state here may be old or partial, and the room's
/// own servers are the ones to ask.
pub(crate) async fn known_room(
    tenant: &Tenant,
    room_id: &RoomId,
    suggested_only: bool,
) -> Result<Option<KnownRoom>> {
    let Some(head) = head_of(tenant, room_id).await? else {
        return Ok(None);
    };
    let partial = tenant.partial_rooms().contains(room_id);
    if partial || !has_member_of(&head.joined, tenant.server_name()) {
        return Ok(None);
    }
    let state = tenant
        .state_cache()
        .group(tenant.store(), head.state_group)
        .await?;
    let reader = StateReader { tenant, state };
    let summary = summarise(&reader, room_id, &head).await?;
    let children = match summary.room_type {
        Some(RoomType::Space) => reader.children(suggested_only).await?,
        _ => Vec::new(),
    };
    Ok(Some(KnownRoom {
        summary,
        children,
        joined: head.joined,
    }))
}

/// The room's head, `None` for a room this tenant has never had.
async fn head_of(tenant: &Tenant, room_id: &RoomId) -> Result<Option<RoomHead>> {
    match tenant.room_heads().snapshot(tenant, room_id).await {
        Ok(head) => Ok(Some(head)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(other) => Err(other),
    }
}

fn has_member_of(joined: &[OwnedUserId], server: &ServerName) -> bool {
    joined.iter().any(|user| user.server_name() == server)
}

/// Reads a room's current state, event by event.
struct StateReader<'t> {
    tenant: &'t Tenant,
    state: Arc<RoomState>,
}

impl StateReader<'_> {
    async fn pdu(&self, kind: StateEventType, state_key: &str) -> Result<Option<Arc<Pdu>>> {
        let Some(id) = self.state.get(&(kind, state_key.to_owned())) else {
            return Ok(None);
        };
        let (store, cache) = (self.tenant.store(), self.tenant.state_cache());
        cache.pdu(store, id).await
    }

    /// The content of the state event `kind` with an empty state key; `None` when there is
    /// none or it doesn't parse (a summary shows what it can).
    async fn content<T: DeserializeOwned>(&self, kind: StateEventType) -> Result<Option<T>> {
        Ok(self.pdu(kind, "").await?.and_then(|p| p.content_as::<T>()))
    }

    /// The space's children: its `m.space.child` events that name one, in the spec's order.
    async fn children(&self, suggested_only: bool) -> Result<Vec<Child>> {
        let mut found = Vec::new();
        for ((kind, state_key), id) in self.state.iter() {
            if *kind != StateEventType::SpaceChild {
                continue;
            }
            let (store, cache) = (self.tenant.store(), self.tenant.state_cache());
            let Some(pdu) = cache.pdu(store, id).await? else {
                continue;
            };
            let raw = stripped_child(
                state_key,
                pdu.content_value(),
                &pdu.sender,
                pdu.origin_server_ts,
            )?;
            found.extend(parse_child(raw, suggested_only));
        }
        Ok(ordered(found))
    }
}

async fn summarise(
    reader: &StateReader<'_>,
    room_id: &RoomId,
    head: &RoomHead,
) -> Result<RoomSummary> {
    let join_rule = reader
        .content::<RoomJoinRulesEventContent>(StateEventType::RoomJoinRules)
        .await?
        // Without join rules the auth rules let no one in uninvited.
        .map_or(JoinRuleSummary::Invite, |c| known_rule(c.join_rule.into()));
    let world_readable = reader
        .content::<RoomHistoryVisibilityEventContent>(StateEventType::RoomHistoryVisibility)
        .await?
        .is_some_and(|c| matches!(c.history_visibility, HistoryVisibility::WorldReadable));
    let guest_can_join = reader
        .content::<RoomGuestAccessEventContent>(StateEventType::RoomGuestAccess)
        .await?
        .is_some_and(|c| matches!(c.guest_access, GuestAccess::CanJoin));
    let members = UInt::try_from(head.joined.len()).unwrap_or(UInt::MAX);
    let mut summary = RoomSummary::new(
        room_id.to_owned(),
        join_rule,
        guest_can_join,
        members,
        world_readable,
    );
    summary.name = reader
        .content::<RoomNameEventContent>(StateEventType::RoomName)
        .await?
        .map(|c| c.name)
        .filter(|name| !name.is_empty());
    summary.topic = reader
        .content::<RoomTopicEventContent>(StateEventType::RoomTopic)
        .await?
        .map(|c| c.topic)
        .filter(|topic| !topic.is_empty());
    summary.canonical_alias = reader
        .content::<RoomCanonicalAliasEventContent>(StateEventType::RoomCanonicalAlias)
        .await?
        .and_then(|c| c.alias);
    summary.avatar_url = reader
        .content::<RoomAvatarEventContent>(StateEventType::RoomAvatar)
        .await?
        .and_then(|c| c.url);
    summary.room_type = room_type(reader).await?;
    summary.encryption = reader
        .content::<RoomEncryptionEventContent>(StateEventType::RoomEncryption)
        .await?
        .map(|c| c.algorithm);
    summary.room_version = RoomVersionId::try_from(head.room_version.as_str()).ok();
    Ok(summary)
}

/// The `type` of the create event, read by hand: the create content of every room version
/// parses here, whatever else it holds.
async fn room_type(reader: &StateReader<'_>) -> Result<Option<RoomType>> {
    let create = reader.pdu(StateEventType::RoomCreate, "").await?;
    Ok(create.and_then(|pdu| {
        pdu.content_value()
            .get("type")
            .and_then(Value::as_str)
            .map(RoomType::from)
    }))
}

/// A join rule as a summary may carry it. ruma can't serialise a rule the spec doesn't define,
/// and the auth rules let no one in uninvited under one, so such a rule shows as `invite`.
pub(crate) fn known_rule(rule: JoinRuleSummary) -> JoinRuleSummary {
    match rule {
        JoinRuleSummary::Invite
        | JoinRuleSummary::Knock
        | JoinRuleSummary::Private
        | JoinRuleSummary::Restricted(_)
        | JoinRuleSummary::KnockRestricted(_)
        | JoinRuleSummary::Public => rule,
        _ => JoinRuleSummary::Invite,
    }
}

/// An `m.space.child` event as the hierarchy shows it (spec: `StrippedChildStateEvent`).
fn stripped_child(
    state_key: &str,
    content: Value,
    sender: &UserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
) -> Result<Raw<HierarchySpaceChildEvent>> {
    let event = json!({
        "type": "m.space.child",
        "state_key": state_key,
        "content": content,
        "sender": sender,
        "origin_server_ts": origin_server_ts,
    });
    let raw = serde_json::value::to_raw_value(&event)
        .map_err(|e| Error::Internal(format!("stripping a space child event: {e}")))?;
    Ok(Raw::from_json(raw))
}

/// The child an `m.space.child` event names, if it names one: its state key a room id and its
/// `via` a non-empty list of server names (without one the spec counts the child as removed);
/// with `suggested_only`, only a suggested one.
fn parse_child(
    raw: Raw<HierarchySpaceChildEvent>,
    suggested_only: bool,
) -> Option<(HierarchySpaceChildEvent, Raw<HierarchySpaceChildEvent>)> {
    let event = raw.deserialize().ok()?;
    let wanted = !event.content.via.is_empty() && (event.content.suggested || !suggested_only);
    wanted.then_some((event, raw))
}

/// Children in the spec's order ("Ordering of children within a space"), which ruma's `Ord`
/// of the event implements: by `order`, then timestamp, then room id.
fn ordered(
    mut found: Vec<(HierarchySpaceChildEvent, Raw<HierarchySpaceChildEvent>)>,
) -> Vec<Child> {
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
        .into_iter()
        .map(|(event, raw)| Child {
            room_id: event.state_key,
            via: event.content.via,
            event: raw,
        })
        .collect()
}

/// The children of a space another server told of, checked and ordered as ours are, each
/// event restated from what parsed so that nothing else it carried reaches our clients.
pub(crate) fn told_children(
    events: &[Raw<HierarchySpaceChildEvent>],
    suggested_only: bool,
) -> Vec<Child> {
    let found = events
        .iter()
        .filter_map(|raw| raw.deserialize().ok())
        .filter_map(|event| {
            let content = serde_json::to_value(&event.content).ok()?;
            let raw = stripped_child(
                event.state_key.as_str(),
                content,
                &event.sender,
                event.origin_server_ts,
            )
            .ok()?;
            parse_child(raw, suggested_only)
        })
        .collect();
    ordered(found)
}

/// Whether anyone may look into the room or ask to join it without an invite.
fn open_to_all(summary: &RoomSummary) -> bool {
    summary.world_readable
        || matches!(
            summary.join_rule,
            JoinRuleSummary::Public | JoinRuleSummary::Knock | JoinRuleSummary::KnockRestricted(_)
        )
}

/// The rooms whose members may join a restricted room.
fn allowed_rooms(summary: &RoomSummary) -> &[OwnedRoomId] {
    match &summary.join_rule {
        JoinRuleSummary::Restricted(r) | JoinRuleSummary::KnockRestricted(r) => &r.allowed_room_ids,
        _ => &[],
    }
}

/// Whether `user` may see the room in a hierarchy (spec: `GET /hierarchy`, "rooms"): they are
/// joined or invited, the room is world-readable, public or knockable, or it is restricted to
/// members of a room they are joined to. A user banned from it doesn't see it.
pub(crate) async fn user_may_see(
    tenant: &Tenant,
    user: &UserId,
    summary: &RoomSummary,
) -> Result<bool> {
    let store = tenant.store();
    let membership = store
        .membership(summary.room_id.as_str(), user.as_str())
        .await?
        .map(|m| m.membership);
    match membership.as_deref() {
        Some("ban") => return Ok(false),
        Some("join" | "invite") => return Ok(true),
        _ => {}
    }
    if open_to_all(summary) {
        return Ok(true);
    }
    for allowed in allowed_rooms(summary) {
        let membership = store.membership(allowed.as_str(), user.as_str()).await?;
        if membership.is_some_and(|m| m.membership == "join") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `origin` could peek into or join the room (spec: Server-Server API, `GET
/// /hierarchy`): it is world-readable, public or knockable, one of the server's users is
/// joined or invited to it, or it is restricted to a room one of them is joined to.
pub(crate) async fn server_may_see(
    tenant: &Tenant,
    origin: &ServerName,
    room: &KnownRoom,
) -> Result<bool> {
    if open_to_all(&room.summary) || has_member_of(&room.joined, origin) {
        return Ok(true);
    }
    let invited = tenant
        .store()
        .room_members(room.summary.room_id.as_str(), Some("invite"))
        .await?;
    if invited
        .iter()
        .any(|m| UserId::parse(&m.user_id).is_ok_and(|u| u.server_name() == origin))
    {
        return Ok(true);
    }
    for allowed in allowed_rooms(&room.summary) {
        if let Some(head) = head_of(tenant, allowed).await?
            && has_member_of(&head.joined, origin)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(state_key: &str, content: Value, ts: u64) -> Raw<HierarchySpaceChildEvent> {
        let ts = MilliSecondsSinceUnixEpoch(UInt::new_saturating(ts));
        let sender = UserId::parse("@alice:example.org").expect("user id");
        stripped_child(state_key, content, &sender, ts).expect("raw")
    }

    #[test]
    fn children_need_a_via_and_come_in_the_specs_order() {
        let via = json!(["example.org"]);
        let events = [
            child("!e:example.org", json!({"via": via}), 1_640_641_000_000),
            child("!d:example.org", json!({"via": via}), 1_640_741_000_000),
            child(
                "!c:example.org",
                json!({"via": via, "order": "first"}),
                1_640_841_000_000,
            ),
            child(
                "!a:example.org",
                json!({"via": via, "order": "aaaa"}),
                1_640_141_000_000,
            ),
            child(
                "!b:example.org",
                json!({"via": via, "order": " "}),
                1_640_341_000_000,
            ),
            child("!gone:example.org", json!({"via": []}), 1),
            child("!removed:example.org", json!({}), 1),
            child("not a room id", json!({"via": via}), 1),
        ];
        let ids: Vec<String> = told_children(&events, false)
            .into_iter()
            .map(|c| c.room_id.to_string())
            .collect();
        assert_eq!(
            ids,
            [
                "!b:example.org",
                "!a:example.org",
                "!c:example.org",
                "!e:example.org",
                "!d:example.org"
            ]
        );
    }

    #[test]
    fn suggested_only_keeps_the_suggested_children() {
        let events = [
            child("!a:example.org", json!({"via": ["example.org"]}), 1),
            child(
                "!b:example.org",
                json!({"via": ["example.org"], "suggested": true}),
                2,
            ),
        ];
        let ids: Vec<OwnedRoomId> = told_children(&events, true)
            .into_iter()
            .map(|c| c.room_id)
            .collect();
        assert_eq!(ids, ["!b:example.org"]);
    }

    #[test]
    fn unknown_join_rules_show_as_invite() {
        let rule: JoinRuleSummary =
            serde_json::from_value(json!({"join_rule": "secret_handshake"})).expect("rule");
        assert_eq!(known_rule(rule), JoinRuleSummary::Invite);
        assert_eq!(known_rule(JoinRuleSummary::Public), JoinRuleSummary::Public);
    }
}
