//! The tenant's long admin operations (Synapse: "Show scheduled tasks").

use axum::Json;
use maas_core::rooms::tasks::TaskQuery;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::auth::AdminUser;
use crate::context::ForTenant;
use crate::error::Result;
use crate::extract::Query;

/// The filters; `job_status` is the older name of `status`, which Synapse still takes.
#[derive(Deserialize)]
pub(super) struct TasksQuery {
    action_name: Option<String>,
    resource_id: Option<String>,
    status: Option<String>,
    job_status: Option<String>,
    max_timestamp: Option<i64>,
}

/// `GET /_synapse/admin/v1/scheduled_tasks`
pub(super) async fn scheduled_tasks(
    ForTenant(tenant): ForTenant,
    _: AdminUser,
    Query(query): Query<TasksQuery>,
) -> Result<Json<Value>> {
    let filter = TaskQuery {
        action: query.action_name.filter(|a| !a.is_empty()),
        resource_id: query.resource_id,
        status: query.status.or(query.job_status).filter(|s| !s.is_empty()),
        max_timestamp: query.max_timestamp,
    };
    let tasks = tenant.rooms().admin().tasks(&filter).await?;
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|task| {
            json!({
                "id": task.id,
                "action": task.action,
                "status": task.status,
                "timestamp_ms": task.timestamp_ms,
                "resource_id": task.resource_id,
                "result": task.result,
                "error": task.error,
            })
        })
        .collect();
    Ok(Json(json!({ "scheduled_tasks": tasks })))
}
