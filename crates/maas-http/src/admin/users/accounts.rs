//! Accounts as a tenant's admins manage them: the user list (v2 and v3), one user's details,
//! creating and changing a user, deactivation, passwords, the admin flag, free usernames and
//! logging in as a user.

use axum::Json;
use axum::http::StatusCode;
use axum::routing::{get, post};
use maas_core::accounts::{
    Account, ExternalId, ListedUser, UserDetails, UserListQuery, UserOrder, UserUpsert,
};
use maas_core::{Error, Tenant};
use ruma::OwnedUserId;
use serde_json::{Map, Value, json};

use super::super::auth::AdminUser;
use super::super::json::{JsonObject, as_int, bad_request, require};
use super::super::query::SynapseQuery;
use super::{Admin, OptionalJsonObject, V1, V2, V3, existing, local, optional_bool, truthy};
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::extract::{Path, Query};
use crate::routes::AppRouter;

/// Users per page unless `limit` says otherwise, as Synapse.
const DEFAULT_LIMIT: u64 = 100;
/// Synapse's limit on a password an admin sets.
const MAX_PASSWORD_LEN: usize = 512;

pub(super) fn routes(router: AppRouter) -> AppRouter {
    router
        .route(&format!("{V2}/users"), get(list_users_v2))
        .route(&format!("{V3}/users"), get(list_users_v3))
        .route(
            &format!("{V2}/users/{{user_id}}"),
            get(user_details).put(upsert_user),
        )
        .route(
            &format!("{V1}/deactivate/{{user_id}}"),
            post(deactivate_user),
        )
        .route(
            &format!("{V1}/reset_password/{{user_id}}"),
            post(reset_password),
        )
        .route(
            &format!("{V1}/users/{{user_id}}/admin"),
            get(is_user_admin).put(set_user_admin),
        )
        .route(&format!("{V1}/username_available"), get(username_available))
        .route(
            &format!("{V1}/users/{{user_id}}/login"),
            post(login_as_user),
        )
}

// ---- The user list ----------------------------------------------------------------------

/// Synapse's `order_by` values, in its order, and what they sort by.
const ORDERS: [(&str, UserOrder); 11] = [
    ("name", UserOrder::Name),
    ("displayname", UserOrder::Displayname),
    ("is_guest", UserOrder::Guest),
    ("admin", UserOrder::Admin),
    ("deactivated", UserOrder::Deactivated),
    ("user_type", UserOrder::UserType),
    ("avatar_url", UserOrder::AvatarUrl),
    ("shadow_banned", UserOrder::ShadowBanned),
    ("creation_ts", UserOrder::CreationTs),
    ("last_seen_ts", UserOrder::LastSeenTs),
    ("locked", UserOrder::Locked),
];

/// The list's query as Synapse parses it; `deactivated` is the one parameter v2 and v3 read
/// differently, so it is handed in.
fn list_query(
    query: &SynapseQuery,
    deactivated: Option<bool>,
    not_user_types: Vec<String>,
) -> Result<UserListQuery> {
    let from = query.integer("from", 0)?;
    let limit = query.integer("limit", DEFAULT_LIMIT)?;
    let guests = query.boolean("guests")?.unwrap_or(true);
    let locked = query.boolean("locked")?.unwrap_or(false);
    let admins = query.boolean("admins")?;
    let names: Vec<&str> = ORDERS.iter().map(|(name, _)| *name).collect();
    let order = query.one_of("order_by", &names, "name")?;
    let order_by = ORDERS
        .iter()
        .find(|(name, _)| *name == order)
        .map_or(UserOrder::Name, |(_, order)| *order);
    Ok(UserListQuery {
        from,
        limit,
        user_id: query.string("user_id").map(str::to_owned),
        name: query.string("name").map(str::to_owned),
        guests,
        deactivated,
        locked,
        admins,
        not_user_types,
        order_by,
        descending: query.backwards(false)?,
    })
}

/// Every `not_user_type` given (the parameter may repeat).
fn not_user_types(pairs: Vec<(String, String)>) -> Vec<String> {
    pairs
        .into_iter()
        .filter(|(name, _)| name == "not_user_type")
        .map(|(_, value)| value)
        .collect()
}

