//! `GET /_matrix/client/v3/capabilities` (spec: "Capabilities negotiation"; ruma `discovery`):
//! what this homeserver lets clients do.

use std::collections::BTreeMap;

use ruma::RoomVersionId;
use ruma::api::client::discovery::get_capabilities::v3 as get_capabilities;
use ruma::api::client::discovery::get_capabilities::v3::{
    Capabilities, RoomVersionStability, RoomVersionsCapability,
};

use crate::context::Authed;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    route::<get_capabilities::Request, _, _>(router, get_capabilities)
}

/// `GET /_matrix/client/v3/capabilities`
#[allow(deprecated)]
async fn get_capabilities(
    _: Authed,
    _: Ruma<get_capabilities::Request>,
) -> RumaResponse<get_capabilities::Response> {
    let mut capabilities = Capabilities::new();
    // Spec v1.15 still names these two; v1.16 moved them under `profile_fields`.
    capabilities.change_password.enabled = true;
    capabilities.set_displayname.enabled = true;
    capabilities.set_avatar_url.enabled = true;
    capabilities.thirdparty_id_changes.enabled = false;
    capabilities.get_login_token.enabled = false;
    capabilities.room_versions = room_versions();
    get_capabilities::Response::new(capabilities).into()
}

/// The stable room versions ruma implements; new rooms use the newest.
fn room_versions() -> RoomVersionsCapability {
    use RoomVersionId as V;
    let stable = [
        V::V1,
        V::V2,
        V::V3,
        V::V4,
        V::V5,
        V::V6,
        V::V7,
        V::V8,
        V::V9,
        V::V10,
        V::V11,
        V::V12,
    ];
    let available: BTreeMap<_, _> = stable
        .into_iter()
        .map(|v| (v, RoomVersionStability::Stable))
        .collect();
    RoomVersionsCapability::new(V::V12, available)
}
