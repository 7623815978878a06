//! `fanout`: delivery latency. User A keeps a long-poll `/sync` open; user B sends one message;
//! the latency is from B's send to the moment A's long-poll returns that event. B's send
//! acknowledgement latency is reported on its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Bound, Ctx, measured, register_users, setup};
use crate::client::{Homeserver, SyncQuery, SyncSummary};
use crate::report::Outcome;
use crate::stats::Recorder;

/// The long-poll timeout A asks for.
const LONG_POLL_MS: u64 = 30_000;
/// A round whose event hasn't reached A by then counts as failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(35);

/// One return of A's long-poll.
struct Polled {
    /// Which arming of the poll this answers.
    generation: u64,
    arrived: Instant,
    result: Result<SyncSummary, String>,
}

struct Poller {
    hs: Homeserver,
    token: String,
    filter: String,
    since: String,
    armed: watch::Sender<u64>,
    results: mpsc::Sender<Polled>,
    bound: Bound,
}

impl Poller {
    /// Long-polls until the scenario ends, announcing each request just before it goes out.
    async fn run(mut self) {
        let mut generation = 0;
        while !self.bound.expired() {
            generation += 1;
            let query = SyncQuery {
                since: Some(self.since.clone()),
                timeout_ms: Some(LONG_POLL_MS),
                filter: Some(self.filter.clone()),
            };
            let result = match self.hs.prepare_sync(&self.token, &query) {
                Ok(req) => {
                    self.armed.send_replace(generation);
                    self.hs.run_sync(req).await
                }
                Err(e) => Err(e),
            };
            let arrived = Instant::now();
            let failed = result.is_err();
            let result = result.map(|t| t.value).map_err(|e| e.to_string());
            if let Ok(sync) = &result {
                self.since.clone_from(&sync.next_batch);
            }
            let polled = Polled {
                generation,
                arrived,
                result,
            };
            if self.results.send(polled).await.is_err() {
                return;
            }
            if failed {
                // Don't spin on a server that refuses us.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Long-polls for one user until the scenario ends, counting the polls that returned.
async fn idle_poller(hs: Homeserver, token: String, since: String, returned: Arc<AtomicU64>) {
    let mut since = since;
    loop {
        let query = SyncQuery {
            since: Some(since.clone()),
            timeout_ms: Some(LONG_POLL_MS),
            filter: None,
        };
        match hs.sync(&token, &query).await {
            Ok(sync) => since = sync.value.next_batch,
            // Don't spin on a server that refuses us.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
        returned.fetch_add(1, Ordering::Relaxed);
    }
}

/// `n` users each in a room of their own, long-polling until the returned tasks are aborted.
async fn start_idle_pollers(
    ctx: &Ctx,
    n: u32,
    bound: Bound,
    returned: &Arc<AtomicU64>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let users = register_users(ctx, "fi", n, bound).await?;
    let body = json!({"preset": "private_chat", "name": "bench idle"});
    let initial = SyncQuery {
        timeout_ms: Some(0),
        ..SyncQuery::default()
    };
    let mut tasks = Vec::with_capacity(users.len());
    for user in users {
        setup("an idle user's room", bound, || {
            ctx.hs.create_room(&user.access_token, &body)
        })
        .await?;
        let since = setup("an idle user's first sync", bound, || {
            ctx.hs.sync(&user.access_token, &initial)
        })
        .await?
        .next_batch;
        let poll = idle_poller(ctx.hs.clone(), user.access_token, since, returned.clone());
        tasks.push(tokio::spawn(poll));
    }
    Ok(tasks)
}

pub async fn fanout(
    ctx: &Ctx,
    rounds: u32,
    settle_ms: u64,
    idle_pollers: u32,
) -> anyhow::Result<Outcome> {
    let bound = ctx.bound();
    let params = json!({"rounds": rounds, "settle_ms": settle_ms, "idle_pollers": idle_pollers});
    let mut out = Outcome::new("fanout", params);
    let idle_returned = Arc::new(AtomicU64::new(0));
    let idle = start_idle_pollers(ctx, idle_pollers, bound, &idle_returned).await?;
    let users = register_users(ctx, "f", 2, bound).await?;
    let (a, b) = (&users[0], &users[1]);
    let body = json!({"preset": "public_chat", "name": "bench fanout"});
    let room_id = setup("create the room", bound, || {
        ctx.hs.create_room(&a.access_token, &body)
    })
    .await?;
    setup("B joins", bound, || ctx.hs.join(&b.access_token, &room_id)).await?;
    let filter = timeline_filter(&room_id);
    let initial = SyncQuery {
        filter: Some(filter.clone()),
        timeout_ms: Some(0),
        ..SyncQuery::default()
    };
    let since = setup("A's first sync", bound, || {
        ctx.hs.sync(&a.access_token, &initial)
    })
    .await?
    .next_batch;

    let (armed_tx, mut armed) = watch::channel(0);
    let (results_tx, mut results) = mpsc::channel(16);
    let poller = Poller {
        hs: ctx.hs.clone(),
        token: a.access_token.clone(),
        filter,
        since,
        armed: armed_tx,
        results: results_tx,
        bound,
    };
    let poll_task = tokio::spawn(poller.run());

    let mut acks = Recorder::default();
    let mut last_generation = 0;
    let settle = Duration::from_millis(settle_ms);
    let start = Instant::now();
    for round in 0..rounds {
        if bound.expired() {
            out.extra("stopped_by_time_bound", true);
            break;
        }
        // Results nobody waited for (events other than ours) only advance the generation.
        while let Ok(stray) = results.try_recv() {
            last_generation = stray.generation;
        }
        let rearmed = armed.wait_for(|g| *g > last_generation);
        if tokio::time::timeout(DELIVERY_TIMEOUT, rearmed)
            .await
            .is_err()
        {
            out.rec.failure("A's long-poll was not re-armed in time");
            continue;
        }
        tokio::time::sleep(settle).await;
        let txn_id = format!("{}-fanout-{round}", ctx.prefix);
        let text = format!("fanout {round}");
        let sent_at = Instant::now();
        let Some(sent) = measured(&mut acks, bound, || {
            ctx.hs.send_text(&b.access_token, &room_id, &txn_id, &text)
        })
        .await
        else {
            continue;
        };
        let event_id = sent.value;
        loop {
            match tokio::time::timeout(DELIVERY_TIMEOUT, results.recv()).await {
                Ok(Some(polled)) => {
                    last_generation = polled.generation;
                    match polled.result {
                        Ok(sync) if sync.event_ids.contains(&event_id) => {
                            out.rec.ok(polled.arrived.duration_since(sent_at));
                            break;
                        }
                        Ok(_) => {}
                        Err(e) => out.rec.failure(&format!("A's /sync failed: {e}")),
                    }
                }
                Ok(None) => anyhow::bail!("A's long-poll task ended early"),
                Err(_) => {
                    out.rec.failure(&format!(
                        "{event_id} not delivered to A within {DELIVERY_TIMEOUT:?}"
                    ));
                    break;
                }
            }
        }
    }
    out.duration = start.elapsed();
    poll_task.abort();
    for task in idle {
        task.abort();
    }

    out.rec.merge_errors(&acks);
    let ack = acks.summary();
    out.extra("send_ack_ms_p50", ack.p50);
    out.extra("send_ack_ms_p95", ack.p95);
    out.extra("send_ack_ms_p99", ack.p99);
    out.extra("send_ack_ms_max", ack.max);
    out.extra("settle_ms", settle_ms);
    out.extra("idle_pollers", idle_pollers);
    // Idle long-polls have nothing to return before their timeout: each return during the
    // rounds is one the server answered for nothing (or a failure).
    out.extra("idle_polls_returned", idle_returned.load(Ordering::Relaxed));
    out.extra(
        "note",
        "latency = B's send start to A's long-poll return with the event; each round waits settle_ms after re-arming the poll; throughput = rounds/s including settle",
    );
    Ok(out)
}

/// Only the room's timeline: A's long-poll then wakes for messages, not for receipts, typing,
/// presence or account data.
fn timeline_filter(room_id: &str) -> String {
    json!({
        "presence": {"types": []},
        "account_data": {"types": []},
        "room": {
            "rooms": [room_id],
            "timeline": {"limit": 10},
            "state": {"types": []},
            "ephemeral": {"types": []},
            "account_data": {"types": []},
        },
    })
    .to_string()
}
