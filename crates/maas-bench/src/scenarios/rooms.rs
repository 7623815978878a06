//! `create-rooms` (one user, C requests in flight) and `join` (N users join one public room in
//! turn): the room-creation and membership write paths.

use std::time::Instant;

use serde_json::json;

use super::{Ctx, WorkQueue, measured, merged, register_users, setup, spawn_all, warm_up};
use crate::report::Outcome;
use crate::stats::Recorder;

pub async fn create_rooms(ctx: &Ctx, rooms: u32, concurrency: u32) -> anyhow::Result<Outcome> {
    let bound = ctx.bound();
    let mut out = Outcome::new(
        "create-rooms",
        json!({"rooms": rooms, "concurrency": concurrency}),
    );
    let creator = register_users(ctx, "c", 1, bound).await?.remove(0);
    warm_up(&ctx.hs, concurrency, bound).await?;
    let queue = WorkQueue::new(rooms, bound);
    let start = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (hs, queue, token) = (ctx.hs.clone(), queue.clone(), creator.access_token.clone());
        async move {
            let mut rec = Recorder::default();
            while let Some(i) = queue.take() {
                let body = json!({"preset": "private_chat", "name": format!("bench room {i}")});
                measured(&mut rec, bound, || hs.create_room(&token, &body)).await;
            }
            rec
        }
    });
    out.rec = merged(spawn_all(workers).await?);
    out.duration = start.elapsed();
    if queue.truncated() {
        out.extra("stopped_by_time_bound", true);
    }
    Ok(out)
}

pub async fn join(ctx: &Ctx, users: u32) -> anyhow::Result<Outcome> {
    let bound = ctx.bound();
    let mut out = Outcome::new("join", json!({"users": users}));
    let mut sessions = register_users(ctx, "j", users + 1, bound).await?;
    let creator = sessions.remove(0);
    let body = json!({"preset": "public_chat", "name": "bench join"});
    let room_id = setup("create the public room", bound, || {
        ctx.hs.create_room(&creator.access_token, &body)
    })
    .await?;
    warm_up(&ctx.hs, 1, bound).await?;
    let start = Instant::now();
    for session in &sessions {
        if bound.expired() {
            out.extra("stopped_by_time_bound", true);
            break;
        }
        measured(&mut out.rec, bound, || {
            ctx.hs.join(&session.access_token, &room_id)
        })
        .await;
    }
    out.duration = start.elapsed();
    out.extra(
        "note",
        "sequential joins; the room grows by one member each time",
    );
    Ok(out)
}
