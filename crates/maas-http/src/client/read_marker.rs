//! Fully read markers (spec: "Fully read markers"; ruma `read_marker`): where the user stopped
//! reading a room, set together with their receipts in one call.

use ruma::api::client::read_marker::set_read_marker;

use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<set_read_marker::v3::Request, _, _>(router, set_read_marker)
}

/// `POST /_matrix/client/v3/rooms/{roomId}/read_markers`
async fn set_read_marker(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<set_read_marker::v3::Request>,
) -> Result<RumaResponse<set_read_marker::v3::Response>> {
    tenant
        .user_data()
        .read_markers(
            &user,
            &req.room_id,
            req.fully_read.as_deref(),
            req.read_receipt.as_deref(),
            req.private_read_receipt.as_deref(),
        )
        .await?;
    Ok(set_read_marker::v3::Response::new().into())
}
