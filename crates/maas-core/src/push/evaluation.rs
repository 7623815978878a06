//! Push rule evaluation (spec: "Push Rules" → "Conditions", "Predefined Rules"): which local
//! members of a room a new event notifies, and whether it highlights for them. All conditions
//! but the display-name one depend only on the event and its room, so an event evaluates each
//! glob match once and every recipient's ruleset reuses the outcome.

use std::collections::HashMap;
use std::sync::Arc;

use ruma::events::room::power_levels::{
    RoomPowerLevels, RoomPowerLevelsEventContent, RoomPowerLevelsSource,
};
use ruma::events::{AnySyncTimelineEvent, StateEventType};
use ruma::push::{
    Action, AnyPushRuleRef, ConditionalPushRule, FlattenedJson, PredefinedOverrideRuleId,
    PushCondition, PushConditionPowerLevelsCtx, PushConditionRoomCtx, Ruleset,
};
use ruma::room_version_rules::RoomVersionRules;
use ruma::serde::Raw;
use ruma::{OwnedUserId, RoomId, UInt, UserId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{PUSH_RULES_TYPE, ruleset_from};
use crate::rooms::state::RoomState;
use crate::store::{EventRecord, PushActionRecord, RoomPushActionRecord};
use crate::{Error, Result, Tenant};

/// What one event does for one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Silent,
    Notify,
    Highlight,
}

/// What an event's evaluation leaves to store. When most recipients get a plain notification
/// (an ordinary message), one room-wide row says so and only the others get rows of their own;
/// otherwise each notified recipient gets one.
#[derive(Debug, Default)]
pub(crate) struct Notifications {
    pub(crate) room: Option<RoomPushActionRecord>,
    pub(crate) users: Vec<PushActionRecord>,
}

/// Evaluates a new event of `room_id` against the push rules of every local user among
/// `members` (the room's joined members, remote ones included: their number is the
/// `room_member_count`) except its sender, with what the previous events taught about their
/// state; the outcome in the form the store keeps.
///
/// `members` must be the room's joined members right after the event, as stored memberships
/// will say once it is committed: a room-wide row covers exactly the local ones among them.
pub(crate) async fn evaluate(
    tenant: &Tenant,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    event: &EventRecord,
    members: &[OwnedUserId],
    inputs: &mut StateInputs,
) -> Result<Notifications> {
    let outcomes = outcomes(tenant, room_id, rules, event, members, inputs).await?;
    Ok(stored_form(room_id, event, &outcomes))
}

/// What `outcomes` leave to store: the fewest rows that say them.
fn stored_form(
    room_id: &RoomId,
    event: &EventRecord,
    outcomes: &[(OwnedUserId, Outcome)],
) -> Notifications {
    let count = |wanted| outcomes.iter().filter(|(_, o)| *o == wanted).count();
    let (plain, silent) = (count(Outcome::Notify), count(Outcome::Silent));
    // Rows written: 1 + silent + highlighted with a room row, plain + highlighted without.
    if plain <= silent + 1 {
        let users = rows(room_id, event, outcomes, Outcome::Silent);
        return Notifications { room: None, users };
    }
    let users = rows(room_id, event, outcomes, Outcome::Notify);
    let room = RoomPushActionRecord {
        room_id: room_id.to_string(),
        event_id: event.event_id.clone(),
        stream: event.stream,
        sender: event.sender.clone(),
        thread_id: thread_of(event),
    };
    Notifications {
        room: Some(room),
        users,
    }
}

/// A row of their own for each recipient whose outcome is not `unstored`: what the room's row
/// (or, without one, the absence of a row) does not already say.
fn rows(
    room_id: &RoomId,
    event: &EventRecord,
    outcomes: &[(OwnedUserId, Outcome)],
    unstored: Outcome,
) -> Vec<PushActionRecord> {
    outcomes
        .iter()
        .filter(|(_, outcome)| *outcome != unstored)
        .map(|(user_id, outcome)| PushActionRecord {
            room_id: room_id.to_string(),
            user_id: user_id.to_string(),
            event_id: event.event_id.clone(),
            stream: event.stream,
            thread_id: thread_of(event),
            notify: *outcome != Outcome::Silent,
            highlight: *outcome == Outcome::Highlight,
            replaces_room: unstored == Outcome::Notify,
        })
        .collect()
}

