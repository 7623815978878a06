//! Reporting content (spec: "Reporting content"): events, rooms and users reported to the
//! tenant's admins. Named after ruma's `reporting` module, which has the user report; ruma
//! keeps the event and room reports in `room` (`report_content`, `report_room`), gathered here
//! since the spec describes the three together.
//!
//! The event report reads its body itself: ruma's request has no `score`, which Synapse still
//! checks and keeps (its admin API and Ketesa show it).

use ruma::api::client::reporting::report_user;
use ruma::api::client::room::{report_content, report_room};
use ruma::{OwnedEventId, OwnedRoomId};
use serde_json::{Map, Value};

use crate::admin::json::{JsonObject, as_int};
use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::extract::Path;
use crate::routes::{AppRouter, route};
use crate::ruma::{BodyFix, RumaResponse, RumaWith};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<report_content::v3::Request, _, _>(router, report_content);
    let router = route::<report_room::v3::Request, _, _>(router, report_room);
    route::<report_user::v3::Request, _, _>(router, report_user)
}

/// `POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}`
async fn report_content(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Path((room_id, event_id)): Path<(OwnedRoomId, OwnedEventId)>,
    JsonObject(body): JsonObject,
) -> Result<RumaResponse<report_content::v3::Response>> {
    let reason = match body.get("reason") {
        None => None,
        Some(Value::String(reason)) => Some(reason.clone()),
        Some(_) => return Err(HttpError::bad_json("Param 'reason' must be a string")),
    };
    let score = match body.get("score") {
        None => None,
        Some(value) => Some(
            as_int(value).ok_or_else(|| HttpError::bad_json("Param 'score' must be an integer"))?,
        ),
    };
    tenant
        .reports()
        .report_event(&user, &room_id, &event_id, reason, score)
        .await?;
    Ok(report_content::v3::Response::new().into())
}

/// `reason` is a required string (Matrix 1.14), where ruma reads a missing one as empty; the
/// errcodes are Synapse's (`M_MISSING_PARAM` when absent, `M_BAD_JSON` when no string).
struct ReasonRequired;

impl BodyFix for ReasonRequired {
    fn fix(body: &mut Map<String, Value>) -> Result<()> {
        match body.get("reason") {
            Some(Value::String(_)) => Ok(()),
            Some(_) => Err(HttpError::bad_json(
                "reason: Input should be a valid string",
            )),
            None => Err(HttpError::missing_param("reason: Field required")),
        }
    }
}

/// `POST /_matrix/client/v3/rooms/{roomId}/report`
async fn report_room(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    RumaWith(req, _): RumaWith<report_room::v3::Request, ReasonRequired>,
) -> Result<RumaResponse<report_room::v3::Response>> {
    tenant
        .reports()
        .report_room(&user, &req.room_id, req.reason)
        .await?;
    Ok(report_room::v3::Response::new().into())
}

/// `POST /_matrix/client/v3/users/{userId}/report`
async fn report_user(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    RumaWith(req, _): RumaWith<report_user::v3::Request, ReasonRequired>,
) -> Result<RumaResponse<report_user::v3::Response>> {
    tenant
        .reports()
        .report_user(&user, &req.user_id, req.reason)
        .await?;
    Ok(report_user::v3::Response::new().into())
}
