//! `RoomStore` on a tenant's PostgreSQL schema (tables in `0002_rooms.sql`). The trait methods
//! forward to one submodule per concern, so each can be read on its own: state and counters,
//! events, memberships and aliases, per-user data.

mod events;
mod members;
mod partial_state;
mod state;
pub(super) mod sync;
mod user_data;

use async_trait::async_trait;

use super::PostgresTenantStore;
use crate::{
    AccountDataRecord, AliasRecord, Direction, EventBatch, EventRecord, MembershipRecord,
    NewStateGroup, PartialStateCompletion, PartialStateRecord, ReceiptRecord, Result, RoomRecord,
    RoomStore, StateEntry, StreamRange, TxnRecord,
};

#[async_trait]
impl RoomStore for PostgresTenantStore {
    async fn stream_reserved(&self) -> Result<i64> {
        state::stream_reserved(&self.schema).await
    }

    async fn reserve_stream(&self, up_to: i64) -> Result<()> {
        state::reserve_stream(&self.schema, up_to).await
    }

    async fn insert_room(&self, room: &RoomRecord) -> Result<()> {
        state::insert_room(&self.schema, room).await
    }

    async fn room(&self, room_id: &str) -> Result<Option<RoomRecord>> {
        state::room(&self.schema, room_id).await
    }

    async fn set_room_published(&self, room_id: &str, published: bool) -> Result<()> {
        state::set_room_published(&self.schema, room_id, published).await
    }

    async fn published_rooms(&self, since: Option<&str>, limit: u32) -> Result<Vec<RoomRecord>> {
        state::published_rooms(&self.schema, since, limit).await
    }

    async fn count_published_rooms(&self) -> Result<u64> {
        state::count_published_rooms(&self.schema).await
    }

    async fn reserve_state_groups(&self, count: i64) -> Result<i64> {
        state::reserve_state_groups(&self.schema, count).await
    }

    async fn insert_state_group(&self, group: &NewStateGroup) -> Result<()> {
        state::insert_state_group(&self.schema, group).await
    }

    async fn state_group(&self, id: i64) -> Result<Vec<StateEntry>> {
        state::state_group(&self.schema, id).await
    }

    async fn state_group_info(&self, id: i64) -> Result<Option<(Option<i64>, u32)>> {
        state::state_group_info(&self.schema, id).await
    }

    async fn persist_events(&self, batch: &EventBatch) -> Result<()> {
        events::persist_events(&self.schema, batch).await
    }

    async fn partial_state_rooms(&self) -> Result<Vec<PartialStateRecord>> {
        partial_state::partial_state_rooms(&self.schema).await
    }

    async fn complete_partial_state(&self, completion: &PartialStateCompletion) -> Result<()> {
        partial_state::complete_partial_state(&self.schema, completion).await
    }

    async fn lowest_stream(&self) -> Result<i64> {
        events::lowest_stream(&self.schema).await
    }

    async fn insert_backfilled(&self, events: &[EventRecord]) -> Result<()> {
        events::insert_backfilled(&self.schema, events).await
    }

    async fn event(&self, event_id: &str) -> Result<Option<EventRecord>> {
        events::event(&self.schema, event_id).await
    }

    async fn events(&self, event_ids: &[String]) -> Result<Vec<EventRecord>> {
        events::events(&self.schema, event_ids).await
    }

    async fn event_id_by_txn(&self, txn: &TxnRecord) -> Result<Option<String>> {
        events::event_id_by_txn(&self.schema, txn).await
    }

    async fn forward_extremities(&self, room_id: &str) -> Result<Vec<String>> {
        events::forward_extremities(&self.schema, room_id).await
    }

    async fn room_events(
        &self,
        room_id: &str,
        range: StreamRange,
        direction: Direction,
        limit: u32,
    ) -> Result<Vec<EventRecord>> {
        events::room_events(&self.schema, room_id, range, direction, limit).await
    }

    async fn last_event_at(&self, room_id: &str, stream: i64) -> Result<Option<EventRecord>> {
        events::last_event_at(&self.schema, room_id, stream).await
    }

