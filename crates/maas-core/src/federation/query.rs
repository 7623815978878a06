//! Queries (spec: Server-Server API, "Querying for information"): profiles and room aliases,
//! answered for other servers about this tenant, and asked of other servers for our clients.

use ruma::api::federation::query::{get_profile_information, get_room_information};
use ruma::profile::ProfileFieldName;
use ruma::{OwnedMxcUri, OwnedRoomId, OwnedServerName, RoomAliasId, ServerName, UserId};
use serde_json::Value;

use crate::accounts::Profile;
use crate::{Error, Result, Tenant};

/// Answers other servers' queries about a tenant.
pub struct Queries<'t> {
    tenant: &'t Tenant,
}

impl Tenant {
    pub fn queries(&self) -> Queries<'_> {
        Queries { tenant: self }
    }
}

impl Queries<'_> {
    /// `GET /_matrix/federation/v1/query/profile`: the fields of a local user's profile, or
    /// only `field`; `M_NOT_FOUND` for unknown users and users of other servers.
    pub async fn profile(
        &self,
        origin: &ServerName,
        user_id: &UserId,
        field: Option<&ProfileFieldName>,
    ) -> Result<Vec<(String, Value)>> {
        tracing::debug!(%origin, %user_id, "profile queried over federation");
        let profile = self.tenant.accounts().local_profile(user_id).await?;
        let mut fields = Vec::new();
        let wanted = |name: &str| field.is_none_or(|f| f.as_str() == name);
        if let Some(name) = profile.displayname.filter(|_| wanted("displayname")) {
            fields.push(("displayname".to_owned(), Value::String(name)));
        }
        if let Some(url) = profile.avatar_url.filter(|_| wanted("avatar_url")) {
            fields.push(("avatar_url".to_owned(), Value::String(url.to_string())));
        }
        Ok(fields)
    }

    /// `GET /_matrix/federation/v1/query/directory`: the room of a local alias and the
    /// servers in it.
    pub async fn room_alias(
        &self,
        origin: &ServerName,
        alias: &RoomAliasId,
    ) -> Result<(OwnedRoomId, Vec<OwnedServerName>)> {
        tracing::debug!(%origin, %alias, "alias queried over federation");
        self.tenant.rooms().local_alias(alias).await
    }
}

/// The profile of another server's user, as its server tells it.
pub(crate) async fn remote_profile(tenant: &Tenant, user_id: &UserId) -> Result<Profile> {
    let request = get_profile_information::v1::Request::new(user_id.to_owned());
    let response = tenant
        .federation()
        .send_signed(tenant, user_id.server_name(), request)
        .await?;
    let text = |field: &str| response.get(field).and_then(Value::as_str);
    let avatar_url = text("avatar_url")
        .filter(|url| url.starts_with("mxc://"))
        .map(OwnedMxcUri::from);
    Ok(Profile {
        displayname: text("displayname").map(str::to_owned),
        avatar_url,
    })
}

/// The room of another server's alias, as its server tells it.
pub(crate) async fn remote_room_alias(
    tenant: &Tenant,
    alias: &RoomAliasId,
) -> Result<(OwnedRoomId, Vec<OwnedServerName>)> {
    let request = get_room_information::v1::Request::new(alias.to_owned());
    let response = tenant
        .federation()
        .send_signed(tenant, alias.server_name(), request)
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound(format!("Room alias {alias} not found")),
            other => other,
        })?;
    Ok((response.room_id, response.servers))
}
