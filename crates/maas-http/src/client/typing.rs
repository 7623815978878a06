//! Typing notifications (spec: "Typing Notifications"; ruma `typing`): a user telling a room
//! that they are typing, for a while, or no longer.

use ruma::api::client::typing::create_typing_event;
use ruma::api::client::typing::create_typing_event::v3::Typing;

use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<create_typing_event::v3::Request, _, _>(router, create_typing_event)
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}`
async fn create_typing_event(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<create_typing_event::v3::Request>,
) -> Result<RumaResponse<create_typing_event::v3::Response>> {
    if req.user_id != user.user_id {
        return Err(HttpError::forbidden(
            "You can only set your own typing state",
        ));
    }
    let timeout = match req.state {
        Typing::Yes(info) => Some(info.timeout),
        Typing::No => None,
    };
    tenant
        .set_typing(&user.user_id, &req.room_id, timeout)
        .await?;
    Ok(create_typing_event::v3::Response::new().into())
}
