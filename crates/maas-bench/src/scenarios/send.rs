//! `send`: C users, in one room or spread over R rooms, send K text messages in total through
//! `PUT /rooms/{id}/send/m.room.message/{txnId}`; throughput and per-message latency.

use std::time::Instant;

use serde_json::json;

use super::{Ctx, WorkQueue, measured, merged, register_users, setup, spawn_all, warm_up};
use crate::client::{Homeserver, Session};
use crate::report::Outcome;
use crate::stats::Recorder;

pub async fn send(
    ctx: &Ctx,
    messages: u32,
    concurrency: u32,
    rooms: u32,
) -> anyhow::Result<Outcome> {
    let bound = ctx.bound();
    let mut params = json!({"messages": messages, "concurrency": concurrency});
    if rooms > 1 {
        params["rooms"] = json!(rooms);
    }
    let mut out = Outcome::new("send", params);
    let senders = register_users(ctx, &format!("s{concurrency}x"), concurrency, bound).await?;
    let room_ids = spread_rooms(&ctx.hs, &senders, rooms, bound).await?;
    warm_up(&ctx.hs, concurrency, bound).await?;
    let queue = WorkQueue::new(messages, bound);
    let start = Instant::now();
    let workers = senders.into_iter().enumerate().map(|(task, sender)| {
        let room_id = room_ids[task % room_ids.len()].clone();
        let (hs, queue) = (ctx.hs.clone(), queue.clone());
        let txn_prefix = format!("{}-{task}", ctx.prefix);
        async move {
            let mut rec = Recorder::default();
            while let Some(i) = queue.take() {
                let txn_id = format!("{txn_prefix}-{i}");
                let text = format!("bench message {i}");
                measured(&mut rec, bound, || {
                    hs.send_text(&sender.access_token, &room_id, &txn_id, &text)
                })
                .await;
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

/// `rooms` public rooms, user i in room i mod `rooms` (untimed).
async fn spread_rooms(
    hs: &Homeserver,
    users: &[Session],
    rooms: u32,
    bound: super::Bound,
) -> anyhow::Result<Vec<String>> {
    let rooms = usize::try_from(rooms)
        .unwrap_or(1)
        .clamp(1, users.len().max(1));
    let mut room_ids = Vec::with_capacity(rooms);
    for r in 0..rooms {
        let members: Vec<Session> = users.iter().skip(r).step_by(rooms).cloned().collect();
        room_ids.push(shared_room(hs, &members, bound).await?);
    }
    Ok(room_ids)
}

/// A public room created by the first user and joined by the others (untimed).
async fn shared_room(
    hs: &Homeserver,
    users: &[Session],
    bound: super::Bound,
) -> anyhow::Result<String> {
    let Some((creator, others)) = users.split_first() else {
        anyhow::bail!("no users to send with");
    };
    let body = json!({"preset": "public_chat", "name": "bench send"});
    let room_id = setup("create the room", bound, || {
        hs.create_room(&creator.access_token, &body)
    })
    .await?;
    for user in others {
        setup("join the room", bound, || {
            hs.join(&user.access_token, &room_id)
        })
        .await?;
    }
    Ok(room_id)
}
