//! Push rules (spec v1.15: Client-Server API, "Push Notifications" → "Push Rules"): each
//! user's ruleset, the `pushrules` endpoints that change it, the evaluation of a new event for
//! every local member of its room, and the unread counts sync reports.
//!
//! A user's ruleset is their global account data `m.push_rules` (`{"global": <ruleset>}`), so
//! clients also get it through sync; until they change something it is absent and the
//! server-default rules apply. Reads merge the stored rules with the current server defaults,
//! so new predefined rules reach every user without a migration.
//!
//! Evaluation records which recipients an event notifies (one row for the whole room when most
//! get a plain notification, rows for the others); sync counts those after the recipient's
//! read receipt.

mod evaluation;
mod step;

use std::sync::Arc;

use ruma::power_levels::NotificationPowerLevelsKey;
use ruma::push::{
    Action, AnyPushRule, ConditionalPushRule, ConditionalPushRuleInit, EventMatchConditionData,
    HighlightTweakValue, InsertPushRuleError, NewPushRule, PatternedPushRule,
    PatternedPushRuleInit, PredefinedContentRuleId, PredefinedOverrideRuleId, PushCondition,
    RemovePushRuleError, RuleKind, Ruleset, SenderNotificationPermissionConditionData,
    SoundTweakValue, Tweak,
};
use ruma::{RoomId, UserId};
use serde_json::{Value, json};

pub(crate) use self::step::PushStep;
use crate::accounts::{AuthedUser, usernames};
use crate::store::AccountDataRecord;
use crate::stream::{Audience, StreamWriter};
use crate::{Error, Result, Tenant};

/// The account data type holding a user's ruleset.
pub const PUSH_RULES_TYPE: &str = "m.push_rules";

/// Parsed rulesets cached per tenant, by localpart: evaluated for every recipient of every
/// event.
pub(crate) type RulesetCache = crate::cache::GuardedLru<String, Arc<Ruleset>>;
const CACHED_RULESETS: usize = 4096;

pub(crate) fn ruleset_cache() -> RulesetCache {
    crate::cache::GuardedLru::new(CACHED_RULESETS)
}

/// The spec's predefined rules for `user_id`, in the spec's order.
///
/// ruma dropped the legacy mention rules (`.m.rule.contains_display_name`, `.m.rule.roomnotif`,
/// `.m.rule.contains_user_name`; MSC4210) from its defaults, but spec v1.15 still lists them
/// (deprecated) and clients that send no `m.mentions` rely on them; ruma still evaluates them,
/// and skips them for events that carry `m.mentions`, as the spec says.
pub fn server_default(user_id: &UserId) -> Ruleset {
    let mut ruleset = Ruleset::server_default(user_id);
    let loud = || {
        vec![
            Action::Notify,
            Action::SetTweak(Tweak::Sound(SoundTweakValue::Default)),
            Action::SetTweak(Tweak::Highlight(HighlightTweakValue::Yes)),
        ]
    };
    #[allow(deprecated)]
    let contains_display_name = ConditionalPushRule::from(ConditionalPushRuleInit {
        actions: loud(),
        default: true,
        enabled: true,
        rule_id: PredefinedOverrideRuleId::ContainsDisplayName.to_string(),
        conditions: vec![PushCondition::ContainsDisplayName],
    });
    #[allow(deprecated)]
    let room_notif = ConditionalPushRule::from(ConditionalPushRuleInit {
        actions: vec![
            Action::Notify,
            Action::SetTweak(Tweak::Highlight(HighlightTweakValue::Yes)),
        ],
        default: true,
        enabled: true,
        rule_id: PredefinedOverrideRuleId::RoomNotif.to_string(),
        conditions: vec![
            PushCondition::EventMatch(EventMatchConditionData::new(
                "content.body".into(),
                "@room".into(),
            )),
            PushCondition::SenderNotificationPermission(
                SenderNotificationPermissionConditionData::new(NotificationPowerLevelsKey::Room),
            ),
        ],
    });
    for (after, rule) in [
        (
            PredefinedOverrideRuleId::IsUserMention,
            contains_display_name,
        ),
        (PredefinedOverrideRuleId::IsRoomMention, room_notif),
    ] {
        let index = ruleset
            .override_
            .get_index_of(after.as_str())
            .map_or(ruleset.override_.len(), |i| i + 1);
        ruleset.override_.shift_insert(index, rule);
    }
    #[allow(deprecated)]
    let contains_user_name = PatternedPushRule::from(PatternedPushRuleInit {
        actions: loud(),
        default: true,
        enabled: true,
        rule_id: PredefinedContentRuleId::ContainsUserName.to_string(),
        pattern: user_id.localpart().to_owned(),
    });
    ruleset.content.insert(contains_user_name);
    ruleset
}

