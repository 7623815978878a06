//! Push rule evaluation through the event pipeline, on a real tenant (SQLite): who each new
//! event notifies and highlights, as the unread counts that sync reports show it, and how the
//! users' own rules (kept as account data) change that.

use maas_core::accounts::AuthedUser;
use maas_core::push::{PUSH_RULES_TYPE, unread_counts};
use maas_core::rooms::{CreateRoom, EventDraft, Preset};
use maas_core::{Error, Tenant};
use ruma::push::{NewConditionalPushRule, NewPushRule, NewSimplePushRule, RuleKind};
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, UserId};
use serde_json::{Value, json};

mod support;

struct Fixture {
    _platform: support::Platformed,
    tenant: Tenant,
    room_id: OwnedRoomId,
    alice: AuthedUser,
    bob: AuthedUser,
    carol: AuthedUser,
}

/// A tenant where Alice created a room that Bob ("Bobby") and Carol joined.
async fn fixture() -> Fixture {
    let platform = support::platform().await;
    let tenant = platform.tenant.clone();
    let alice = support::authed(&tenant, "alice", Some("Alice")).await;
    let bob = support::authed(&tenant, "bob", Some("Bobby")).await;
    let carol = support::authed(&tenant, "carol", Some("Carol")).await;
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
            .join(&user.user_id, &room_id, &[], None)
            .await
            .expect("join");
    }
    Fixture {
        _platform: platform,
        tenant,
        room_id,
        alice,
        bob,
        carol,
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

    async fn counts(&self, user: &UserId) -> (u64, u64) {
        unread_counts(&self.tenant, user, &self.room_id)
            .await
            .expect("counts")
    }

    /// Who (by localpart, sorted) the event `sender` sends notifies, and whether it
    /// highlights for them: what it adds to each member's unread counts.
    async fn notified(
        &self,
        sender: &AuthedUser,
        kind: &str,
        content: Value,
    ) -> Vec<(String, bool)> {
        let members = [&self.alice, &self.bob, &self.carol];
        let mut before = Vec::new();
        for member in members {
            before.push(self.counts(&member.user_id).await);
        }
        self.send(sender, kind, content).await;
        let mut out = Vec::new();
        for (member, (notifications, highlights)) in members.into_iter().zip(before) {
            let (n, h) = self.counts(&member.user_id).await;
            assert!(
                n - notifications <= 1 && h - highlights <= 1,
                "one event counts once"
            );
            if n > notifications {
                out.push((member.localpart.clone(), h > highlights));
            }
        }
        out
    }
}

fn text(body: &str) -> Value {
    json!({"msgtype": "m.text", "body": body})
}

fn both(bob: bool, carol: bool) -> Vec<(String, bool)> {
    vec![("bob".to_owned(), bob), ("carol".to_owned(), carol)]
}

