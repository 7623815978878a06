//! `send`: C users, all in one room, send K text messages in total through
//! `PUT /rooms/{id}/send/m.room.message/{txnId}`; throughput and per-message latency.

use std::time::Instant;

use serde_json::json;

use super::{Ctx, WorkQueue, measured, merged, register_users, setup, spawn_all, warm_up};
use crate::client::{Homeserver, Session};
use crate::report::Outcome;
use crate::stats::Recorder;

pub async fn send(ctx: &Ctx, messages: u32, concurrency: u32) -> anyhow::Result<Outcome> {
    let bound = ctx.bound();
    let mut out = Outcome::new(
        "send",
        json!({"messages": messages, "concurrency": concurrency}),
    );
    let senders = register_users(ctx, &format!("s{concurrency}x"), concurrency, bound).await?;
    let room_id = shared_room(&ctx.hs, &senders, bound).await?;
    warm_up(&ctx.hs, concurrency, bound).await?;
    let queue = WorkQueue::new(messages, bound);
    let start = Instant::now();
    let workers = senders.into_iter().enumerate().map(|(task, sender)| {
        let (hs, queue, room_id) = (ctx.hs.clone(), queue.clone(), room_id.clone());
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