/// The ruleset stored as `content` (`{"global": …}`), merged with the current server defaults;
/// the server defaults alone when nothing (or nothing readable) is stored.
fn ruleset_from(content: Option<&str>, user_id: &UserId) -> Ruleset {
    let defaults = server_default(user_id);
    let Some(content) = content else {
        return defaults;
    };
    let stored = serde_json::from_str::<Value>(content)
        .ok()
        .and_then(|mut v| v.get_mut("global").map(Value::take))
        .map(serde_json::from_value::<Ruleset>);
    match stored {
        Some(Ok(mut ruleset)) => {
            ruleset.update_with_server_default(defaults);
            ruleset
        }
        _ => {
            tracing::warn!(%user_id, "stored push rules are unreadable; using the defaults");
            defaults
        }
    }
}

/// The ruleset of a local user.
pub async fn ruleset(tenant: &Tenant, user_id: &UserId) -> Result<Ruleset> {
    let record = tenant
        .store()
        .account_data(user_id.localpart(), None, PUSH_RULES_TYPE)
        .await?;
    Ok(ruleset_from(
        record.as_ref().map(|r| r.content.as_str()),
        user_id,
    ))
}

/// The `m.push_rules` account data content of a local user as clients see it, for sync to
/// send when the user never changed their rules (and so has none stored).
pub async fn account_data_content(tenant: &Tenant, user_id: &UserId) -> Result<Value> {
    content_of(&ruleset(tenant, user_id).await?)
}

fn content_of(ruleset: &Ruleset) -> Result<Value> {
    let global = serde_json::to_value(ruleset)
        .map_err(|e| Error::Internal(format!("could not serialise push rules: {e}")))?;
    Ok(json!({ "global": global }))
}

/// Only the kinds the spec defines can be read or changed.
fn check_kind(kind: &RuleKind) -> Result<()> {
    if matches!(
        kind,
        RuleKind::Override
            | RuleKind::Underride
            | RuleKind::Sender
            | RuleKind::Room
            | RuleKind::Content
    ) {
        Ok(())
    } else {
        Err(Error::InvalidParam(format!(
            "Unknown push rule kind {kind}"
        )))
    }
}

fn rule_not_found() -> Error {
    Error::NotFound("Unknown push rule".into())
}

/// The `pushrules` endpoints of one tenant.
pub struct PushRules<'a> {
    tenant: &'a Tenant,
}

impl Tenant {
    pub fn push_rules(&self) -> PushRules<'_> {
        PushRules { tenant: self }
    }
}