#[tokio::test]
async fn events_are_evaluated_for_every_local_member_but_the_sender() {
    let f = fixture().await;
    let alice = &f.alice;
    let message = "m.room.message";

    // Three members: `.m.rule.message` notifies both others, without highlight.
    let plain = f.send(alice, message, text("hello")).await;
    assert_eq!(f.counts(&f.bob.user_id).await, (1, 0));
    assert_eq!(f.counts(&f.carol.user_id).await, (1, 0));
    assert_eq!(f.counts(&alice.user_id).await, (0, 0), "not the sender");

    // Notices notify nobody; neither do reactions or edits.
    let notice = json!({"msgtype": "m.notice", "body": "bot"});
    assert_eq!(f.notified(alice, message, notice).await, vec![]);
    let reaction = json!({"m.relates_to": {"rel_type": "m.annotation",
        "event_id": plain, "key": "👍"}});
    assert_eq!(f.notified(alice, "m.reaction", reaction).await, vec![]);
    let edit = json!({"msgtype": "m.text", "body": "* hello!", "m.new_content":
        {"msgtype": "m.text", "body": "hello!"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": plain}});
    assert_eq!(f.notified(alice, message, edit).await, vec![]);

    // Intentional mentions highlight the mentioned user only.
    let mention = json!({"msgtype": "m.text", "body": "hi B",
        "m.mentions": {"user_ids": [f.bob.user_id]}});
    assert_eq!(f.notified(alice, message, mention).await, both(true, false));

    // Legacy mentions: the display name in the room, or the localpart, in the body.
    assert_eq!(
        f.notified(alice, message, text("ask Bobby")).await,
        both(true, false)
    );
    assert_eq!(
        f.notified(alice, message, text("carol?")).await,
        both(false, true)
    );
    // …but not when the event has `m.mentions`.
    let explicit = json!({"msgtype": "m.text", "body": "ask Bobby", "m.mentions": {}});
    assert_eq!(
        f.notified(alice, message, explicit).await,
        both(false, false)
    );

    // Room mentions need the sender's power (the creator has it; Bob doesn't).
    let room = json!({"msgtype": "m.text", "body": "all", "m.mentions": {"room": true}});
    assert_eq!(
        f.notified(alice, message, room.clone()).await,
        both(true, true)
    );
    assert_eq!(
        f.notified(&f.bob, message, room).await,
        vec![("alice".to_owned(), false), ("carol".to_owned(), false)]
    );
    assert_eq!(
        f.notified(alice, message, text("@room look")).await,
        both(true, true)
    );
}

#[tokio::test]
async fn user_rules_change_what_notifies_and_are_stored_as_account_data() {
    let f = fixture().await;
    let rules = f.tenant.push_rules();
    let bob = &f.bob;
    let message = "m.room.message";

    // Bob mutes the room with a room rule without actions.
    let mute = NewPushRule::Room(NewSimplePushRule::new(f.room_id.clone(), vec![]));
    rules
        .set_rule(bob, mute, None, None)
        .await
        .expect("set rule");
    assert_eq!(
        f.notified(&f.alice, message, text("hello")).await,
        vec![("carol".to_owned(), false)]
    );

    let content = f
        .tenant
        .user_data()
        .account_data(bob, &bob.user_id, None, PUSH_RULES_TYPE)
        .await
        .expect("stored as account data");
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
    assert_eq!(
        f.notified(&f.alice, message, text("again")).await,
        both(false, false)
    );
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
    assert_eq!(
        f.notified(&f.alice, message, text("Bobby")).await,
        vec![("carol".to_owned(), false)]
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

/// The pipeline keeps the room's power levels and display names from one event to the next:
/// a state change between two events must be seen by the second.
#[tokio::test]
async fn committed_events_see_the_state_they_were_sent_in() {
    let f = fixture().await;
    let carol = f.carol.user_id.clone();
    f.send(&f.alice, "m.room.message", text("ask Bobby")).await;
    assert_eq!(f.counts(&f.bob.user_id).await, (1, 1));

    let renamed = json!({"membership": "join", "displayname": "Robert"});
    let member = EventDraft::state("m.room.member", f.bob.user_id.as_str(), renamed);
    f.tenant
        .rooms()
        .send(&f.bob.user_id, &f.room_id, member, None)
        .await
        .expect("rename");
    f.send(&f.alice, "m.room.message", text("ask Bobby")).await;
    assert_eq!(f.counts(&f.bob.user_id).await, (2, 1));
    f.send(&f.alice, "m.room.message", text("ask Robert")).await;
    assert_eq!(f.counts(&f.bob.user_id).await, (3, 2));

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
    assert_eq!(f.counts(&f.bob.user_id).await, (3, 2));
    assert_eq!(f.counts(&carol).await, (4, 0));

    // A redacted event no longer counts.
    let mut redaction = EventDraft::message("m.room.redaction", json!({"redacts": hello}));
    redaction.redacts = Some(hello);
    f.tenant
        .rooms()
        .send(&f.alice.user_id, &f.room_id, redaction, None)
        .await
        .expect("redact");
    assert_eq!(f.counts(&carol).await, (3, 0));
}

/// Events that most members get alike are stored as one row for the room (see the unit
/// tests of the stored form); members who join later, leave, or mute the room count right.
#[tokio::test]
async fn room_wide_notifications_count_for_the_members_they_are_for() {
    let f = fixture().await;
    let message = "m.room.message";
    f.send(&f.alice, message, text("hello")).await;
    let mention = json!({"msgtype": "m.text", "body": "hi B",
        "m.mentions": {"user_ids": [f.bob.user_id]}});
    f.send(&f.alice, message, mention.clone()).await;
    let notice = json!({"msgtype": "m.notice", "body": "bot"});
    f.send(&f.alice, message, notice).await;

    // Two more members: a mention is a room row with Bob's highlight as his own row.
    let dave = support::authed(&f.tenant, "dave", Some("Dave")).await;
    let erin = support::authed(&f.tenant, "erin", Some("Erin")).await;
    for user in [&dave, &erin] {
        f.tenant
            .rooms()
            .join(&user.user_id, &f.room_id, &[], None)
            .await
            .expect("join");
    }
    f.send(&f.alice, message, mention).await;
    // Bob mutes the room: his own row says the room's is not for him.
    let mute = NewPushRule::Room(NewSimplePushRule::new(f.room_id.clone(), vec![]));
    f.tenant
        .push_rules()
        .set_rule(&f.bob, mute, None, None)
        .await
        .expect("mute");
    f.send(&f.alice, message, text("hello")).await;

    // Bob has his highlights, Carol everything but the notice, and Dave and Erin nothing
    // from before they joined.
    assert_eq!(f.counts(&f.bob.user_id).await, (3, 2));
    assert_eq!(f.counts(&f.carol.user_id).await, (4, 0));
    assert_eq!(f.counts(&dave.user_id).await, (2, 0));
    assert_eq!(f.counts(&erin.user_id).await, (2, 0));

    // Dave leaves and comes back: what notified him before counts no more.
    f.tenant
        .rooms()
        .leave(&dave.user_id, &f.room_id, None)
        .await
        .expect("leave");
    f.tenant
        .rooms()
        .join(&dave.user_id, &f.room_id, &[], None)
        .await
        .expect("rejoin");
    assert_eq!(f.counts(&dave.user_id).await, (0, 0));
    f.send(&f.alice, message, text("welcome back")).await;
    assert_eq!(f.counts(&dave.user_id).await, (1, 0));
}

#[tokio::test]
async fn unread_counts_follow_read_receipts() {
    let f = fixture().await;
    let first = f.send(&f.alice, "m.room.message", text("one")).await;
    let mention = json!({"msgtype": "m.text", "body": "two",
        "m.mentions": {"user_ids": [f.bob.user_id]}});
    f.send(&f.alice, "m.room.message", mention).await;
    let third = f.send(&f.alice, "m.room.message", text("three")).await;
    assert_eq!(f.counts(&f.bob.user_id).await, (3, 1));
    f.tenant
        .user_data()
        .receipt(&f.bob, &f.room_id, "m.read", &first, None)
        .await
        .expect("receipt");
    assert_eq!(f.counts(&f.bob.user_id).await, (2, 1));
    f.tenant
        .user_data()
        .receipt(&f.bob, &f.room_id, "m.read.private", &third, None)
        .await
        .expect("receipt");
    assert_eq!(f.counts(&f.bob.user_id).await, (0, 0));
    // Alice sent them all: nothing is unread for her.
    let alice: OwnedUserId = f.alice.user_id.clone();
    assert_eq!(f.counts(&alice).await, (0, 0));
}
