//! The event pipeline: the one path every event takes into a room, local or received.
//!
//! 1. **build** ([`super::build`]): a local event becomes a signed PDU on the room's head;
//!    a received one arrives as a PDU.
//! 2. **check** ([`super::check`]): the auth rules, against the event's auth events, the state
//!    before it and the current state; redactions also need the power to redact.
//! 3. **accept** (here): what the event changes — the state after it, the membership it sets,
//!    the redaction it applies, its relation — and its position in the tenant's stream.
//! 4. **derive** ([`super::steps`]): each step of the tenant's list adds what it stores with
//!    the event (push actions today).
//! 5. **commit** ([`super::commit`]): the batch is stored in one transaction, the positions
//!    published (waking `/sync`), the senders answered and the steps told.
//!
//! Stages 1–3 run under the room's write lock ([`super::lock`]): one room's events are built
//! one after another on its head, different rooms' at the same time. Stages 4–5 run after the
//! lock is released, in the tenant's committer, so the next event of the room is built while
//! the last is stored.

use std::collections::BTreeSet;
use std::sync::Arc;

use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules;
use ruma::{EventId, OwnedEventId, OwnedServerName, OwnedUserId, RoomId, UserId};

use super::build::{self, Built};
use super::check;
use super::heads::RoomHead;
use super::lock::RoomWriter;
use super::pdu::{EventDraft, Pdu};
use super::state::{self, RoomState};
use super::steps::{Accepted, RoomStart};
use super::transactions::TxnClaim;
use super::{Rooms, rules_of};
use crate::federation::received::CheckedPdu;
use crate::store::{
    EventRecord, MembershipRecord, NewEvent, NewStateGroup, OutlierRecord, PartialStateRecord,
    Redaction, RelationRecord, RoomRecord,
};
use crate::stream::Audience;
use crate::{Error, Result, Tenant};

