//! Threads (spec: "Threading"; ruma `threads`): the thread roots of a room, all of them or those
//! the user took part in.

use maas_core::sync::{parse_token, token};
use ruma::api::client::threads::get_threads;
use ruma::{RoomId, UInt};

use super::convert::{client_events_raw, page_limit};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::extract::{Path, Query};
use crate::routes::{AppRouter, route};
use crate::ruma::RumaResponse;

pub fn routes(router: AppRouter) -> AppRouter {
    route::<get_threads::v1::Request, _, _>(router, get_threads)
}

/// The query of `/threads`, parsed here rather than by ruma: ruma 0.16 requires `include`,
/// which the spec makes optional (default `all`).
#[derive(serde::Deserialize)]
struct ThreadsQuery {
    from: Option<String>,
    #[serde(default)]
    include: Option<String>,
    limit: Option<UInt>,
}

/// `GET /_matrix/client/v1/rooms/{roomId}/threads`
async fn get_threads(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Path(room_id): Path<String>,
    Query(query): Query<ThreadsQuery>,
) -> Result<RumaResponse<get_threads::v1::Response>> {
    let room_id = RoomId::parse(&room_id).map_err(|e| HttpError::invalid_param(e.to_string()))?;
    let participated = match query.include.as_deref() {
        None | Some("all") => false,
        Some("participated") => true,
        Some(other) => return Err(HttpError::invalid_param(format!("Unknown include {other}"))),
    };
    let from = query.from.as_deref().map(parse_token).transpose()?;
    let page = tenant
        .rooms()
        .threads(
            &user.user_id,
            &room_id,
            participated,
            from,
            page_limit(query.limit),
        )
        .await?;
    let chunk = client_events_raw(&tenant, &page.chunk, &user).await?;
    let mut response = get_threads::v1::Response::new(chunk);
    response.next_batch = page.next_batch.map(token);
    Ok(response.into())
}