/// The thread root of an event in a thread: whose threaded receipts read its notifications.
fn thread_of(event: &EventRecord) -> Option<String> {
    event
        .relation
        .as_ref()
        .filter(|r| r.rel_type == "m.thread")
        .map(|r| r.parent_event_id.clone())
}

/// What evaluation takes from the room's state before an event: its power levels, and the
/// members' display names for the legacy display-name rule. A state group never changes, so
/// the committer keeps these from one event to the next (consecutive events of a room mostly
/// share one) and reads them again only when the group differs.
#[derive(Default)]
pub(crate) struct StateInputs {
    state_group: Option<i64>,
    power_levels: Option<PushConditionPowerLevelsCtx>,
    display_names: HashMap<OwnedUserId, String>,
}

impl StateInputs {
    /// Forgets what belongs to another state group than `group`.
    fn switch_to(&mut self, group: i64) {
        if self.state_group != Some(group) {
            self.state_group = Some(group);
            self.power_levels = None;
            self.display_names.clear();
        }
    }
}

/// The members push rules are evaluated for: local ones, but the sender. Remote members
/// count for the room's size only; their own servers notify them.
fn local_recipients<'m>(
    members: &'m [OwnedUserId],
    server_name: &ruma::ServerName,
    sender: &str,
) -> Vec<&'m OwnedUserId> {
    members
        .iter()
        .filter(|m| m.server_name() == server_name && m.as_str() != sender)
        .collect()
}

/// The outcome of the event for every local member but its sender.
///
/// Cost: the recipients' rulesets (cached); the room's state before the event (state cache),
/// and from it the power levels and, for events with a `body` but no `m.mentions`, each
/// recipient's display name, once per state group; one flattening of the event.
async fn outcomes(
    tenant: &Tenant,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    event: &EventRecord,
    members: &[OwnedUserId],
    inputs: &mut StateInputs,
) -> Result<Vec<(OwnedUserId, Outcome)>> {
    let recipients = local_recipients(members, tenant.server_name(), &event.sender);
    let Some(first) = recipients.first() else {
        return Ok(Vec::new());
    };
    let flattened = flatten(event)?;
    let mentions = flattened.contains_mentions();
    let needs_display_names = !mentions && flattened.get_str("content.body").is_some();

    inputs.switch_to(event.state_before);
    let state = tenant
        .state_cache()
        .group(tenant.store(), event.state_before)
        .await?;
    if inputs.power_levels.is_none() {
        inputs.power_levels = Some(power_levels(tenant, rules, &state).await?);
    }
    let rulesets = rulesets_of(tenant, &recipients).await?;

    let member_count = UInt::new_saturating(u64::try_from(members.len()).unwrap_or(u64::MAX));
    let mut ctx = PushConditionRoomCtx::new(
        room_id.to_owned(),
        member_count,
        (*first).clone(),
        String::new(),
    );
    ctx.power_levels = inputs.power_levels.clone();
    let mut shared = SharedOutcomes::default();
    let mut outcomes = Vec::with_capacity(recipients.len());
    for (user_id, ruleset) in recipients.into_iter().zip(&rulesets) {
        ctx.user_id = user_id.clone();
        ctx.user_display_name = if needs_display_names {
            display_name(tenant, &state, user_id, inputs).await?
        } else {
            String::new()
        };
        let actions = first_match(ruleset, &flattened, &ctx, mentions, &mut shared).await;
        let outcome = match actions {
            Some(actions) if actions.iter().any(Action::should_notify) => {
                if actions.iter().any(Action::is_highlight) {
                    Outcome::Highlight
                } else {
                    Outcome::Notify
                }
            }
            _ => Outcome::Silent,
        };
        outcomes.push((user_id.clone(), outcome));
    }
    Ok(outcomes)
}