impl Rooms<'_> {
    /// Appends an event by `sender` to the writer's room, building on its head, and queues it
    /// for the committer; it is durable once [`RoomWriter::finish`] returns.
    pub(crate) async fn append(
        &self,
        writer: &mut RoomWriter,
        sender: &UserId,
        draft: EventDraft,
        txn: Option<TxnClaim>,
    ) -> Result<Arc<Pdu>> {
        self.append_to(writer, None, sender, draft, txn).await
    }

    /// Appends an event to a room being created, held back with the room's other first
    /// events until [`HeldEvents::release`].
    pub(crate) async fn append_held(
        &self,
        writer: &mut RoomWriter,
        held: &mut HeldEvents,
        sender: &UserId,
        draft: EventDraft,
    ) -> Result<Arc<Pdu>> {
        self.append_to(writer, Some(held), sender, draft, None)
            .await
    }

    async fn append_to(
        &self,
        writer: &mut RoomWriter,
        held: Option<&mut HeldEvents>,
        sender: &UserId,
        draft: EventDraft,
        txn: Option<TxnClaim>,
    ) -> Result<Arc<Pdu>> {
        let _turn = self.tenant.work().await?;
        let Prepared { built, before } = self.build_on_head(writer, sender, draft).await?;
        let redacted =
            check::redaction(self.tenant, &before.rules, &built.pdu, &before.state).await?;
        self.accept(writer, built, before, redacted, txn, None, held)
            .await
    }

    /// Builds and checks an event by `sender` on the writer's room without appending it: for
    /// an event another server must sign before it goes into the room (an invite of one of
    /// its users). [`Rooms::append_countersigned`] appends it, signed, while the writer still
    /// holds the room.
    pub(crate) async fn prepare(
        &self,
        writer: &RoomWriter,
        sender: &UserId,
        draft: EventDraft,
    ) -> Result<Prepared> {
        let _turn = self.tenant.work().await?;
        self.build_on_head(writer, sender, draft).await
    }

    /// An event by `sender` built on the writer's room's head and checked; the caller holds a
    /// turn.
    async fn build_on_head(
        &self,
        writer: &RoomWriter,
        sender: &UserId,
        draft: EventDraft,
    ) -> Result<Prepared> {
        let (head, epoch) = self.tenant.room_heads().get(self.tenant, writer).await?;
        let rules = rules_of(&head.room_version)?;
        let state = self
            .tenant
            .state_cache()
            .group(self.tenant.store(), head.state_group)
            .await?;
        let room_id = writer.room_id().to_owned();
        let built =
            build::event(self.tenant, &rules, &room_id, &head, &state, sender, draft).await?;
        check::well_formed(&built.pdu)?;
        check::local(&rules, &built.pdu, &state, &built.auth_pdus)?;
        Ok(Prepared {
            built,
            before: Before {
                head,
                state,
                epoch,
                rules,
                fork: None,
            },
        })
    }

    /// Appends a prepared event in the form another server signed too: the same event, with
    /// one more signature.
    pub(crate) async fn append_countersigned(
        &self,
        writer: &mut RoomWriter,
        prepared: Prepared,
        signed: CheckedPdu,
    ) -> Result<Arc<Pdu>> {
        let _turn = self.tenant.work().await?;
        let Prepared { built, before } = prepared;
        if signed.pdu.event_id != built.pdu.event_id {
            return Err(Error::Internal("the countersigned event is another".into()));
        }
        let built = Built {
            pdu: Arc::new(signed.pdu),
            canonical: signed.canonical,
            auth_pdus: built.auth_pdus,
        };
        self.accept(writer, built, before, None, None, None, None)
            .await
    }

    /// Appends an event another server sent, once it passed the first checks (format,
    /// signatures, hashes: `federation::received`), through the same check, accept and commit
    /// stages as a local event. Returns once it is durable.
    ///
    /// Its prev events must be in the room's timeline here; the caller fetches missing ones
    /// ([`Received::MissingPrevEvents`]). An event on the room's head extends it; one beside
    /// other forward extremities forks the room: the state before it is the resolution of its
    /// prev events' states, and the room's state the resolution of all extremities' (state
    /// resolution v2).
    pub(crate) async fn append_received(&self, checked: CheckedPdu) -> Result<Received> {
        self.append_received_on(checked, None).await
    }

    /// Appends a received event whose prev events stay unknown here (a gap deeper than
    /// `get_missing_events` fills), on the state before it that its origin gave
    /// (`federation::missing`): it forks the room beside the room's forward extremities.
    pub(crate) async fn append_received_across_gap(
        &self,
        checked: CheckedPdu,
        state_before: RoomState,
    ) -> Result<Received> {
        self.append_received_on(checked, Some(state_before)).await
    }

    async fn append_received_on(
        &self,
        checked: CheckedPdu,
        across_gap: Option<RoomState>,
    ) -> Result<Received> {
        let mut writer = self.tenant.room_locks().lock(&checked.pdu.room_id).await;
        let received = self
            .receive(&mut writer, checked, across_gap, false)
            .await?;
        if received == Received::Stored {
            writer.finish().await?;
        }
        Ok(received)
    }

    /// Appends an event our users missed while none of them was in the room, for the caller
    /// that holds it to join again; durable once the writer is finished. The room's state here
    /// is as old as our users' leaving (or was never whole, if they left before its members
    /// came): memberships it lacks are taken from the event's auth events.
    pub(crate) async fn append_missed(
        &self,
        writer: &mut RoomWriter,
        checked: CheckedPdu,
    ) -> Result<Received> {
        self.receive(writer, checked, None, true).await
    }

    async fn receive(
        &self,
        writer: &mut RoomWriter,
        checked: CheckedPdu,
        across_gap: Option<RoomState>,
        stale_state: bool,
    ) -> Result<Received> {
        let CheckedPdu { pdu, canonical } = checked;
        let (head, epoch) = self.tenant.room_heads().get(self.tenant, writer).await?;
        let extends = across_gap.is_none() && extends_head(&pdu, &head);
        if !extends {
            // The other extremities may still be in the committer: their states are read from
            // the store. (No turn is held while waiting.)
            self.tenant.stream().reached(head.last_stream).await;
        }
        let turn = self.tenant.work().await?;
        if self.in_timeline(&head, &pdu.event_id).await? {
            return Ok(Received::AlreadyKnown);
        }
        if across_gap.is_none() {
            let mut missing = Vec::new();
            for prev in &pdu.prev_events {
                if !self.in_timeline(&head, prev).await? {
                    missing.push(prev.clone());
                }
            }
            if !missing.is_empty() {
                return Ok(Received::MissingPrevEvents(missing));
            }
        }
        let rules = rules_of(&head.room_version)?;
        let cache = self.tenant.state_cache();
        let current = cache.group(self.tenant.store(), head.state_group).await?;
        let fork = if extends {
            None
        } else {
            let state_before = match across_gap {
                Some(given) => given,
                None => check::state_before(self.tenant, &rules, &pdu).await?,
            };
            let others = head
                .extremities
                .iter()
                .filter(|e| !pdu.prev_events.contains(&e.event_id))
                .cloned()
                .collect();
            Some(Fork {
                state_before: Arc::new(state_before),
                others,
            })
        };
        let before_state = fork.as_ref().map_or(&current, |f| &f.state_before);
        let partial = stale_state || self.tenant.partial_rooms().contains(&pdu.room_id);
        if let check::Verdict::SoftFailed(why) =
            check::received(self.tenant, &rules, &pdu, before_state, &current, partial).await?
        {
            return Ok(Received::SoftFailed(why));
        }
        let pdu = Arc::new(pdu);
        let redacted = check::redaction(self.tenant, &rules, &pdu, &current).await?;
        let built = Built {
            pdu,
            canonical,
            auth_pdus: Default::default(),
        };
        let before = Before {
            head,
            state: current,
            epoch,
            rules,
            fork,
        };
        self.accept(writer, built, before, redacted, None, None, None)
            .await?;
        drop(turn);
        Ok(Received::Stored)
    }

    /// Whether `event_id` is in the room's timeline here: on its head (maybe not committed
    /// yet) or stored with a stream position, backfilled ones below 0 included (an outlier
    /// has none).
    async fn in_timeline(&self, head: &RoomHead, event_id: &EventId) -> Result<bool> {
        if head.extremities.iter().any(|e| e.event_id == event_id) {
            return Ok(true);
        }
        let stored = self.tenant.store().event(event_id.as_str()).await?;
        Ok(stored.is_some_and(|record| record.stream != 0))
    }

    /// Appends our user's join of a room of other servers, which `send_join` accepted, on the
    /// room's state as the resident server answered it, checked by the caller
    /// (`federation::joining`). The room starts here with that state: its events are stored
    /// as outliers and its memberships with the join. `writer` holds the room, which has no
    /// joined member here. Returns the room's partial state when members were omitted.
    pub(crate) async fn append_joined(
        &self,
        writer: &mut RoomWriter,
        joined: JoinedRoom,
    ) -> Result<Option<PartialStateRecord>> {
        let _turn = self.tenant.work().await?;
        let JoinedRoom {
            join,
            room,
            state,
            state_pdus,
            outliers,
            memberships,
            partial,
            missed: _,
        } = joined;
        let rules = rules_of(&room.room_version)?;
        let cache = self.tenant.state_cache();
        let store = self.tenant.store();
        let group = cache
            .new_group(store, room.room_id.as_str(), None, &state)
            .await?;
        let mut members: Vec<OwnedUserId> = memberships
            .iter()
            .filter(|m| m.membership == "join")
            .filter_map(|m| OwnedUserId::try_from(m.user_id.as_str()).ok())
            .collect();
        members.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        for pdu in state_pdus {
            // The steps read the state before the batch storing it is written.
            cache.remember(pdu);
        }
        let known = store.room(room.room_id.as_str()).await?.is_some();
        let partial_state = partial.map(|servers| PartialStateRecord {
            room_id: room.room_id.clone(),
            join_event_id: join.pdu.event_id.to_string(),
            state_group: group.id,
            servers: servers.iter().map(ToString::to_string).collect(),
        });
        let start = RoomStart {
            room: (!known).then(|| RoomRecord {
                state_group: group.id,
                ..room.clone()
            }),
            state_group: group.clone(),
            outliers,
            memberships,
            partial_state: partial_state.clone(),
        };
        let before = Before {
            head: RoomHead {
                room_version: room.room_version,
                state_group: group.id,
                extremities: Vec::new(),
                joined: Arc::new(members),
                last_stream: 0,
            },
            state: Arc::new(state),
            epoch: self.tenant.committer().epoch(),
            rules,
            fork: None,
        };
        let built = Built {
            pdu: Arc::new(join.pdu),
            canonical: join.canonical,
            auth_pdus: Default::default(),
        };
        self.accept(writer, built, before, None, None, Some(start), None)
            .await?;
        Ok(partial_state)
    }

    /// Appends a room's `m.room.create` event (the room row and its empty state group are
    /// stored with it) and locks the new room for the events that follow. The event is held
    /// back with the room's other first events: nothing of the room is stored unless all of
    /// them pass their checks.
    pub(crate) async fn append_create(
        &self,
        creator: &UserId,
        rules: RoomVersionRules,
        room_version: &str,
        room_id: Option<&RoomId>,
        draft: EventDraft,
    ) -> Result<(RoomWriter, HeldEvents)> {
        let turn = self.tenant.work().await?;
        let built = self
            .free_create_event(&rules, room_id, creator, draft)
            .await?;
        let store = self.tenant.store();
        let state = RoomState::new();
        check::local(&rules, &built.pdu, &state, &built.auth_pdus)?;
        // No turn is held while waiting for a lock (the new room's is free anyway).
        drop(turn);
        let mut writer = self.tenant.room_locks().lock(&built.pdu.room_id).await;
        let _turn = self.tenant.work().await?;
        let cache = self.tenant.state_cache();
        let empty = NewStateGroup {
            id: cache.next_group_id(store).await?,
            room_id: built.pdu.room_id.to_string(),
            prev_group: None,
            delta: Vec::new(),
            chain_len: 0,
        };
        let room = RoomRecord {
            room_id: built.pdu.room_id.to_string(),
            room_version: room_version.to_owned(),
            creator: creator.to_string(),
            created_ts: built.pdu.origin_server_ts.get().into(),
            published: false,
            state_group: empty.id,
        };
        let before = Before {
            head: RoomHead {
                room_version: room_version.to_owned(),
                state_group: empty.id,
                extremities: Vec::new(),
                joined: Arc::default(),
                last_stream: 0,
            },
            state: Arc::new(state),
            epoch: self.tenant.committer().epoch(),
            rules,
            fork: None,
        };
        let mut held = HeldEvents::new(self.tenant);
        let start = Some(RoomStart::created(room, empty));
        self.accept(
            &mut writer,
            built,
            before,
            None,
            None,
            start,
            Some(&mut held),
        )
        .await?;
        Ok((writer, held))
    }

    /// A create event whose room id is free: one taken already (a clock that went back across
    /// a restart, for version 12 ids) moves on to the next timestamp.
    async fn free_create_event(
        &self,
        rules: &RoomVersionRules,
        room_id: Option<&RoomId>,
        creator: &UserId,
        draft: EventDraft,
    ) -> Result<Built> {
        for _ in 0..8 {
            let built =
                build::create_event(self.tenant, rules, room_id, creator, draft.clone()).await?;
            let id = &built.pdu.room_id;
            let taken = self.tenant.room_heads().contains(id)
                || self.tenant.store().room(id.as_str()).await?.is_some();
            if !taken {
                return Ok(built);
            }
        }
        Err(Error::Internal("no free room id".into()))
    }

    /// The third stage: what the checked event changes, its stream position, and the hand-over
    /// to the committer (or to `held`); the room's head moves onto the event.
    #[allow(clippy::too_many_arguments)]
    async fn accept(
        &self,
        writer: &mut RoomWriter,
        built: Built,
        before: Before,
        redacted: Option<Arc<Pdu>>,
        txn: Option<TxnClaim>,
        mut starts: Option<RoomStart>,
        held: Option<&mut HeldEvents>,
    ) -> Result<Arc<Pdu>> {
        let Before {
            mut head,
            state,
            epoch,
            rules,
            fork,
        } = before;
        let Built { pdu, canonical, .. } = built;
        let cache = self.tenant.state_cache();
        let redaction = redacted
            .map(|target| redaction_of(&rules, &target, &pdu))
            .transpose()?;
        let placed = self
            .place(&pdu, &head, state, fork, starts.is_some(), &rules)
            .await?;
        let state_after = placed.state_after;
        let position = self.tenant.stream().position(audience_of(&pdu)).await?;
        let stream = position.get();
        if let Some(start) = &mut starts {
            for membership in &mut start.memberships {
                membership.stream = stream;
            }
        }
        let membership = self.membership_of(&pdu, stream, state_after).await?;
        if let Some(m) = &membership
            && let Ok(user) = UserId::parse(&m.user_id)
        {
            head.set_membership(&user, &m.membership);
        }
        let record = EventRecord {
            event_id: pdu.event_id.to_string(),
            room_id: pdu.room_id.to_string(),
            stream,
            depth: i64::try_from(pdu.depth).unwrap_or(i64::MAX),
            event_type: pdu.kind.to_string(),
            state_key: pdu.state_key.clone(),
            sender: pdu.sender.to_string(),
            origin_server_ts: pdu.origin_server_ts.get().into(),
            pdu: canonical,
            state_before: placed.state_before,
            state_after,
            redacted_by: None,
            txn: txn.as_ref().map(|claim| claim.record().clone()),
            relation: relation_of(&pdu.content_value()),
        };
        let redacts = redaction
            .as_ref()
            .and_then(|r| OwnedEventId::try_from(r.event_id.as_str()).ok());
        let accepted = Accepted {
            new: NewEvent {
                event: record,
                extremities: placed
                    .extremities
                    .iter()
                    .map(|e| e.event_id.to_string())
                    .collect(),
                new_state_group: placed.new_state_group,
                room_state_group: placed.room_state_group,
                membership,
                redaction,
            },
            room_id: pdu.room_id.clone(),
            rules,
            members: head.joined.clone(),
            redacts: redacts.clone(),
            starts,
            state_groups: placed.groups,
        };
        match held {
            Some(held) => held.events.push((accepted, epoch, pdu.event_id.clone())),
            None => {
                let ticket = self
                    .tenant
                    .committer()
                    .enqueue(self.tenant, accepted, epoch, txn)?;
                writer.hand_over(ticket);
            }
        }
        position.hand_over();
        cache.remember(pdu.clone());
        if let Some(id) = &redacts {
            cache.forget(id);
        }
        head.state_group = placed.room_state_group;
        head.extremities = placed.extremities;
        head.last_stream = stream;
        self.tenant
            .room_heads()
            .set(self.tenant, writer, head, epoch);
        Ok(pdu)
    }

    /// Where an event goes in its room: the state before and after it, the room's state and
    /// forward extremities after it, and the state groups to store for them. On the head, the
    /// state before is the room's current state and the event becomes the only extremity; a
    /// received fork's state before was resolved from its prev events, and the room's state
    /// becomes the resolution of its state after and the other extremities' (spec: "Room
    /// State Resolution").
    async fn place(
        &self,
        pdu: &Arc<Pdu>,
        head: &RoomHead,
        current: Arc<RoomState>,
        fork: Option<Fork>,
        starts: bool,
        rules: &RoomVersionRules,
    ) -> Result<Placed> {
        let (store, cache) = (self.tenant.store(), self.tenant.state_cache());
        let room_id = pdu.room_id.as_str();
        let mut groups = Vec::new();
        let (state_before, before) = match &fork {
            Some(f) if *f.state_before != *current => {
                let group = cache
                    .new_group(store, room_id, Some(head.state_group), &f.state_before)
                    .await?;
                let id = group.id;
                groups.push(group);
                (id, f.state_before.clone())
            }
            _ => (head.state_group, current),
        };
        let (state_after, after, new_state_group) = match &pdu.state_key {
            Some(state_key) => {
                let mut after = (*before).clone();
                after.insert(
                    (pdu.kind.to_string().into(), state_key.clone()),
                    pdu.event_id.clone(),
                );
                // The state a room starts with is stored with this event, in the same batch.
                let base = (!starts).then_some(state_before);
                let group = cache.new_group(store, room_id, base, &after).await?;
                (group.id, Arc::new(after), Some(group))
            }
            None => (state_before, before, None),
        };
        let others = fork.map(|f| f.others).unwrap_or_default();
        if others.is_empty() {
            return Ok(Placed {
                state_before,
                state_after,
                new_state_group,
                room_state_group: state_after,
                extremities: vec![pdu.clone()],
                groups,
            });
        }
        let mut states = vec![after];
        for other in &others {
            let record = store.event(other.event_id.as_str()).await?.ok_or_else(|| {
                Error::Internal(format!("extremity {} is not stored", other.event_id))
            })?;
            states.push(cache.group(store, record.state_after).await?);
        }
        // Resolution reads the events of the states it resolves, this one among them: it is
        // not stored yet.
        cache.remember(pdu.clone());
        let resolved = state::resolve(cache, store, rules, states).await?;
        let group = cache
            .new_group(store, room_id, Some(head.state_group), &resolved)
            .await?;
        let room_state_group = group.id;
        groups.push(group);
        let mut extremities = others;
        extremities.push(pdu.clone());
        Ok(Placed {
            state_before,
            state_after,
            new_state_group,
            room_state_group,
            extremities,
            groups,
        })
    }

    async fn membership_of(
        &self,
        pdu: &Pdu,
        stream: i64,
        state_after: i64,
    ) -> Result<Option<MembershipRecord>> {
        if pdu.kind != TimelineEventType::RoomMember {
            return Ok(None);
        }
        let Some(target) = &pdu.state_key else {
            return Ok(None);
        };
        let membership = pdu
            .content_value()
            .get("membership")
            .and_then(|m| m.as_str())
            .unwrap_or("leave")
            .to_owned();
        let stripped_state = if membership == "invite" || membership == "knock" {
            Some(self.stripped_state(state_after).await?)
        } else {
            None
        };
        Ok(Some(MembershipRecord {
            room_id: pdu.room_id.to_string(),
            user_id: target.clone(),
            membership,
            event_id: pdu.event_id.to_string(),
            stream,
            sender: pdu.sender.to_string(),
            stripped_state,
        }))
    }

    /// The stripped state shown to invitees and knockers (spec: "Stripped state").
    async fn stripped_state(&self, group: i64) -> Result<String> {
        let state = self
            .tenant
            .state_cache()
            .group(self.tenant.store(), group)
            .await?;
        let events: Vec<serde_json::Value> = self
            .stripped_pdus(&state)
            .await?
            .iter()
            .map(|pdu| {
                serde_json::json!({
                    "type": pdu.kind.to_string(),
                    "state_key": pdu.state_key,
                    "content": pdu.content_value(),
                    "sender": pdu.sender,
                })
            })
            .collect();
        Ok(serde_json::Value::Array(events).to_string())
    }

    /// The PDUs of a room's current stripped state (a knock's answer).
    pub(crate) async fn stripped_state_of(&self, room_id: &RoomId) -> Result<Vec<Arc<Pdu>>> {
        let head = self
            .tenant
            .room_heads()
            .snapshot(self.tenant, room_id)
            .await?;
        let state = self
            .tenant
            .state_cache()
            .group(self.tenant.store(), head.state_group)
            .await?;
        self.stripped_pdus(&state).await
    }

    /// The events of `state` that make its stripped state, whole: over federation they travel
    /// as PDUs (spec v1.16 on).
    pub(crate) async fn stripped_pdus(&self, state: &RoomState) -> Result<Vec<Arc<Pdu>>> {
        let store = self.tenant.store();
        let cache = self.tenant.state_cache();
        let kinds = [
            StateEventType::RoomCreate,
            StateEventType::RoomJoinRules,
            StateEventType::RoomName,
            StateEventType::RoomAvatar,
            StateEventType::RoomCanonicalAlias,
            StateEventType::RoomEncryption,
            StateEventType::RoomTopic,
        ];
        let mut events = Vec::new();
        for kind in kinds {
            if let Some(id) = state.get(&(kind, String::new()))
                && let Some(pdu) = cache.pdu(store, id).await?
            {
                events.push(pdu);
            }
        }
        Ok(events)
    }
}

