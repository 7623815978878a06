//! `register` and `login`: account creation and password login, one request after the other,
//! so the figures are per-request latency without queueing on the server.

use std::time::Instant;

use serde_json::json;

use super::{Ctx, PASSWORD, measured, register_users, warm_up};
use crate::report::Outcome;

pub async fn register(ctx: &Ctx, users: u32) -> anyhow::Result<Outcome> {
    let bound = ctx.bound();
    let mut out = Outcome::new("register", json!({"users": users}));
    warm_up(&ctx.hs, 1, bound).await?;
    let start = Instant::now();
    for i in 0..users {
        if bound.expired() {
            out.extra("stopped_by_time_bound", true);
            break;
        }
        let localpart = ctx.localpart("r", i);
        measured(&mut out.rec, bound, || {
            ctx.hs.register(&localpart, PASSWORD, ctx.token())
        })
        .await;
    }
    out.duration = start.elapsed();
    let flow = if ctx.token().is_some() {
        "m.login.registration_token"
    } else {
        "m.login.dummy"
    };
    out.extra("uia_stage", flow);
    out.extra(
        "note",
        "latency = every round trip of the UIA flow (usually 2)",
    );
    Ok(out)
}

pub async fn login(ctx: &Ctx, users: u32) -> anyhow::Result<Outcome> {
    let bound = ctx.bound();
    let mut out = Outcome::new("login", json!({"users": users}));
    let sessions = register_users(ctx, "l", users, bound).await?;
    warm_up(&ctx.hs, 1, bound).await?;
    let start = Instant::now();
    for session in &sessions {
        if bound.expired() {
            out.extra("stopped_by_time_bound", true);
            break;
        }
        measured(&mut out.rec, bound, || {
            ctx.hs.login(&session.user_id, PASSWORD)
        })
        .await;
    }
    out.duration = start.elapsed();
    Ok(out)
}