/// Outcomes of glob matches (`event_match` conditions) for one event. A match depends on the
/// event and the room alone, and most rules are the same in every recipient's ruleset, so a
/// room of n members evaluates each once rather than n times (each costs two lowercased copies
/// and a compiled pattern).
#[derive(Default)]
struct SharedOutcomes<'r> {
    event_match: HashMap<(&'r str, &'r str), bool>,
}

/// The actions of the first rule of `ruleset` that applies to the event, in the spec's rule
/// order. Recipients never get their own events: callers leave the sender out.
async fn first_match<'r>(
    ruleset: &'r Ruleset,
    event: &FlattenedJson,
    ctx: &PushConditionRoomCtx,
    mentions: bool,
    shared: &mut SharedOutcomes<'r>,
) -> Option<&'r [Action]> {
    for rule in ruleset {
        let applies = match rule {
            AnyPushRuleRef::Override(rule) | AnyPushRuleRef::Underride(rule) => {
                conditions_hold(rule, event, ctx, mentions, shared).await
            }
            other => other.applies(event, ctx).await,
        };
        if applies {
            return Some(rule.actions());
        }
    }
    None
}

/// `ConditionalPushRule::applies`, with glob matches shared across recipients: the rule is
/// enabled, is not a legacy mention rule on an event with `m.mentions`, and every condition
/// holds.
async fn conditions_hold<'r>(
    rule: &'r ConditionalPushRule,
    event: &FlattenedJson,
    ctx: &PushConditionRoomCtx,
    mentions: bool,
    shared: &mut SharedOutcomes<'r>,
) -> bool {
    if !rule.enabled || (mentions && is_legacy_mention_rule(&rule.rule_id)) {
        return false;
    }
    for condition in &rule.conditions {
        let holds = match condition {
            PushCondition::EventMatch(data) => {
                let key = (data.key.as_str(), data.pattern.as_str());
                match shared.event_match.get(&key) {
                    Some(known) => *known,
                    None => {
                        let holds = condition.applies(event, ctx).await;
                        shared.event_match.insert(key, holds);
                        holds
                    }
                }
            }
            other => other.applies(event, ctx).await,
        };
        if !holds {
            return false;
        }
    }
    true
}

/// The override rules the spec turns off for events carrying `m.mentions`.
fn is_legacy_mention_rule(rule_id: &str) -> bool {
    #[allow(deprecated)]
    let legacy = [
        PredefinedOverrideRuleId::RoomNotif,
        PredefinedOverrideRuleId::ContainsDisplayName,
    ];
    legacy.iter().any(|id| id.as_ref() == rule_id)
}

/// The rulesets of `users` (local), in order: cached, else read in one query and cached.
async fn rulesets_of(tenant: &Tenant, users: &[&OwnedUserId]) -> Result<Vec<Arc<Ruleset>>> {
    let cache = tenant.rulesets();
    let generation = cache.generation();
    let mut found: Vec<Option<Arc<Ruleset>>> =
        users.iter().map(|u| cache.get(u.localpart())).collect();
    let missing: Vec<String> = users
        .iter()
        .zip(&found)
        .filter(|(_, r)| r.is_none())
        .map(|(u, _)| u.localpart().to_owned())
        .collect();
    if !missing.is_empty() {
        let stored: HashMap<String, String> = tenant
            .store()
            .global_account_data_of(&missing, PUSH_RULES_TYPE)
            .await?
            .into_iter()
            .map(|r| (r.localpart, r.content))
            .collect();
        for (user_id, slot) in users.iter().zip(found.iter_mut()) {
            if slot.is_none() {
                let content = stored.get(user_id.localpart()).map(String::as_str);
                let ruleset = Arc::new(ruleset_from(content, user_id));
                cache.put(generation, user_id.localpart().to_owned(), ruleset.clone());
                *slot = Some(ruleset);
            }
        }
    }
    Ok(found.into_iter().flatten().collect())
}