/// The first events of a room being created, accepted but not handed to the committer yet: a
/// request that creates a room is all or nothing. Dropped without [`HeldEvents::release`]
/// (an event failed its checks), they are forgotten: their positions settle, their PDUs leave
/// the cache and the room's head goes, so nothing of the room remains.
pub(crate) struct HeldEvents {
    tenant: Tenant,
    /// Each event with the committer epoch its head was built in, and its id.
    events: Vec<(Accepted, u64, OwnedEventId)>,
}

impl HeldEvents {
    fn new(tenant: &Tenant) -> Self {
        Self {
            tenant: tenant.clone(),
            events: Vec::new(),
        }
    }

    /// Hands every held event to the committer, in order; the writer waits for them.
    pub(crate) fn release(mut self, writer: &mut RoomWriter) -> Result<()> {
        for (accepted, epoch, _) in std::mem::take(&mut self.events) {
            let committer = self.tenant.committer();
            writer.hand_over(committer.enqueue(&self.tenant, accepted, epoch, None)?);
        }
        Ok(())
    }
}

impl Drop for HeldEvents {
    fn drop(&mut self) {
        let cache = self.tenant.state_cache();
        let mut room = None;
        for (accepted, _, event_id) in self.events.drain(..) {
            self.tenant.stream().settle(accepted.new.event.stream);
            cache.forget(&event_id);
            room = Some(accepted.room_id);
        }
        if let Some(room_id) = room {
            self.tenant.room_heads().forget(&self.tenant, &room_id);
        }
    }
}

