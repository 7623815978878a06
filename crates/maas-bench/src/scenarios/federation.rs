//! `federation`: events per second delivered from one homeserver to another. A user of the
//! server under test (`--url`, `--host`) creates a public room, a user of the peer
//! (`--peer-url`, `--peer-host`) joins it by alias over federation, then C senders of the
//! first server send K messages in total while the peer's user long-polls `/sync` until every
//! one arrived. Throughput is K over the time from the first send to the last arrival; the
//! recorded latencies are the sends'. Works for any pair: maas tenants of one process
//! (in-process federation), two maas processes, two Synapses.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use super::{Ctx, WorkQueue, measured, merged, register_users, setup, spawn_all, warm_up};
use crate::cli::{FederationArgs, loopback_url};
use crate::client::{Homeserver, SyncQuery};
use crate::report::Outcome;
use crate::stats::Recorder;

/// The receiver's long-poll; a sync that brings nothing new just polls again.
const LONG_POLL_MS: u64 = 10_000;
/// Enough timeline per sync that a burst never arrives as a gap.
const TIMELINE_LIMIT: u32 = 10_000;

pub async fn federation(ctx: &Ctx, args: &FederationArgs) -> anyhow::Result<Outcome> {
    let bound = ctx.bound();
    let params = json!({"messages": args.messages, "concurrency": args.concurrency});
    let mut out = Outcome::new("federation", params);
    let peer_url = loopback_url(&args.peer_url).context("--peer-url")?;
    let peer = Ctx {
        hs: Homeserver::new(peer_url, args.peer_host.as_deref(), 4)?,
        ..ctx.clone()
    };
    let senders = register_users(ctx, "fs", args.concurrency, bound).await?;
    let receivers = register_users(&peer, "fr", 1, bound).await?;
    let (Some(creator), Some(receiver)) = (senders.first(), receivers.first()) else {
        anyhow::bail!("no users");
    };
    let alias = format!("bench_fed_{}", ctx.prefix);
    let body =
        json!({"preset": "public_chat", "name": "bench federation", "room_alias_name": alias});
    let room_id = setup("create the room", bound, || {
        ctx.hs.create_room(&creator.access_token, &body)
    })
    .await?;
    for sender in &senders[1..] {
        setup("join the room", bound, || {
            ctx.hs.join(&sender.access_token, &room_id)
        })
        .await?;
    }
    let server_name = creator
        .user_id
        .split_once(':')
        .map(|(_, server)| server.to_owned())
        .context("the creator's user id names no server")?;
    let full_alias = format!("#{alias}:{server_name}");
    setup("join the room over federation", bound, || {
        peer.hs.join(&receiver.access_token, &full_alias)
    })
    .await?;
    let filter = json!({"room": {"timeline": {"limit": TIMELINE_LIMIT}}}).to_string();
    let first_query = SyncQuery {
        filter: Some(filter.clone()),
        ..SyncQuery::default()
    };
    let first = setup("the receiver's first sync", bound, || {
        peer.hs.sync(&receiver.access_token, &first_query)
    })
    .await?;
    warm_up(&ctx.hs, args.concurrency, bound).await?;

    let queue = WorkQueue::new(args.messages, bound);
    let start = Instant::now();
    let workers = senders.into_iter().enumerate().map(|(task, sender)| {
        let (hs, queue, room_id) = (ctx.hs.clone(), queue.clone(), room_id.clone());
        let txn_prefix = format!("{}-fed-{task}", ctx.prefix);
        async move {
            let mut rec = Recorder::default();
            let mut sent = Vec::new();
            while let Some(i) = queue.take() {
                let txn_id = format!("{txn_prefix}-{i}");
                let text = format!("bench federation {i}");
                if let Some(timed) = measured(&mut rec, bound, || {
                    hs.send_text(&sender.access_token, &room_id, &txn_id, &text)
                })
                .await
                {
                    sent.push(timed.value);
                }
            }
            (rec, sent)
        }
    });
    let receiving = tokio::spawn(receive(
        peer.hs.clone(),
        receiver.access_token.clone(),
        first.next_batch,
        filter,
        args.messages,
        bound,
    ));
    let (recs, sent): (Vec<Recorder>, Vec<Vec<String>>) =
        spawn_all(workers).await?.into_iter().unzip();
    out.rec = merged(recs);
    let sent: HashSet<String> = sent.into_iter().flatten().collect();
    let arrived = receiving.await.context("the receiver")??;
    out.duration = arrived.last_arrival.saturating_duration_since(start);
    let delivered = arrived.ids.intersection(&sent).count();
    out.extra("delivered", delivered);
    out.extra("send_seconds", start.elapsed().as_secs_f64());
    if delivered < sent.len() {
        out.extra("missing", sent.len() - delivered);
    }
    if queue.truncated() {
        out.extra("stopped_by_time_bound", true);
    }
    Ok(out)
}

/// What the receiver saw: every timeline event id, and when the last of `expected` came.
struct Arrived {
    ids: HashSet<String>,
    last_arrival: Instant,
}

/// Long-polls until `expected` events arrived (the room's own events besides the messages
/// are counted too, so it may stop a little early) or the bound passes.
async fn receive(
    hs: Homeserver,
    token: String,
    mut since: String,
    filter: String,
    expected: u32,
    bound: super::Bound,
) -> anyhow::Result<Arrived> {
    let mut ids = HashSet::new();
    let mut last_arrival = Instant::now();
    let expected = usize::try_from(expected).unwrap_or(usize::MAX);
    while ids.len() < expected && !bound.expired() {
        let query = SyncQuery {
            since: Some(since.clone()),
            timeout_ms: Some(LONG_POLL_MS),
            filter: Some(filter.clone()),
        };
        match hs.sync(&token, &query).await {
            Ok(timed) => {
                if !timed.value.event_ids.is_empty() {
                    last_arrival = Instant::now();
                }
                ids.extend(timed.value.event_ids);
                since = timed.value.next_batch;
            }
            Err(e) => {
                eprintln!("federation receiver: sync failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(Arrived { ids, last_arrival })
}
