//! What a user tells a room about their reading (spec: "Typing notifications", "Receipts",
//! "Fully read markers").

use ruma::api::client::read_marker::set_read_marker;
use ruma::api::client::receipt::create_receipt;
use ruma::api::client::typing::create_typing_event;
use ruma::api::client::typing::create_typing_event::v3::Typing;
use ruma::events::receipt::ReceiptThread;

use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<create_typing_event::v3::Request, _, _>(router, create_typing_event);
    let router = route::<create_receipt::v3::Request, _, _>(router, create_receipt);
    route::<set_read_marker::v3::Request, _, _>(router, set_read_marker)
}

fn forbidden(message: impl Into<String>) -> HttpError {
    HttpError::new(http::StatusCode::FORBIDDEN, "M_FORBIDDEN", message)
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}`
async fn create_typing_event(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<create_typing_event::v3::Request>,
) -> Result<RumaResponse<create_typing_event::v3::Response>> {
    if req.user_id != user.user_id {
        return Err(forbidden("You can only set your own typing state"));
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
