//! The room directory (spec: "Listing rooms"; ruma `directory`): which rooms the tenant
//! publishes, and the list of them, searchable and paginated.

use maas_core::Tenant;
use maas_core::rooms::directory::PublicRoomsPage;
use ruma::api::client::directory::{
    get_public_rooms, get_public_rooms_filtered, get_room_visibility, set_room_visibility,
};
use ruma::api::client::room::Visibility;
use ruma::directory::PublicRoomsChunk;
use ruma::{ServerName, UInt};
use serde_json::{Map, Value};

use crate::context::{Authed, ForTenant};
use crate::error::{HttpError, Result};
use crate::routes::{AppRouter, route};
use crate::ruma::{BodyFix, Ruma, RumaResponse, RumaWith};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_room_visibility::v3::Request, _, _>(router, get_room_visibility);
    let router = route::<set_room_visibility::v3::Request, _, _>(router, set_room_visibility);
    let router = route::<get_public_rooms::v3::Request, _, _>(router, get_public_rooms);
    route::<get_public_rooms_filtered::v3::Request, _, _>(router, get_public_rooms_filtered)
}

/// `GET /_matrix/client/v3/directory/list/room/{roomId}`
async fn get_room_visibility(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_room_visibility::v3::Request>,
) -> Result<RumaResponse<get_room_visibility::v3::Response>> {
    let visibility = if tenant.rooms().visibility(&req.room_id).await? {
        Visibility::Public
    } else {
        Visibility::Private
    };
    Ok(get_room_visibility::v3::Response::new(visibility).into())
}

/// Spec v1.15: `visibility` is optional and "Defaults to `public`"; ruma 0.16 requires it.
struct VisibilityDefaultsToPublic;

impl BodyFix for VisibilityDefaultsToPublic {
    fn fix(body: &mut Map<String, Value>) -> Result<()> {
        body.entry("visibility")
            .or_insert_with(|| Value::from(Visibility::Public.as_str()));
        Ok(())
    }
}

/// `PUT /_matrix/client/v3/directory/list/room/{roomId}`
async fn set_room_visibility(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    RumaWith(req, _): RumaWith<set_room_visibility::v3::Request, VisibilityDefaultsToPublic>,
) -> Result<RumaResponse<set_room_visibility::v3::Response>> {
    let public = match req.visibility {
        Visibility::Public => true,
        Visibility::Private => false,
        other => {
            return Err(HttpError::invalid_param(format!(
                "Unknown visibility {:?}",
                other.as_str()
            )));
        }
    };
    tenant
        .rooms()
        .set_visibility(&user, &req.room_id, public)
        .await?;
    Ok(set_room_visibility::v3::Response::new().into())
}

/// Only this server's directory can be listed until federation is available.
fn ensure_local(tenant: &Tenant, server: Option<&ServerName>) -> Result<()> {
    match server {
        Some(server) if server != tenant.server_name() => Err(HttpError::invalid_param(
            "Only this server's room directory can be listed",
        )),
        _ => Ok(()),
    }
}

fn page_limit(limit: Option<UInt>) -> Option<u32> {
    limit.map(|l| u32::try_from(l).unwrap_or(u32::MAX))
}

/// One page of the tenant's public room directory, as the `publicRooms` endpoints of clients
/// and of other servers list it.
pub(crate) async fn public_page(
    tenant: &Tenant,
    limit: Option<UInt>,
    since: Option<&str>,
    term: Option<&str>,
) -> Result<Page> {
    let found = tenant
        .rooms()
        .public_rooms(page_limit(limit), since, term)
        .await?;
    page(found)
}

/// The parts of a response the `publicRooms` endpoints (client and federation) share.
pub(crate) struct Page {
    pub(crate) chunk: Vec<PublicRoomsChunk>,
    pub(crate) next_batch: Option<String>,
    pub(crate) prev_batch: Option<String>,
    pub(crate) total: Option<UInt>,
}

fn page(page: PublicRoomsPage) -> Result<Page> {
    let chunk = page
        .chunk
        .into_iter()
        .map(serde_json::from_value::<PublicRoomsChunk>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HttpError::internal(format!("directory entry: {e}")))?;
    Ok(Page {
        chunk,
        next_batch: page.next_batch,
        prev_batch: page.prev_batch,
        total: UInt::try_from(page.total).ok(),
    })
}

/// `GET /_matrix/client/v3/publicRooms`
async fn get_public_rooms(
    ForTenant(tenant): ForTenant,
    Ruma(req): Ruma<get_public_rooms::v3::Request>,
) -> Result<RumaResponse<get_public_rooms::v3::Response>> {
    ensure_local(&tenant, req.server.as_deref())?;
    let found = public_page(&tenant, req.limit, req.since.as_deref(), None).await?;
    let mut response = get_public_rooms::v3::Response::new(found.chunk);
    response.next_batch = found.next_batch;
    response.prev_batch = found.prev_batch;
    response.total_room_count_estimate = found.total;
    Ok(response.into())
}

/// `POST /_matrix/client/v3/publicRooms`
async fn get_public_rooms_filtered(
    ForTenant(tenant): ForTenant,
    Authed(_user): Authed,
    Ruma(req): Ruma<get_public_rooms_filtered::v3::Request>,
) -> Result<RumaResponse<get_public_rooms_filtered::v3::Response>> {
    // Third-party networks (`include_all_networks`, `third_party_instance_id`) and
    // `room_types` are not filtered on: the directory lists Matrix rooms only.
    ensure_local(&tenant, req.server.as_deref())?;
    let term = req.filter.generic_search_term.as_deref();
    let found = public_page(&tenant, req.limit, req.since.as_deref(), term).await?;
    let mut response = get_public_rooms_filtered::v3::Response::new();
    response.chunk = found.chunk;
    response.next_batch = found.next_batch;
    response.prev_batch = found.prev_batch;
    response.total_room_count_estimate = found.total;
    Ok(response.into())
}