    async fn event_by_timestamp(
        &self,
        room_id: &str,
        ts: i64,
        direction: Direction,
    ) -> Result<Option<EventRecord>> {
        events::event_by_timestamp(&self.schema, room_id, ts, direction).await
    }

    async fn rooms_with_events(
        &self,
        room_ids: &[String],
        range: StreamRange,
    ) -> Result<Vec<String>> {
        events::rooms_with_events(&self.schema, room_ids, range).await
    }

    async fn relations(
        &self,
        parent_event_id: &str,
        rel_type: Option<&str>,
        event_type: Option<&str>,
        direction: Direction,
        from: Option<i64>,
        limit: u32,
    ) -> Result<Vec<EventRecord>> {
        events::relations(
            &self.schema,
            parent_event_id,
            rel_type,
            event_type,
            direction,
            from,
            limit,
        )
        .await
    }

    async fn thread_roots(
        &self,
        room_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<EventRecord>> {
        events::thread_roots(&self.schema, room_id, before, limit).await
    }

    async fn membership(&self, room_id: &str, user_id: &str) -> Result<Option<MembershipRecord>> {
        members::membership(&self.schema, room_id, user_id).await
    }

    async fn memberships_of_user(&self, user_id: &str) -> Result<Vec<MembershipRecord>> {
        members::memberships_of_user(&self.schema, user_id).await
    }

    async fn memberships_of_user_in(
        &self,
        user_id: &str,
        range: StreamRange,
    ) -> Result<Vec<MembershipRecord>> {
        members::memberships_of_user_in(&self.schema, user_id, range).await
    }

    async fn room_members(
        &self,
        room_id: &str,
        membership: Option<&str>,
    ) -> Result<Vec<MembershipRecord>> {
        members::room_members(&self.schema, room_id, membership).await
    }

    async fn forget_room(&self, room_id: &str, user_id: &str) -> Result<()> {
        members::forget_room(&self.schema, room_id, user_id).await
    }

    async fn is_forgotten(&self, room_id: &str, user_id: &str) -> Result<bool> {
        members::is_forgotten(&self.schema, room_id, user_id).await
    }

    async fn insert_alias(&self, alias: &AliasRecord) -> Result<()> {
        members::insert_alias(&self.schema, alias).await
    }

    async fn alias(&self, alias: &str) -> Result<Option<AliasRecord>> {
        members::alias(&self.schema, alias).await
    }

    async fn delete_alias(&self, alias: &str) -> Result<bool> {
        members::delete_alias(&self.schema, alias).await
    }

    async fn aliases_of_room(&self, room_id: &str) -> Result<Vec<String>> {
        members::aliases_of_room(&self.schema, room_id).await
    }

    async fn set_account_data(&self, data: &AccountDataRecord) -> Result<()> {
        user_data::set_account_data(&self.schema, data).await
    }

    async fn account_data(
        &self,
        localpart: &str,
        room_id: Option<&str>,
        data_type: &str,
    ) -> Result<Option<AccountDataRecord>> {
        user_data::account_data(&self.schema, localpart, room_id, data_type).await
    }

    async fn account_data_in(
        &self,
        localpart: &str,
        range: StreamRange,
    ) -> Result<Vec<AccountDataRecord>> {
        user_data::account_data_in(&self.schema, localpart, range).await
    }

    async fn set_receipt(&self, receipt: &ReceiptRecord) -> Result<()> {
        user_data::set_receipt(&self.schema, receipt).await
    }

    async fn receipts_in(
        &self,
        room_ids: &[String],
        range: StreamRange,
    ) -> Result<Vec<ReceiptRecord>> {
        user_data::receipts_in(&self.schema, room_ids, range).await
    }

    async fn insert_filter(&self, localpart: &str, filter_json: &str) -> Result<String> {
        user_data::insert_filter(&self.schema, localpart, filter_json).await
    }

    async fn filter(&self, localpart: &str, filter_id: &str) -> Result<Option<String>> {
        user_data::filter(&self.schema, localpart, filter_id).await
    }
}
