//! Reports of events and users as the tenant's admins read them (Synapse: "Event Reports API",
//! and the user reports Synapse serves alike at `/v1/user_reports`). `synapse_admin_api` has
//! no types for these; the shapes are Synapse's. Synapse keeps room reports without an admin
//! API to read them, and so does maas.

use axum::Json;
use axum::routing::get;
use maas_core::reports::{EventReport, ReportListing, UserReport};
use serde_json::{Value, json};

use super::auth::AdminUser;
use super::query::SynapseQuery;
use crate::context::ForTenant;
use crate::error::{HttpError, Result};
use crate::extract::Path;
use crate::routes::AppRouter;

const V1: &str = "/_synapse/admin/v1";

/// Reports listed per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u64 = 100;

pub fn routes(router: AppRouter) -> AppRouter {
    router
        .route(&format!("{V1}/event_reports"), get(list_event_reports))
        .route(
            &format!("{V1}/event_reports/{{report_id}}"),
            get(get_event_report).delete(delete_event_report),
        )
        .route(&format!("{V1}/user_reports"), get(list_user_reports))
        .route(
            &format!("{V1}/user_reports/{{report_id}}"),
            get(get_user_report).delete(delete_user_report),
        )
}

/// The page and filters of a listing; `subject` is the room's (event reports) or the target's
/// (user reports) query parameter.
fn listing(query: &SynapseQuery, subject: &str, event_sender: bool) -> Result<ReportListing> {
    Ok(ReportListing {
        offset: query.integer("from", 0)?,
        limit: query.integer("limit", DEFAULT_LIMIT)?,
        newest_first: query.backwards(true)?,
        reporter: query.string("user_id").map(str::to_owned),
        subject: query.string(subject).map(str::to_owned),
        event_sender: event_sender
            .then(|| query.string("event_sender_user_id").map(str::to_owned))
            .flatten(),
    })
}

/// `{key: page, total}`, with `next_token` when the window ends before the selection does.
fn page_json(key: &str, page: Vec<Value>, total: u64, listing: &ReportListing) -> Value {
    let shown = page.len() as u64;
    let mut body = json!({ key: page, "total": total });
    if listing.offset.saturating_add(listing.limit) < total {
        body["next_token"] = json!(listing.offset + shown);
    }
    body
}

/// A report id of the path: a non-negative integer, as Python's `int()` reads it.
fn report_id(raw: &str) -> Result<Option<i64>> {
    let message = "The report_id parameter must be a string representing a positive integer.";
    let id: i128 = raw
        .trim()
        .parse()
        .map_err(|_| HttpError::invalid_param(message))?;
    if id < 0 {
        return Err(HttpError::invalid_param(message));
    }
    // Beyond what the store numbers: no such report.
    Ok(i64::try_from(id).ok())
}

fn not_found(what: &str) -> HttpError {
    maas_core::Error::NotFound(format!("{what} report not found")).into()
}

fn event_report_json(report: &EventReport) -> Value {
    json!({
        "id": report.id,
        "received_ts": report.received_ts,
        "room_id": report.room_id,
        "event_id": report.event_id,
        "user_id": report.user_id,
        "score": report.score,
        "reason": report.reason,
        "sender": report.sender,
        "canonical_alias": report.canonical_alias,
        "name": report.name,
    })
}

fn user_report_json(report: &UserReport) -> Value {
    json!({
        "id": report.id,
        "received_ts": report.received_ts,
        "target_user_id": report.target_user_id,
        "user_id": report.user_id,
        "reason": report.reason,
    })
}

/// `GET /_synapse/admin/v1/event_reports`
async fn list_event_reports(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    query: SynapseQuery,
) -> Result<Json<Value>> {
    let listing = listing(&query, "room_id", true)?;
    let page = tenant.reports().event_reports(&listing).await?;
    let reports = page.reports.iter().map(event_report_json).collect();
    Ok(Json(page_json(
        "event_reports",
        reports,
        page.total,
        &listing,
    )))
}

/// `GET /_synapse/admin/v1/event_reports/{reportId}`: with the reported event as stored
/// (`null` once it is gone).
async fn get_event_report(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>> {
    let Some(id) = report_id(&raw_id)? else {
        return Err(not_found("Event"));
    };
    let Some((report, event)) = tenant.reports().event_report(id).await? else {
        return Err(not_found("Event"));
    };
    let mut body = event_report_json(&report);
    body["event_json"] = event.unwrap_or(Value::Null);
    Ok(Json(body))
}

/// `DELETE /_synapse/admin/v1/event_reports/{reportId}`
async fn delete_event_report(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>> {
    let Some(id) = report_id(&raw_id)? else {
        return Err(not_found("Event"));
    };
    if !tenant.reports().delete_event_report(id).await? {
        return Err(not_found("Event"));
    }
    Ok(Json(json!({})))
}

/// `GET /_synapse/admin/v1/user_reports`
async fn list_user_reports(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    query: SynapseQuery,
) -> Result<Json<Value>> {
    let listing = listing(&query, "target_user_id", false)?;
    let page = tenant.reports().user_reports(&listing).await?;
    let reports = page.reports.iter().map(user_report_json).collect();
    Ok(Json(page_json(
        "user_reports",
        reports,
        page.total,
        &listing,
    )))
}

/// `GET /_synapse/admin/v1/user_reports/{reportId}`
async fn get_user_report(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>> {
    let Some(id) = report_id(&raw_id)? else {
        return Err(not_found("User"));
    };
    let Some(report) = tenant.reports().user_report(id).await? else {
        return Err(not_found("User"));
    };
    Ok(Json(user_report_json(&report)))
}

/// `DELETE /_synapse/admin/v1/user_reports/{reportId}`
async fn delete_user_report(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>> {
    let Some(id) = report_id(&raw_id)? else {
        return Err(not_found("User"));
    };
    if !tenant.reports().delete_user_report(id).await? {
        return Err(not_found("User"));
    }
    Ok(Json(json!({})))
}
