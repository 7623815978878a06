//! Receipts (spec: "Receipts"; ruma `receipt`): a user telling a room up to which event they
//! have read, publicly or privately, in the main timeline or in a thread.

use ruma::api::client::receipt::create_receipt;
use ruma::events::receipt::ReceiptThread;

use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<create_receipt::v3::Request, _, _>(router, create_receipt)
}

/// `POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}`
async fn create_receipt(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<create_receipt::v3::Request>,
) -> Result<RumaResponse<create_receipt::v3::Response>> {
    let thread_id = match &req.thread {
        ReceiptThread::Unthreaded => None,
        thread => Some(
            thread
                .as_str()
                .ok_or_else(|| HttpError::invalid_param("Invalid thread_id"))?,
        ),
    };
    if thread_id.is_some() && req.receipt_type.as_str() == "m.fully_read" {
        return Err(HttpError::invalid_param(
            "m.fully_read markers can't be threaded",
        ));
    }
    tenant
        .user_data()
        .receipt(
            &user,
            &req.room_id,
            req.receipt_type.as_str(),
            &req.event_id,
            thread_id,
        )
        .await?;
    Ok(create_receipt::v3::Response::new().into())
}
