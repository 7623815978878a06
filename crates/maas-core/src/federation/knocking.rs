//! Knocking on a room of other servers (spec: Server-Server API, "Knocking upon a room", the
//! knocking server's side): a resident server's `make_knock` gives a knock template, we sign it
//! and `send_knock` it; the knock is kept for our user with the stripped state the answer
//! carries, until they are invited in or withdraw it.

use ruma::api::federation::membership::{create_knock_event, prepare_knock_event};
use ruma::{OwnedServerName, RoomId, ServerName, UserId};
use serde_json::Value;

use super::invite::{keep_membership, stripped_for_clients};
use super::joining;
use super::received::CheckedPdu;
use crate::rooms::{is_supported_version, rules_of};
use crate::{Error, Result, Tenant};

/// Asks each of `servers` in turn to take `user`'s knock on `room_id` (`content`: the member
/// event's content, `membership: knock` and the user's profile), and keeps the first one
/// taken; else returns the last server's refusal.
pub(crate) async fn knock(
    tenant: &Tenant,
    servers: &[OwnedServerName],
    user: &UserId,
    room_id: &RoomId,
    content: &Value,
) -> Result<()> {
    let mut last = Error::NotFound("No known servers for this room".into());
    for server in servers {
        match knock_through(tenant, server, user, room_id, content).await {
            Ok((knock, stripped)) => {
                return keep_membership(tenant, &knock, user, "knock", Some(stripped)).await;
            }
            Err(e) => {
                tracing::info!(%room_id, %server, error = %e, "knocking through a server failed");
                last = e;
            }
        }
    }
    Err(last)
}

/// The knock `server` took, and the room's stripped state for clients.
async fn knock_through(
    tenant: &Tenant,
    server: &ServerName,
    user: &UserId,
    room_id: &RoomId,
    content: &Value,
) -> Result<(CheckedPdu, String)> {
    let mut request = prepare_knock_event::v1::Request::new(room_id.to_owned(), user.to_owned());
    request.ver = joining::supported_versions();
    let template = tenant
        .federation()
        .send_signed(tenant, server, request)
        .await?;
    let version = template.room_version;
    if !is_supported_version(&version) {
        return Err(Error::IncompatibleRoomVersion(version.to_string()));
    }
    let rules = rules_of(version.as_str())?;
    if !rules.authorization.knocking {
        return Err(Error::Forbidden(
            "This room version does not support knocking".into(),
        ));
    }
    let knock = joining::sign(tenant, &rules, room_id, user, &template.event, content).await?;
    let raw = joining::received_form(&knock.pdu)?;
    let request =
        create_knock_event::v1::Request::new(room_id.to_owned(), knock.pdu.event_id.clone(), raw);
    let answer = tenant
        .federation()
        .send_signed(tenant, server, request)
        .await?;
    let stripped = stripped_for_clients(&answer.knock_room_state).to_string();
    Ok((knock, stripped))
}
