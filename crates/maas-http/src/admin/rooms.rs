//! The tenant's rooms as its admins see them (Synapse: "Rooms Admin API", "Purge History API",
//! "Room Membership API", "Edit Room Membership API", "Show scheduled tasks").
//! `synapse_admin_api` covers only some of these, without Synapse's newer fields, so requests
//! and responses are written here after Synapse's documentation and behaviour.

mod body;
mod delete;
mod hierarchy;
mod manage;
mod read;
mod tasks;

use axum::routing::{get, post};

use crate::routes::AppRouter;

const V1: &str = "/_synapse/admin/v1";
const V2: &str = "/_synapse/admin/v2";

pub fn routes(router: AppRouter) -> AppRouter {
    let room = format!("{V1}/rooms/{{room_id}}");
    router
        .route(&format!("{V1}/rooms"), get(read::list_rooms))
        .route(&room, get(read::room_details).delete(delete::delete_room))
        .route(&format!("{room}/members"), get(read::room_members))
        .route(&format!("{room}/state"), get(read::room_state))
        .route(&format!("{room}/messages"), get(read::room_messages))
        .route(
            &format!("{room}/context/{{event_id}}"),
            get(read::room_event_context),
        )
        .route(
            &format!("{room}/timestamp_to_event"),
            get(read::timestamp_to_event),
        )
        .route(
            &format!("{room}/forward_extremities"),
            get(read::forward_extremities).delete(read::delete_forward_extremities),
        )
        .route(
            &format!("{room}/make_room_admin"),
            post(manage::make_room_admin),
        )
        .route(
            &format!("{room}/block"),
            get(manage::block_status).put(manage::set_block),
        )
        .route(&format!("{V1}/join/{{room}}"), post(manage::join_room))
        .route(
            &format!("{V2}/rooms/{{room_id}}"),
            axum::routing::delete(delete::delete_room_v2),
        )
        .route(
            &format!("{V2}/rooms/{{room_id}}/delete_status"),
            get(delete::delete_status_by_room),
        )
        .route(
            &format!("{V2}/rooms/delete_status/{{delete_id}}"),
            get(delete::delete_status_by_id),
        )
        .route(
            &format!("{V1}/purge_history/{{room_id}}"),
            post(delete::purge_history),
        )
        .route(
            &format!("{V1}/purge_history/{{room_id}}/{{event_id}}"),
            post(delete::purge_history_up_to),
        )
        .route(
            &format!("{V1}/purge_history_status/{{purge_id}}"),
            get(delete::purge_history_status),
        )
        .route(
            &format!("{V1}/scheduled_tasks"),
            get(tasks::scheduled_tasks),
        )
        .route(&format!("{room}/hierarchy"), get(hierarchy::room_hierarchy))
}
