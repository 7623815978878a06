//! Push rules (spec: "Push Notifications" → "Push Rules: API"; ruma `push`): the user's ruleset,
//! and creating, deleting, enabling and re-targeting single rules. Evaluation lives in core.

use ruma::api::client::push::{
    delete_pushrule, get_pushrule, get_pushrule_actions, get_pushrule_enabled, get_pushrules_all,
    get_pushrules_global_scope, set_pushrule, set_pushrule_actions, set_pushrule_enabled,
};

use crate::context::{Authed, ForTenant};
use crate::error::Result;
use crate::routes::{AppRouter, route};
use crate::ruma::{Ruma, RumaResponse};

pub fn routes(router: AppRouter) -> AppRouter {
    let router = route::<get_pushrules_all::v3::Request, _, _>(router, get_pushrules_all);
    let router =
        route::<get_pushrules_global_scope::v3::Request, _, _>(router, get_pushrules_global_scope);
    let router = route::<get_pushrule::v3::Request, _, _>(router, get_pushrule);
    let router = route::<set_pushrule::v3::Request, _, _>(router, set_pushrule);
    let router = route::<delete_pushrule::v3::Request, _, _>(router, delete_pushrule);
    let router = route::<get_pushrule_enabled::v3::Request, _, _>(router, get_pushrule_enabled);
    let router = route::<set_pushrule_enabled::v3::Request, _, _>(router, set_pushrule_enabled);
    let router = route::<get_pushrule_actions::v3::Request, _, _>(router, get_pushrule_actions);
    route::<set_pushrule_actions::v3::Request, _, _>(router, set_pushrule_actions)
}

/// `GET /_matrix/client/v3/pushrules/`
async fn get_pushrules_all(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(_req): Ruma<get_pushrules_all::v3::Request>,
) -> Result<RumaResponse<get_pushrules_all::v3::Response>> {
    let ruleset = tenant.push_rules().rules(&user).await?;
    Ok(get_pushrules_all::v3::Response::new(ruleset).into())
}

/// `GET /_matrix/client/v3/pushrules/global/`
async fn get_pushrules_global_scope(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(_req): Ruma<get_pushrules_global_scope::v3::Request>,
) -> Result<RumaResponse<get_pushrules_global_scope::v3::Response>> {
    let ruleset = tenant.push_rules().rules(&user).await?;
    Ok(get_pushrules_global_scope::v3::Response::new(ruleset).into())
}

/// `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`
async fn get_pushrule(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_pushrule::v3::Request>,
) -> Result<RumaResponse<get_pushrule::v3::Response>> {
    let rule = tenant
        .push_rules()
        .rule(&user, &req.kind, &req.rule_id)
        .await?;
    Ok(get_pushrule::v3::Response::new(rule.into()).into())
}

/// `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`
async fn set_pushrule(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<set_pushrule::v3::Request>,
) -> Result<RumaResponse<set_pushrule::v3::Response>> {
    tenant
        .push_rules()
        .set_rule(&user, req.rule, req.before.as_deref(), req.after.as_deref())
        .await?;
    Ok(set_pushrule::v3::Response::new().into())
}

/// `DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`
async fn delete_pushrule(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<delete_pushrule::v3::Request>,
) -> Result<RumaResponse<delete_pushrule::v3::Response>> {
    tenant
        .push_rules()
        .delete_rule(&user, &req.kind, &req.rule_id)
        .await?;
    Ok(delete_pushrule::v3::Response::new().into())
}

/// `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled`
async fn get_pushrule_enabled(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_pushrule_enabled::v3::Request>,
) -> Result<RumaResponse<get_pushrule_enabled::v3::Response>> {
    let enabled = tenant
        .push_rules()
        .enabled(&user, &req.kind, &req.rule_id)
        .await?;
    Ok(get_pushrule_enabled::v3::Response::new(enabled).into())
}

/// `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled`
async fn set_pushrule_enabled(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<set_pushrule_enabled::v3::Request>,
) -> Result<RumaResponse<set_pushrule_enabled::v3::Response>> {
    tenant
        .push_rules()
        .set_enabled(&user, &req.kind, &req.rule_id, req.enabled)
        .await?;
    Ok(set_pushrule_enabled::v3::Response::new().into())
}

/// `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions`
async fn get_pushrule_actions(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<get_pushrule_actions::v3::Request>,
) -> Result<RumaResponse<get_pushrule_actions::v3::Response>> {
    let actions = tenant
        .push_rules()
        .actions(&user, &req.kind, &req.rule_id)
        .await?;
    Ok(get_pushrule_actions::v3::Response::new(actions).into())
}

/// `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions`
async fn set_pushrule_actions(
    ForTenant(tenant): ForTenant,
    Authed(user): Authed,
    Ruma(req): Ruma<set_pushrule_actions::v3::Request>,
) -> Result<RumaResponse<set_pushrule_actions::v3::Response>> {
    tenant
        .push_rules()
        .set_actions(&user, &req.kind, &req.rule_id, req.actions)
        .await?;
    Ok(set_pushrule_actions::v3::Response::new().into())
}
