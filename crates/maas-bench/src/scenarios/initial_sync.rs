//! `initial-sync`: one user in R rooms times N initial `/sync` requests (no `since`), the
//! request a client makes on every fresh login; reports latency and response size.

use std::time::Instant;

use serde_json::json;

use super::{Ctx, WorkQueue, measured, register_users, setup, spawn_all, warm_up};
use crate::client::SyncQuery;
use crate::report::Outcome;

pub async fn initial_sync(
    ctx: &Ctx,
    rooms: u32,
    repeats: u32,
    setup_concurrency: u32,
    distinct_requests: bool,
) -> anyhow::Result<Outcome> {
    let bound = ctx.bound();
    let mut out = Outcome::new(
        "initial-sync",
        json!({"rooms": rooms, "repeats": repeats, "distinct_requests": distinct_requests}),
    );
    let user = register_users(ctx, "i", 1, bound).await?.remove(0);
    let setup_start = Instant::now();
    create_rooms(ctx, &user.access_token, rooms, setup_concurrency).await?;
    out.extra("setup_s", setup_start.elapsed().as_secs_f64());
    warm_up(&ctx.hs, 1, bound).await?;

    let mut sizes = Vec::new();
    let mut first_ms = None;
    let mut rooms_seen = None;
    let start = Instant::now();
    for i in 0..repeats {
        if bound.expired() {
            out.extra("stopped_by_time_bound", true);
            break;
        }
        let query = SyncQuery {
            filter: distinct_requests.then(|| no_op_filter(&ctx.prefix, i)),
            ..SyncQuery::default()
        };
        if let Some(sync) = measured(&mut out.rec, bound, || {
            ctx.hs.sync(&user.access_token, &query)
        })
        .await
        {
            sizes.push(sync.bytes as f64);
            first_ms.get_or_insert(sync.latency.as_secs_f64() * 1000.0);
            rooms_seen = Some(sync.value.joined_rooms);
        }
    }
    out.duration = start.elapsed();
    if !sizes.is_empty() {
        out.extra(
            "response_bytes_mean",
            sizes.iter().sum::<f64>() / sizes.len() as f64,
        );
    }
    out.extra("first_ms", first_ms);
    out.extra("joined_rooms_in_response", rooms_seen);
    if rooms_seen.is_some_and(|n| n != rooms as usize) {
        out.rec.failure(&format!(
            "initial sync listed {rooms_seen:?} joined rooms, expected {rooms}"
        ));
    }
    Ok(out)
}

/// Creates the user's rooms with a few requests in flight (untimed).
async fn create_rooms(ctx: &Ctx, token: &str, rooms: u32, concurrency: u32) -> anyhow::Result<()> {
    let bound = ctx.bound();
    let queue = WorkQueue::new(rooms, bound);
    let workers = (0..concurrency.min(rooms)).map(|_| {
        let (hs, queue, token) = (ctx.hs.clone(), queue.clone(), token.to_owned());
        async move {
            while let Some(i) = queue.take() {
                let body = json!({"preset": "private_chat", "name": format!("sync room {i}")});
                setup("create a room", bound, || hs.create_room(&token, &body)).await?;
            }
            Ok::<_, anyhow::Error>(())
        }
    });
    for worker in spawn_all(workers).await? {
        worker?;
    }
    anyhow::ensure!(
        !queue.truncated(),
        "time bound reached while creating rooms"
    );
    Ok(())
}

/// A filter that changes nothing (it hides an account-data type nobody uses) but differs per
/// request, so a server's cache of identical requests (Synapse's, when its
/// `sync_response_cache_duration` is non-zero) can't answer the repeats.
fn no_op_filter(prefix: &str, i: u32) -> String {
    json!({"account_data": {"not_types": [format!("org.maas.bench.unused.{prefix}.{i}")]}})
        .to_string()
}