impl PushRules<'_> {
    /// `GET /pushrules/` and `GET /pushrules/global/`.
    pub async fn rules(&self, user: &AuthedUser) -> Result<Ruleset> {
        ruleset(self.tenant, &user.user_id).await
    }

    /// `GET /pushrules/global/{kind}/{ruleId}`.
    pub async fn rule(
        &self,
        user: &AuthedUser,
        kind: &RuleKind,
        rule_id: &str,
    ) -> Result<AnyPushRule> {
        check_kind(kind)?;
        let ruleset = self.rules(user).await?;
        ruleset
            .get(kind.clone(), rule_id)
            .map(|rule| rule.to_owned())
            .ok_or_else(rule_not_found)
    }

    /// `PUT /pushrules/global/{kind}/{ruleId}`: creates or replaces a user-defined rule, placed
    /// `before` or `after` another user-defined rule of its kind (or first of its kind when
    /// new, where it stays when replaced).
    pub async fn set_rule(
        &self,
        user: &AuthedUser,
        rule: NewPushRule,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<()> {
        check_kind(&rule.kind())?;
        self.change(user, |ruleset| {
            ruleset.insert(rule, after, before).map_err(|e| match e {
                InsertPushRuleError::UnknownRuleId => {
                    Error::NotFound("The `before` or `after` rule does not exist".into())
                }
                InsertPushRuleError::ServerDefaultRuleId => Error::InvalidParam(
                    "Rule ids starting with a dot are reserved for server-default rules".into(),
                ),
                other => Error::InvalidParam(other.to_string()),
            })
        })
        .await
    }

    /// `DELETE /pushrules/global/{kind}/{ruleId}`.
    pub async fn delete_rule(
        &self,
        user: &AuthedUser,
        kind: &RuleKind,
        rule_id: &str,
    ) -> Result<()> {
        check_kind(kind)?;
        self.change(user, |ruleset| {
            ruleset.remove(kind.clone(), rule_id).map_err(|e| match e {
                RemovePushRuleError::ServerDefault => {
                    Error::InvalidParam("Server-default rules can't be deleted".into())
                }
                _ => rule_not_found(),
            })
        })
        .await
    }

    /// `GET /pushrules/global/{kind}/{ruleId}/enabled`.
    pub async fn enabled(&self, user: &AuthedUser, kind: &RuleKind, rule_id: &str) -> Result<bool> {
        Ok(self.rule(user, kind, rule_id).await?.enabled())
    }

    /// `PUT /pushrules/global/{kind}/{ruleId}/enabled`.
    pub async fn set_enabled(
        &self,
        user: &AuthedUser,
        kind: &RuleKind,
        rule_id: &str,
        enabled: bool,
    ) -> Result<()> {
        check_kind(kind)?;
        self.change(user, |ruleset| {
            ruleset
                .set_enabled(kind.clone(), rule_id, enabled)
                .map_err(|_| rule_not_found())
        })
        .await
    }

    /// `GET /pushrules/global/{kind}/{ruleId}/actions`.
    pub async fn actions(
        &self,
        user: &AuthedUser,
        kind: &RuleKind,
        rule_id: &str,
    ) -> Result<Vec<Action>> {
        Ok(self.rule(user, kind, rule_id).await?.actions().to_vec())
    }

    /// `PUT /pushrules/global/{kind}/{ruleId}/actions`.
    pub async fn set_actions(
        &self,
        user: &AuthedUser,
        kind: &RuleKind,
        rule_id: &str,
        actions: Vec<Action>,
    ) -> Result<()> {
        check_kind(kind)?;
        self.change(user, |ruleset| {
            ruleset
                .set_actions(kind.clone(), rule_id, actions)
                .map_err(|_| rule_not_found())
        })
        .await
    }

    /// Applies `change` to the user's ruleset and stores the result. The tenant's stream writer
    /// is held from the read to the write, so concurrent changes can't lose each other.
    async fn change(
        &self,
        user: &AuthedUser,
        change: impl FnOnce(&mut Ruleset) -> Result<()>,
    ) -> Result<()> {
        let mut writer = self.tenant.stream().writer().await;
        let mut ruleset = ruleset(self.tenant, &user.user_id).await?;
        change(&mut ruleset)?;
        self.store(&mut writer, &user.localpart, &ruleset).await
    }

    /// Stores the ruleset as the user's `m.push_rules` at a new stream position, so sync
    /// delivers it (as `UserData` stores account data).
    async fn store(
        &self,
        writer: &mut StreamWriter<'_>,
        localpart: &str,
        ruleset: &Ruleset,
    ) -> Result<()> {
        let content = content_of(ruleset)?;
        let owner = usernames::user_id(localpart, self.tenant.server_name())?;
        let stream = writer
            .next_for(Audience::Users(vec![owner.to_string()]))
            .await?;
        let record = AccountDataRecord {
            localpart: localpart.to_owned(),
            room_id: None,
            data_type: PUSH_RULES_TYPE.to_owned(),
            content: content.to_string(),
            stream,
        };
        self.tenant.store().set_account_data(&record).await?;
        self.tenant.rulesets().invalidate();
        writer.publish(stream);
        Ok(())
    }
}

/// `(notification_count, highlight_count)` of `user` in `room_id`: notifications after their
/// newest `m.read`/`m.read.private` receipt (unthreaded, or of the notification's thread).
pub async fn unread_counts(tenant: &Tenant, user: &UserId, room_id: &RoomId) -> Result<(u64, u64)> {
    Ok(tenant
        .store()
        .unread_notification_counts(room_id.as_str(), user.as_str())
        .await?)
}

#[cfg(test)]
mod tests {
    use ruma::owned_user_id;
    use ruma::push::PredefinedUnderrideRuleId;

    use super::*;

    fn rule_ids(ruleset: &Ruleset) -> Vec<String> {
        ruleset.iter().map(|r| r.rule_id().to_owned()).collect()
    }