/// The fields of the client event format that push rules can look at (no `unsigned`),
/// flattened once for all recipients.
fn flatten(event: &EventRecord) -> Result<FlattenedJson> {
    #[derive(Deserialize)]
    struct Stored<'a> {
        #[serde(borrow)]
        content: Option<&'a RawValue>,
        #[serde(borrow)]
        redacts: Option<&'a RawValue>,
    }
    #[derive(Serialize)]
    struct ClientFormat<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        content: &'a RawValue,
        event_id: &'a str,
        sender: &'a str,
        origin_server_ts: i64,
        room_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        state_key: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        redacts: Option<&'a RawValue>,
    }
    let empty = RawValue::from_string("{}".to_owned())
        .map_err(|e| Error::Internal(format!("empty object: {e}")))?;
    let stored = serde_json::from_str::<Stored<'_>>(&event.pdu).ok();
    let client = ClientFormat {
        kind: &event.event_type,
        content: stored.as_ref().and_then(|s| s.content).unwrap_or(&empty),
        event_id: &event.event_id,
        sender: &event.sender,
        origin_server_ts: event.origin_server_ts,
        room_id: &event.room_id,
        state_key: event.state_key.as_deref(),
        redacts: stored.as_ref().and_then(|s| s.redacts),
    };
    serde_json::value::to_raw_value(&client)
        .map(|raw| FlattenedJson::from_raw(&Raw::<AnySyncTimelineEvent>::from_json(raw)))
        .map_err(|e| Error::Internal(format!("event {}: {e}", event.event_id)))
}

/// The power levels in `state`, for the `sender_notification_permission` condition.
async fn power_levels(
    tenant: &Tenant,
    rules: &RoomVersionRules,
    state: &RoomState,
) -> Result<PushConditionPowerLevelsCtx> {
    let store = tenant.store();
    let cache = tenant.state_cache();
    let mut creators = Vec::new();
    if let Some(id) = state.get(&(StateEventType::RoomCreate, String::new()))
        && let Some(create) = cache.pdu(store, id).await?
    {
        creators.push(create.sender.clone());
        if rules.authorization.additional_room_creators
            && let Some(serde_json::Value::Array(more)) =
                create.content_value().get("additional_creators")
        {
            creators.extend(
                more.iter()
                    .filter_map(serde_json::Value::as_str)
                    .filter_map(|u| OwnedUserId::try_from(u).ok()),
            );
        }
    }
    let content = match state.get(&(StateEventType::RoomPowerLevels, String::new())) {
        Some(id) => cache
            .pdu(store, id)
            .await?
            .and_then(|pdu| pdu.content_as::<RoomPowerLevelsEventContent>()),
        None => None,
    };
    let source = content.map_or(RoomPowerLevelsSource::None, RoomPowerLevelsSource::Original);
    let levels = RoomPowerLevels::new(source, &rules.authorization, creators);
    Ok(levels.into())
}

/// The user's display name in the room (from their member event in `state`); their localpart
/// when they have none, which the `.m.rule.contains_user_name` rule matches anyway, rather than
/// an empty name that would match an empty body.
async fn display_name(
    tenant: &Tenant,
    state: &RoomState,
    user_id: &UserId,
    inputs: &mut StateInputs,
) -> Result<String> {
    if let Some(known) = inputs.display_names.get(user_id) {
        return Ok(known.clone());
    }
    #[derive(Deserialize)]
    struct Member {
        displayname: Option<String>,
    }
    let key = (StateEventType::RoomMember, user_id.to_string());
    let name = match state.get(&key) {
        Some(id) => tenant
            .state_cache()
            .pdu(tenant.store(), id)
            .await?
            .and_then(|pdu| serde_json::from_str::<Member>(pdu.content.get()).ok())
            .and_then(|member| member.displayname),
        None => None,
    };
    let name = name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| user_id.localpart().to_owned());
    inputs
        .display_names
        .insert(user_id.to_owned(), name.clone());
    Ok(name)
}