/// A user as Synapse's list shows one; `creation_ts` in milliseconds here (the details
/// endpoint has it in seconds).
fn listed_user_json(tenant: &Tenant, listed: &ListedUser) -> Value {
    let account = &listed.account;
    json!({
        "name": full_id(tenant, &account.localpart),
        "user_type": account.user_type,
        "is_guest": account.guest,
        "admin": account.admin,
        "deactivated": account.deactivated,
        "shadow_banned": account.shadow_banned,
        "displayname": account.displayname,
        "avatar_url": account.avatar_url,
        "creation_ts": account.created_ts,
        "erased": account.erased,
        "last_seen_ts": listed.last_seen_ts,
        "locked": account.locked,
    })
}

fn full_id(tenant: &Tenant, localpart: &str) -> String {
    format!("@{localpart}:{}", tenant.server_name())
}

async fn list_users(tenant: &Tenant, query: UserListQuery) -> Result<Json<Value>> {
    let (users, total) = tenant.accounts().list_users(&query).await?;
    let listed: Vec<Value> = users.iter().map(|u| listed_user_json(tenant, u)).collect();
    let mut body = json!({ "users": listed, "total": total });
    // As Synapse: a next page when the window ends before the list does.
    if query.from.saturating_add(query.limit) < total {
        let next = query.from.saturating_add(users.len() as u64);
        body["next_token"] = json!(next.to_string());
    }
    Ok(Json(body))
}

/// `GET /_synapse/admin/v2/users`: `deactivated=true` includes deactivated users, otherwise
/// they are left out.
async fn list_users_v2(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    query: SynapseQuery,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>> {
    let deactivated = match query.boolean("deactivated")? {
        Some(true) => None,
        _ => Some(false),
    };
    list_users(
        &tenant,
        list_query(&query, deactivated, not_user_types(pairs))?,
    )
    .await
}

/// `GET /_synapse/admin/v3/users`: `deactivated` filters both ways, and absent it doesn't.
async fn list_users_v3(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    query: SynapseQuery,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>> {
    let deactivated = query.boolean("deactivated")?;
    list_users(
        &tenant,
        list_query(&query, deactivated, not_user_types(pairs))?,
    )
    .await
}

// ---- One user ---------------------------------------------------------------------------

/// A user's details as Synapse shows them. `creation_ts` is in seconds, as Synapse stores it
/// (its list converts to milliseconds, this endpoint doesn't); consent and application
/// services are things maas doesn't have, so always `null`.
fn details_json(tenant: &Tenant, details: &UserDetails) -> Value {
    let account: &Account = &details.account;
    let threepids: Vec<Value> = details
        .threepids
        .iter()
        .map(|t| {
            json!({
                "medium": t.medium,
                "address": t.address,
                "validated_at": t.validated_ts,
                "added_at": t.added_ts,
            })
        })
        .collect();
    let external_ids: Vec<Value> = details
        .external_ids
        .iter()
        .map(|e| json!({ "auth_provider": e.auth_provider, "external_id": e.external_id }))
        .collect();
    json!({
        "name": full_id(tenant, &account.localpart),
        "admin": account.admin,
        "deactivated": account.deactivated,
        "locked": account.locked,
        "shadow_banned": account.shadow_banned,
        "creation_ts": account.created_ts / 1000,
        "appservice_id": null,
        "consent_server_notice_sent": null,
        "consent_version": null,
        "consent_ts": null,
        "user_type": account.user_type,
        "is_guest": account.guest,
        "suspended": account.suspended,
        "displayname": account.displayname,
        "avatar_url": account.avatar_url,
        "threepids": threepids,
        "external_ids": external_ids,
        "erased": account.erased,
        "last_seen_ts": details.last_seen_ts,
    })
}

/// `GET /_synapse/admin/v2/users/{userId}`
async fn user_details(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
) -> Result<Json<Value>> {
    let localpart = local(&tenant, &user_id, "Can only look up local users")?;
    let Some(details) = tenant.accounts().user_details(localpart).await? else {
        return Err(Error::NotFound("User not found".into()).into());
    };
    Ok(Json(details_json(&tenant, &details)))
}

/// `PUT /_synapse/admin/v2/users/{userId}`: `201` with the new user, `200` with the changed
/// one.
async fn upsert_user(
    ForTenant(tenant): ForTenant,
    Admin(admin): Admin,
    Path(user_id): Path<OwnedUserId>,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<Value>)> {
    let localpart = local(
        &tenant,
        &user_id,
        "This endpoint can only be used with local users",
    )?;
    let change = upsert_from_body(&body)?;
    let result = tenant
        .accounts()
        .upsert_user(&admin, localpart, change)
        .await;
    let (created, details) = result.map_err(conflict_as_synapse)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(details_json(&tenant, &details))))
}