/// An event built and checked on a room's head, not yet appended.
pub(crate) struct Prepared {
    built: Built,
    before: Before,
}

impl Prepared {
    pub(crate) fn pdu(&self) -> &Arc<Pdu> {
        &self.built.pdu
    }

    pub(crate) fn room_version(&self) -> &str {
        &self.before.head.room_version
    }

    pub(crate) fn rules(&self) -> &RoomVersionRules {
        &self.before.rules
    }

    /// The state the event is built on.
    pub(crate) fn state(&self) -> &RoomState {
        &self.before.state
    }
}

/// A room of other servers our user joined through `send_join`, checked, ready to start here.
pub(crate) struct JoinedRoom {
    /// Our user's join, as the resident server accepted it.
    pub(crate) join: CheckedPdu,
    /// The room's row (its state group is set here).
    pub(crate) room: RoomRecord,
    /// The state before the join.
    pub(crate) state: RoomState,
    /// The PDUs of that state.
    pub(crate) state_pdus: Vec<Arc<Pdu>>,
    /// The state's events and their auth chain, to store.
    pub(crate) outliers: Vec<OutlierRecord>,
    /// The memberships of that state.
    pub(crate) memberships: Vec<MembershipRecord>,
    /// With members omitted from that state: the servers to ask for them, the one that
    /// answered the join first.
    pub(crate) partial: Option<Vec<OwnedServerName>>,
    /// For a room we were in before: the events since our last ones, oldest first, to append
    /// before the join.
    pub(crate) missed: Vec<CheckedPdu>,
}