#[cfg(test)]
mod tests {
    use ruma::{owned_room_id, owned_user_id, server_name};

    use super::*;
    use crate::store::RelationRecord;

    fn event(relation: Option<RelationRecord>) -> EventRecord {
        EventRecord {
            event_id: "$e".into(),
            room_id: "!r:localhost".into(),
            stream: 7,
            depth: 3,
            event_type: "m.room.message".into(),
            state_key: None,
            sender: "@alice:localhost".into(),
            origin_server_ts: 1,
            pdu: "{}".into(),
            state_before: 1,
            state_after: 1,
            redacted_by: None,
            txn: None,
            relation,
        }
    }

    /// `(room row?, [(user, notify, highlight)])` of the stored form.
    fn form(outcomes: &[(&str, Outcome)]) -> (bool, Vec<(String, bool, bool)>) {
        let outcomes: Vec<_> = outcomes
            .iter()
            .map(|(user, o)| (OwnedUserId::try_from(*user).expect("user id"), *o))
            .collect();
        let room_id = owned_room_id!("!r:localhost");
        let found = stored_form(&room_id, &event(None), &outcomes);
        if let Some(room) = &found.room {
            assert_eq!(
                (room.event_id.as_str(), room.stream, room.sender.as_str()),
                ("$e", 7, "@alice:localhost")
            );
        }
        for row in &found.users {
            assert_eq!(row.replaces_room, found.room.is_some());
        }
        let users = found
            .users
            .into_iter()
            .map(|r| (r.user_id, r.notify, r.highlight))
            .collect();
        (found.room.is_some(), users)
    }

    #[test]
    fn events_most_members_get_alike_are_one_row_for_the_room() {
        use Outcome::{Highlight, Notify, Silent};
        let row = |user: &str, notify, highlight| (user.to_owned(), notify, highlight);
        // Both get a plain notification: the room's row says it for them.
        assert_eq!(form(&[("@b:l", Notify), ("@c:l", Notify)]), (true, vec![]));
        // One plain notification is a row either way: Carol's own, with Bob's highlight.
        assert_eq!(
            form(&[("@b:l", Highlight), ("@c:l", Notify)]),
            (
                false,
                vec![row("@b:l", true, true), row("@c:l", true, false)]
            )
        );
        assert_eq!(form(&[("@b:l", Silent), ("@c:l", Silent)]), (false, vec![]));
        // More members make a mention a room row, with the highlight as its own row…
        assert_eq!(
            form(&[
                ("@b:l", Highlight),
                ("@c:l", Notify),
                ("@d:l", Notify),
                ("@e:l", Notify)
            ]),
            (true, vec![row("@b:l", true, true)])
        );
        // …and a member who muted the room gets a row saying the room's is not for them.
        assert_eq!(
            form(&[
                ("@b:l", Silent),
                ("@c:l", Notify),
                ("@d:l", Notify),
                ("@e:l", Notify)
            ]),
            (true, vec![row("@b:l", false, false)])
        );
    }

    #[test]
    fn a_threaded_event_notifies_in_its_thread() {
        let threaded = event(Some(RelationRecord {
            rel_type: "m.thread".into(),
            parent_event_id: "$root".into(),
        }));
        assert_eq!(thread_of(&threaded).as_deref(), Some("$root"));
        let edit = event(Some(RelationRecord {
            rel_type: "m.replace".into(),
            parent_event_id: "$root".into(),
        }));
        assert_eq!(thread_of(&edit), None);
    }

    #[test]
    fn only_local_members_but_the_sender_are_evaluated() {
        let members = [
            owned_user_id!("@alice:localhost"),
            owned_user_id!("@bob:localhost"),
            owned_user_id!("@dave:remote.example"),
        ];
        let recipients = local_recipients(&members, server_name!("localhost"), "@alice:localhost");
        assert_eq!(recipients, vec![&members[1]]);
    }
}