    #[test]
    fn server_default_has_the_specs_rules_in_order() {
        let user = owned_user_id!("@bob:example.org");
        let ruleset = server_default(&user);
        let ids = rule_ids(&ruleset);
        let position = |id: &str| {
            ids.iter()
                .position(|r| r == id)
                .unwrap_or_else(|| panic!("{id} missing from {ids:?}"))
        };
        assert_eq!(position(".m.rule.master"), 0);
        assert_eq!(
            position(".m.rule.contains_display_name"),
            position(".m.rule.is_user_mention") + 1
        );
        assert_eq!(
            position(".m.rule.roomnotif"),
            position(".m.rule.is_room_mention") + 1
        );
        for id in [
            ".m.rule.suppress_notices",
            ".m.rule.invite_for_me",
            ".m.rule.member_event",
            ".m.rule.tombstone",
            ".m.rule.reaction",
            ".m.rule.room.server_acl",
            ".m.rule.suppress_edits",
            ".m.rule.contains_user_name",
            ".m.rule.call",
            ".m.rule.encrypted_room_one_to_one",
            ".m.rule.room_one_to_one",
            ".m.rule.message",
            ".m.rule.encrypted",
        ] {
            position(id);
        }
        assert!(position(".m.rule.suppress_edits") < position(".m.rule.contains_user_name"));
        assert!(position(".m.rule.contains_user_name") < position(".m.rule.call"));
        let user_name = ruleset
            .get(RuleKind::Content, ".m.rule.contains_user_name")
            .expect("content rule");
        assert_eq!(
            serde_json::to_value(user_name.to_owned().as_ref().actions()).expect("json"),
            json!(["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}])
        );
        let json = serde_json::to_value(&ruleset).expect("json");
        assert_eq!(json["content"][0]["pattern"], "bob", "{json}");
        assert!(ruleset.iter().all(|r| r.is_server_default()));
    }

    #[test]
    fn stored_rules_are_merged_with_the_defaults() {
        let user = owned_user_id!("@bob:example.org");
        assert_eq!(
            rule_ids(&ruleset_from(None, &user)),
            rule_ids(&server_default(&user))
        );
        assert_eq!(
            rule_ids(&ruleset_from(Some("not json"), &user)),
            rule_ids(&server_default(&user))
        );
        assert_eq!(
            rule_ids(&ruleset_from(Some(r#"{"global": 3}"#), &user)),
            rule_ids(&server_default(&user))
        );

        // What an older server stored: one default rule only (disabled), and a custom rule.
        let stored = json!({"global": {
            "override": [{
                "rule_id": ".m.rule.master", "default": true, "enabled": true, "actions": [],
                "conditions": []
            }],
            "room": [{
                "rule_id": "!quiet:example.org", "default": false, "enabled": true,
                "actions": []
            }],
            "underride": [{
                "rule_id": ".m.rule.message", "default": true, "enabled": false,
                "actions": ["notify"], "conditions": [{"kind": "event_match", "key": "type",
                "pattern": "m.room.message"}]
            }]
        }});
        let ruleset = ruleset_from(Some(&stored.to_string()), &user);
        let master = ruleset
            .get(RuleKind::Override, ".m.rule.master")
            .expect("master");
        assert!(master.enabled(), "the user's choice survives");
        let message = ruleset
            .get(
                RuleKind::Underride,
                PredefinedUnderrideRuleId::Message.as_str(),
            )
            .expect("message");
        assert!(!message.enabled());
        assert!(ruleset.get(RuleKind::Room, "!quiet:example.org").is_some());
        assert!(
            ruleset
                .get(RuleKind::Override, ".m.rule.contains_display_name")
                .is_some(),
            "missing defaults are added"
        );
    }

    #[test]
    fn highlight_tweak_without_value_highlights() {
        let actions: Vec<Action> = serde_json::from_value(json!([
            "notify", {"set_tweak": "highlight"}, {"set_tweak": "sound", "value": "default"}
        ]))
        .expect("actions");
        assert!(actions.iter().any(Action::should_notify));
        assert!(actions.iter().any(Action::is_highlight));
        let actions: Vec<Action> =
            serde_json::from_value(json!(["notify", {"set_tweak": "highlight", "value": false}]))
                .expect("actions");
        assert!(!actions.iter().any(Action::is_highlight));
    }
}
