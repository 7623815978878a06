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

use std::sync::Arc;

use maas_store::AccountDataRecord;
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

pub use self::evaluation::push_actions;
pub(crate) use self::evaluation::{Notifications, StateInputs, evaluate};
use crate::accounts::{AuthedUser, usernames};
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
    use std::sync::Arc;

    use ruma::push::{NewConditionalPushRule, NewSimplePushRule, PredefinedUnderrideRuleId};
    use ruma::{OwnedDeviceId, OwnedEventId, OwnedRoomId, OwnedUserId, owned_user_id};

    use super::*;
    use crate::Platform;
    use crate::config::Config;
    use crate::rooms::{CreateRoom, EventDraft, Preset};

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

    struct Fixture {
        _dir: tempfile::TempDir,
        _platform: Arc<Platform>,
        tenant: Tenant,
        room_id: OwnedRoomId,
        alice: AuthedUser,
        bob: AuthedUser,
    }

    async fn authed(tenant: &Tenant, localpart: &str, name: &str) -> AuthedUser {
        tenant
            .accounts()
            .create_user(localpart, Some("pw-long-enough-1"), false, Some(name))
            .await
            .expect("user");
        AuthedUser {
            user_id: crate::accounts::usernames::user_id(localpart, tenant.server_name())
                .expect("user id"),
            localpart: localpart.to_owned(),
            device_id: OwnedDeviceId::from("DEVICE"),
            admin: false,
            guest: false,
        }
    }

    /// A tenant where Alice created a room that Bob ("Bobby") and Carol joined.
    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_path_buf();
        config.operator.token = Some("operator-token".into());
        config.passwords.memory_kib = 1024;
        config.passwords.iterations = 1;
        let platform = Platform::start(config).await.expect("platform");
        platform.bootstrap_default_tenant().await.expect("tenant");
        let tenant = platform
            .tenant_by_server_name("localhost")
            .await
            .expect("tenant");
        let alice = authed(&tenant, "alice", "Alice").await;
        let bob = authed(&tenant, "bob", "Bobby").await;
        let carol = authed(&tenant, "carol", "Carol").await;
        let room_id = tenant
            .rooms()
            .create(
                &alice.user_id,
                CreateRoom {
                    preset: Some(Preset::PublicChat),
                    ..CreateRoom::default()
                },
            )
            .await
            .expect("room");
        for user in [&bob, &carol] {
            tenant
                .rooms()
                .join(&user.user_id, &room_id, None)
                .await
                .expect("join");
        }
        Fixture {
            _dir: dir,
            _platform: platform,
            tenant,
            room_id,
            alice,
            bob,
        }
    }

    impl Fixture {
        async fn send(&self, sender: &AuthedUser, kind: &str, content: Value) -> OwnedEventId {
            self.tenant
                .rooms()
                .send(
                    &sender.user_id,
                    &self.room_id,
                    EventDraft::message(kind, content),
                    None,
                )
                .await
                .expect("send")
        }

        async fn members(&self) -> Vec<OwnedUserId> {
            let members = self
                .tenant
                .store()
                .room_members(self.room_id.as_str(), Some("join"))
                .await
                .expect("members");
            members
                .into_iter()
                .map(|m| OwnedUserId::try_from(m.user_id).expect("user id"))
                .collect()
        }

        async fn stored(&self, event_id: &OwnedEventId) -> maas_store::EventRecord {
            self.tenant
                .store()
                .event(event_id.as_str())
                .await
                .expect("event")
                .expect("stored")
        }

        /// `(user, highlight)` of each notification `event_id` causes, sorted.
        async fn notified(&self, event_id: &OwnedEventId) -> Vec<(String, bool)> {
            let event = self.stored(event_id).await;
            let members = self.members().await;
            let records = push_actions(&self.tenant, &self.room_id, &event, &members)
                .await
                .expect("push actions");
            for record in &records {
                assert_eq!(record.event_id, event_id.as_str());
                assert_eq!(record.stream, event.stream);
                assert_eq!(record.room_id, self.room_id.as_str());
            }
            let mut out: Vec<_> = records
                .into_iter()
                .map(|r| {
                    (
                        r.user_id.trim_end_matches(":localhost").to_owned(),
                        r.highlight,
                    )
                })
                .collect();
            out.sort();
            out
        }
    }

    fn text(body: &str) -> Value {
        json!({"msgtype": "m.text", "body": body})
    }

    fn both(bob: bool, carol: bool) -> Vec<(String, bool)> {
        vec![("@bob".to_owned(), bob), ("@carol".to_owned(), carol)]
    }

    #[tokio::test]
    async fn events_are_evaluated_for_every_local_member_but_the_sender() {
        let f = fixture().await;
        let alice = &f.alice;

        // Three members: `.m.rule.message` notifies both others, without highlight.
        let plain = f.send(alice, "m.room.message", text("hello")).await;
        assert_eq!(f.notified(&plain).await, both(false, false));

        // Notices notify nobody; neither do reactions or edits.
        let notice = json!({"msgtype": "m.notice", "body": "bot"});
        let notice = f.send(alice, "m.room.message", notice).await;
        assert_eq!(f.notified(&notice).await, vec![]);
        let reaction = json!({"m.relates_to": {"rel_type": "m.annotation",
            "event_id": plain, "key": "👍"}});
        let reaction = f.send(alice, "m.reaction", reaction).await;
        assert_eq!(f.notified(&reaction).await, vec![]);

        // Intentional mentions highlight the mentioned user only.
        let mention = json!({"msgtype": "m.text", "body": "hi B",
            "m.mentions": {"user_ids": [f.bob.user_id]}});
        let mention = f.send(alice, "m.room.message", mention).await;
        assert_eq!(f.notified(&mention).await, both(true, false));

        // Legacy mentions: the display name in the room, or the localpart, in the body.
        let by_name = f.send(alice, "m.room.message", text("ask Bobby")).await;
        assert_eq!(f.notified(&by_name).await, both(true, false));
        let by_localpart = f.send(alice, "m.room.message", text("carol?")).await;
        assert_eq!(f.notified(&by_localpart).await, both(false, true));
        // …but not when the event has `m.mentions`.
        let explicit = json!({"msgtype": "m.text", "body": "ask Bobby", "m.mentions": {}});
        let explicit = f.send(alice, "m.room.message", explicit).await;
        assert_eq!(f.notified(&explicit).await, both(false, false));

        // Room mentions need the sender's power (the creator has it; Bob doesn't).
        let room = json!({"msgtype": "m.text", "body": "all", "m.mentions": {"room": true}});
        let from_alice = f.send(alice, "m.room.message", room.clone()).await;
        assert_eq!(f.notified(&from_alice).await, both(true, true));
        let from_bob = f.send(&f.bob, "m.room.message", room).await;
        assert_eq!(
            f.notified(&from_bob).await,
            vec![("@alice".to_owned(), false), ("@carol".to_owned(), false)]
        );
        let legacy_room = f.send(alice, "m.room.message", text("@room look")).await;
        assert_eq!(f.notified(&legacy_room).await, both(true, true));

        // Remote members count for the room size but get nothing evaluated here.
        let event = f.stored(&plain).await;
        let mut members = f.members().await;
        members.push(owned_user_id!("@dave:remote.example"));
        let records = push_actions(&f.tenant, &f.room_id, &event, &members)
            .await
            .expect("push actions");
        assert_eq!(records.len(), 2);
    }

    #[tokio::test]
    async fn user_rules_change_what_notifies_and_are_stored_as_account_data() {
        let f = fixture().await;
        let rules = f.tenant.push_rules();
        let bob = &f.bob;

        // Bob mutes the room with a room rule without actions.
        let mute = NewPushRule::Room(NewSimplePushRule::new(f.room_id.clone(), vec![]));
        rules
            .set_rule(bob, mute, None, None)
            .await
            .expect("set rule");
        let hello = f.send(&f.alice, "m.room.message", text("hello")).await;
        assert_eq!(f.notified(&hello).await, vec![("@carol".to_owned(), false)]);

        let stored = f
            .tenant
            .store()
            .account_data("bob", None, PUSH_RULES_TYPE)
            .await
            .expect("read")
            .expect("stored");
        let content: Value = serde_json::from_str(&stored.content).expect("json");
        assert_eq!(content["global"]["room"][0]["rule_id"], f.room_id.as_str());
        assert_eq!(
            content["global"]["override"][0]["rule_id"],
            ".m.rule.master"
        );

        // Disabling the rule brings the notifications back; deleting it too.
        rules
            .set_enabled(bob, &RuleKind::Room, f.room_id.as_str(), false)
            .await
            .expect("disable");
        assert!(
            !rules
                .enabled(bob, &RuleKind::Room, f.room_id.as_str())
                .await
                .expect("enabled")
        );
        let again = f.send(&f.alice, "m.room.message", text("again")).await;
        assert_eq!(f.notified(&again).await, both(false, false));
        rules
            .delete_rule(bob, &RuleKind::Room, f.room_id.as_str())
            .await
            .expect("delete");
        assert!(matches!(
            rules.rule(bob, &RuleKind::Room, f.room_id.as_str()).await,
            Err(Error::NotFound(_))
        ));

        // The master rule silences everything.
        rules
            .set_enabled(bob, &RuleKind::Override, ".m.rule.master", true)
            .await
            .expect("master");
        let silent = f.send(&f.alice, "m.room.message", text("Bobby")).await;
        assert_eq!(
            f.notified(&silent).await,
            vec![("@carol".to_owned(), false)]
        );

        // Errors.
        let custom = RuleKind::from("nonsense");
        assert!(matches!(
            rules.rule(bob, &custom, "x").await,
            Err(Error::InvalidParam(_))
        ));
        assert!(matches!(
            rules
                .delete_rule(bob, &RuleKind::Underride, ".m.rule.message")
                .await,
            Err(Error::InvalidParam(_))
        ));
        assert!(matches!(
            rules.delete_rule(bob, &RuleKind::Underride, "nope").await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            rules
                .set_actions(bob, &RuleKind::Sender, "@x:localhost", vec![])
                .await,
            Err(Error::NotFound(_))
        ));
    }

    /// Sent through the committer, which keeps the room's power levels and display names from
    /// one event to the next: a state change between two events must be seen by the second.
    #[tokio::test]
    async fn committed_events_see_the_state_they_were_sent_in() {
        let f = fixture().await;
        let counts = || unread_counts(&f.tenant, &f.bob.user_id, &f.room_id);
        f.send(&f.alice, "m.room.message", text("ask Bobby")).await;
        assert_eq!(counts().await.expect("counts"), (1, 1));

        let renamed = json!({"membership": "join", "displayname": "Robert"});
        let member = EventDraft::state("m.room.member", f.bob.user_id.as_str(), renamed);
        f.tenant
            .rooms()
            .send(&f.bob.user_id, &f.room_id, member, None)
            .await
            .expect("rename");
        f.send(&f.alice, "m.room.message", text("ask Bobby")).await;
        assert_eq!(counts().await.expect("counts"), (2, 1));
        f.send(&f.alice, "m.room.message", text("ask Robert")).await;
        assert_eq!(counts().await.expect("counts"), (3, 2));

        // Only Bob's own rule matches `hello`; Carol's ruleset shares every other condition.
        let rule: NewConditionalPushRule = serde_json::from_value(json!({"rule_id": "quiet",
            "conditions": [{"kind": "event_match", "key": "content.body", "pattern": "hello"}],
            "actions": []}))
        .expect("rule");
        f.tenant
            .push_rules()
            .set_rule(&f.bob, NewPushRule::Override(rule), None, None)
            .await
            .expect("set rule");
        let hello = f.send(&f.alice, "m.room.message", text("hello")).await;
        assert_eq!(counts().await.expect("counts"), (3, 2));
        let carol = owned_user_id!("@carol:localhost");
        let carols = || unread_counts(&f.tenant, &carol, &f.room_id);
        assert_eq!(carols().await.expect("counts"), (4, 0));

        // A redacted event no longer counts.
        let mut redaction = EventDraft::message("m.room.redaction", json!({"redacts": hello}));
        redaction.redacts = Some(hello);
        f.tenant
            .rooms()
            .send(&f.alice.user_id, &f.room_id, redaction, None)
            .await
            .expect("redact");
        assert_eq!(carols().await.expect("counts"), (3, 0));
    }

    /// The stored form of what `event_id` does: who has rows of their own (with `notify` and
    /// `highlight`), and whether the room has a row.
    async fn stored_form(
        f: &Fixture,
        event_id: &OwnedEventId,
    ) -> (bool, Vec<(String, bool, bool)>) {
        let event = f.stored(event_id).await;
        let rules = crate::rooms::rules_of("12").expect("rules");
        let members = f.members().await;
        let mut inputs = StateInputs::default();
        let found = evaluate(&f.tenant, &f.room_id, &rules, &event, &members, &mut inputs)
            .await
            .expect("evaluate");
        if let Some(room) = &found.room {
            assert_eq!(
                (room.event_id.as_str(), room.stream, room.sender.as_str()),
                (event_id.as_str(), event.stream, event.sender.as_str())
            );
        }
        let mut users: Vec<_> = found
            .users
            .into_iter()
            .map(|r| {
                let user = r.user_id.trim_end_matches(":localhost").to_owned();
                (user, r.notify, r.highlight)
            })
            .collect();
        users.sort();
        (found.room.is_some(), users)
    }

    #[tokio::test]
    async fn events_most_members_get_alike_are_one_row_for_the_room() {
        let f = fixture().await;
        let bob = || ("@bob".to_owned(), true, true);

        // Both others get a plain notification: the room's row says it for them.
        let plain = f.send(&f.alice, "m.room.message", text("hello")).await;
        assert_eq!(stored_form(&f, &plain).await, (true, vec![]));
        let mention = json!({"msgtype": "m.text", "body": "hi B",
            "m.mentions": {"user_ids": [f.bob.user_id]}});
        let mention = f.send(&f.alice, "m.room.message", mention).await;
        // One plain notification is a row either way: Carol's own, with Bob's.
        assert_eq!(
            stored_form(&f, &mention).await,
            (false, vec![bob(), ("@carol".to_owned(), true, false)])
        );
        let notice = json!({"msgtype": "m.notice", "body": "bot"});
        let notice = f.send(&f.alice, "m.room.message", notice).await;
        assert_eq!(stored_form(&f, &notice).await, (false, vec![]));

        // Two more members make a mention a room row with Bob's highlight as his own row.
        let dave = authed(&f.tenant, "dave", "Dave").await;
        let erin = authed(&f.tenant, "erin", "Erin").await;
        for user in [&dave, &erin] {
            f.tenant
                .rooms()
                .join(&user.user_id, &f.room_id, None)
                .await
                .expect("join");
        }
        let mention = json!({"msgtype": "m.text", "body": "hi B",
            "m.mentions": {"user_ids": [f.bob.user_id]}});
        let mention = f.send(&f.alice, "m.room.message", mention).await;
        assert_eq!(stored_form(&f, &mention).await, (true, vec![bob()]));
        // Bob mutes the room: his own row says the room's is not for him.
        let mute = NewPushRule::Room(NewSimplePushRule::new(f.room_id.clone(), vec![]));
        f.tenant
            .push_rules()
            .set_rule(&f.bob, mute, None, None)
            .await
            .expect("mute");
        let hello = f.send(&f.alice, "m.room.message", text("hello")).await;
        assert_eq!(
            stored_form(&f, &hello).await,
            (true, vec![("@bob".to_owned(), false, false)])
        );

        // What the committer stored counts the same: Bob has his highlights, Carol everything
        // but the notice, and Dave and Erin nothing from before they joined.
        let (tenant, room_id) = (&f.tenant, &f.room_id);
        let counts = |user: OwnedUserId| async move {
            unread_counts(tenant, &user, room_id).await.expect("counts")
        };
        assert_eq!(counts(f.bob.user_id.clone()).await, (3, 2));
        assert_eq!(counts(owned_user_id!("@carol:localhost")).await, (4, 0));
        assert_eq!(counts(dave.user_id.clone()).await, (2, 0));
        assert_eq!(counts(erin.user_id.clone()).await, (2, 0));

        // Dave leaves and comes back: what notified him before counts no more.
        f.tenant
            .rooms()
            .leave(&dave.user_id, &f.room_id, None)
            .await
            .expect("leave");
        f.tenant
            .rooms()
            .join(&dave.user_id, &f.room_id, None)
            .await
            .expect("rejoin");
        assert_eq!(counts(dave.user_id.clone()).await, (0, 0));
        f.send(&f.alice, "m.room.message", text("welcome back"))
            .await;
        assert_eq!(counts(dave.user_id.clone()).await, (1, 0));
    }

    #[tokio::test]
    async fn unread_counts_follow_read_receipts() {
        let f = fixture().await;
        let first = f.send(&f.alice, "m.room.message", text("one")).await;
        let mention = json!({"msgtype": "m.text", "body": "two",
            "m.mentions": {"user_ids": [f.bob.user_id]}});
        let second = f.send(&f.alice, "m.room.message", mention).await;
        let third = f.send(&f.alice, "m.room.message", text("three")).await;
        for event in [&first, &second, &third] {
            f.notified(event).await;
        }
        let counts = || unread_counts(&f.tenant, &f.bob.user_id, &f.room_id);
        assert_eq!(counts().await.expect("counts"), (3, 1));
        f.tenant
            .user_data()
            .receipt(&f.bob, &f.room_id, "m.read", &first, None)
            .await
            .expect("receipt");
        assert_eq!(counts().await.expect("counts"), (2, 1));
        f.tenant
            .user_data()
            .receipt(&f.bob, &f.room_id, "m.read.private", &third, None)
            .await
            .expect("receipt");
        assert_eq!(counts().await.expect("counts"), (0, 0));
        // Alice sent them all: nothing is unread for her.
        assert_eq!(
            unread_counts(&f.tenant, &f.alice.user_id, &f.room_id)
                .await
                .expect("counts"),
            (0, 0)
        );
    }
}