/// What became of a received event.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Checked and stored.
    Stored,
    /// Stored before (a retried transaction, or the event came another way).
    AlreadyKnown,
    /// Allowed by its auth events and the state before it, but not by the room's current
    /// state: kept out of the room (spec: "Soft failure").
    SoftFailed(String),
    /// Not taken: these prev events are not in the room's timeline here.
    MissingPrevEvents(Vec<OwnedEventId>),
}

/// Whether the event's prev events are exactly the room's forward extremities.
fn extends_head(pdu: &Pdu, head: &RoomHead) -> bool {
    let prev: BTreeSet<&EventId> = pdu.prev_events.iter().map(|id| &**id).collect();
    let extremities: BTreeSet<&EventId> = head.extremities.iter().map(|e| &*e.event_id).collect();
    prev == extremities
}

/// What an event is built on: the room's head and its state, the committer epoch the head
/// belongs to, and the room version's rules.
struct Before {
    head: RoomHead,
    state: Arc<RoomState>,
    epoch: u64,
    rules: RoomVersionRules,
    /// For a received event beside other forward extremities: where it stands.
    fork: Option<Fork>,
}

/// Where an accepted event goes ([`Rooms::place`]).
struct Placed {
    state_before: i64,
    state_after: i64,
    /// The group `state_after` names, when the event is a state event.
    new_state_group: Option<NewStateGroup>,
    room_state_group: i64,
    extremities: Vec<Arc<Pdu>>,
    /// Other new groups (a fork's state before it, the room's resolved state), stored first.
    groups: Vec<NewStateGroup>,
}