/// Synapse's `409` for a taken external id carries no errcode of its own (`M_UNKNOWN`).
fn conflict_as_synapse(error: Error) -> HttpError {
    match error {
        Error::Conflict(message) => HttpError::new(StatusCode::CONFLICT, "M_UNKNOWN", message),
        other => other.into(),
    }
}

/// The change a `PUT` body asks for, with Synapse's checks and wording for each field.
fn upsert_from_body(body: &Map<String, Value>) -> Result<UserUpsert> {
    let threepids = list_of_pairs(body, "threepids", ["medium", "address"])?;
    let external_ids = list_of_pairs(body, "external_ids", ["auth_provider", "external_id"])?;
    let user_type = match body.get("user_type") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(t)) => Some(Some(t.clone())),
        Some(_) => return Err(bad_request("Invalid user type")),
    };
    let admin = match body.get("admin") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(HttpError::bad_json(
                "Param 'admin' must be a boolean, if given",
            ));
        }
    };
    let password = match body.get("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.len() <= MAX_PASSWORD_LEN => Some(p.clone()),
        Some(_) => return Err(bad_request("Invalid password")),
    };
    let logout_devices = optional_bool(
        body,
        "logout_devices",
        "'logout_devices' parameter is not of type boolean",
    )?;
    let deactivated = optional_bool(
        body,
        "deactivated",
        "'deactivated' parameter is not of type boolean",
    )?;
    let locked = optional_bool(body, "locked", "'locked' parameter is not of type boolean")?;
    if deactivated == Some(true) && locked == Some(true) {
        return Err(bad_request("An user can't be deactivated and locked"));
    }
    Ok(UserUpsert {
        password,
        logout_devices: logout_devices.unwrap_or(true),
        displayname: optional_string(body, "displayname"),
        avatar_url: optional_string(body, "avatar_url"),
        threepids: threepids.map(|pairs| pairs.into_iter().collect()),
        external_ids: external_ids.map(|pairs| {
            pairs
                .into_iter()
                .map(|(auth_provider, external_id)| ExternalId {
                    auth_provider,
                    external_id,
                })
                .collect()
        }),
        admin,
        deactivated,
        locked,
        user_type,
    })
}

/// A profile field: absent is `None`, a string `Some(Some(…))`, anything else `Some(None)`
/// (a change refuses it, a creation ignores it, as Synapse).
fn optional_string(body: &Map<String, Value>, field: &str) -> Option<Option<String>> {
    body.get(field).map(|v| v.as_str().map(str::to_owned))
}

/// A list of objects with two string fields (`threepids`, `external_ids`); absent or `null`
/// is `None`. A missing field is Synapse's `Missing params`.
fn list_of_pairs(
    body: &Map<String, Value>,
    field: &str,
    keys: [&str; 2],
) -> Result<Option<Vec<(String, String)>>> {
    let items = match body.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(HttpError::invalid_param(format!(
                "'{field}' must be a list"
            )));
        }
    };
    let mut pairs = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(object) = item else {
            return Err(HttpError::invalid_param(format!(
                "'{field}' must be a list of objects"
            )));
        };
        require(object, &keys)?;
        let text = |key: &str| {
            object.get(key).and_then(Value::as_str).ok_or_else(|| {
                HttpError::invalid_param(format!("'{key}' of '{field}' must be a string"))
            })
        };
        pairs.push((text(keys[0])?.to_owned(), text(keys[1])?.to_owned()));
    }
    Ok(Some(pairs))
}