/// A received event that does not extend the room's head: the state before it (its prev
/// events' states resolved) and the extremities it leaves in place.
struct Fork {
    state_before: Arc<RoomState>,
    others: Vec<Arc<Pdu>>,
}

/// Who a room event's stream position concerns: the room's members, and the target of a
/// membership event, who may not be one yet.
fn audience_of(pdu: &Pdu) -> Audience {
    Audience::Room {
        room_id: pdu.room_id.to_string(),
        user: (pdu.kind == TimelineEventType::RoomMember)
            .then(|| pdu.state_key.clone())
            .flatten(),
    }
}

/// The redacted form of `target`, which `redaction` redacts (spec: "Redactions").
fn redaction_of(rules: &RoomVersionRules, target: &Pdu, redaction: &Pdu) -> Result<Redaction> {
    let redacted = ruma::canonical_json::redact(target.json.clone(), &rules.redaction, None)
        .map_err(|e| Error::Internal(format!("redaction failed: {e}")))?;
    // Whether `m.relates_to` survives depends on the room version.
    let relation = redacted
        .get("content")
        .and_then(|content| serde_json::to_value(content).ok())
        .and_then(|content| relation_of(&content));
    Ok(Redaction {
        event_id: target.event_id.to_string(),
        redacted_pdu: ruma::CanonicalJsonValue::Object(redacted).to_string(),
        redacted_by: redaction.event_id.to_string(),
        relation,
    })
}

/// The relation an event's `content` declares in `m.relates_to` (spec: "Relationships"), if
/// well formed.
pub(crate) fn relation_of(content: &serde_json::Value) -> Option<RelationRecord> {
    let relates_to = content.get("m.relates_to")?;
    Some(RelationRecord {
        rel_type: relates_to.get("rel_type")?.as_str()?.to_owned(),
        parent_event_id: relates_to.get("event_id")?.as_str()?.to_owned(),
    })
}