/// `POST /_synapse/admin/v1/deactivate/{userId}`. maas binds no third-party ids at identity
/// servers, so there is never one left bound: the unbind result is `success`.
async fn deactivate_user(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
    OptionalJsonObject(body): OptionalJsonObject,
) -> Result<Json<Value>> {
    let localpart = existing(
        &tenant,
        &user_id,
        "Can only deactivate local users",
        "User not found",
    )
    .await?;
    let erase = match body.get("erase") {
        None => false,
        Some(Value::Bool(erase)) => *erase,
        Some(_) => {
            return Err(HttpError::bad_json(
                "Param 'erase' must be a boolean, if given",
            ));
        }
    };
    tenant
        .accounts()
        .deactivate_by_admin(localpart, erase)
        .await?;
    Ok(Json(json!({ "id_server_unbind_result": "success" })))
}

/// `POST /_synapse/admin/v1/reset_password/{userId}`
async fn reset_password(
    ForTenant(tenant): ForTenant,
    Admin(admin): Admin,
    Path(user_id): Path<OwnedUserId>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    require(&body, &["new_password"])?;
    let Some(Value::String(password)) = body.get("new_password") else {
        return Err(bad_request("Invalid password"));
    };
    let logout_devices = optional_bool(
        &body,
        "logout_devices",
        "'logout_devices' parameter is not of type boolean",
    )?
    .unwrap_or(true);
    // Synapse answers a user of another server as one it doesn't have.
    if user_id.server_name() != tenant.server_name() {
        return Err(Error::NotFound("Unknown user".into()).into());
    }
    tenant
        .accounts()
        .reset_password_by_admin(&admin, user_id.localpart(), password, logout_devices)
        .await?;
    Ok(Json(json!({})))
}

/// `GET /_synapse/admin/v1/users/{userId}/admin`: `false` for a user the tenant doesn't
/// have, as Synapse answers.
async fn is_user_admin(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(user_id): Path<OwnedUserId>,
) -> Result<Json<Value>> {
    let localpart = local(
        &tenant,
        &user_id,
        "Only local users can be admins of this homeserver",
    )?;
    let admin = match tenant.accounts().user(localpart).await {
        Ok(account) => account.admin,
        Err(Error::NotFound(_)) => false,
        Err(e) => return Err(e.into()),
    };
    Ok(Json(json!({ "admin": admin })))
}

/// `PUT /_synapse/admin/v1/users/{userId}/admin`: `admin` is read as Python's `bool()`.
async fn set_user_admin(
    ForTenant(tenant): ForTenant,
    Admin(admin): Admin,
    Path(user_id): Path<OwnedUserId>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>> {
    require(&body, &["admin"])?;
    let localpart = local(
        &tenant,
        &user_id,
        "Only local users can be admins of this homeserver",
    )?;
    let set_to = body.get("admin").is_some_and(truthy);
    let accounts = tenant.accounts();
    accounts.existing_user(localpart, "User not found").await?;
    accounts
        .set_admin_by_admin(&admin, localpart, set_to)
        .await?;
    Ok(Json(json!({})))
}

/// `GET /_synapse/admin/v1/username_available?username=`: whatever the registration policy.
async fn username_available(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    query: SynapseQuery,
) -> Result<Json<Value>> {
    let Some(username) = query.string("username") else {
        return Err(HttpError::missing_param(
            "Missing string query parameter 'username'",
        ));
    };
    tenant.accounts().check_username_available(username).await?;
    Ok(Json(json!({ "available": true })))
}

/// `POST /_synapse/admin/v1/users/{userId}/login`: an access token to act as the user.
async fn login_as_user(
    ForTenant(tenant): ForTenant,
    Admin(admin): Admin,
    Path(user_id): Path<OwnedUserId>,
    OptionalJsonObject(body): OptionalJsonObject,
) -> Result<Json<Value>> {
    let localpart = existing(
        &tenant,
        &user_id,
        "Only local users can be logged in as",
        "User not found",
    )
    .await?;
    let valid_until_ms = match body.get("valid_until_ms") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            as_int(value)
                .ok_or_else(|| bad_request("'valid_until_ms' parameter must be an int"))?,
        ),
    };
    if admin.user_id == user_id {
        return Err(bad_request("Cannot use admin API to login as self"));
    }
    let access_token = tenant
        .accounts()
        .login_as(&admin, localpart, valid_until_ms)
        .await?;
    Ok(Json(json!({ "access_token": access_token })))
}
