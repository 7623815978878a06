//! `neighbours`: how much one tenant flooding the server slows down another. The quiet tenant
//! (the `--url`/`--host` one) runs the `fanout` rounds alone, then again while a noisy tenant on
//! the same listener (`--noisy-host`, open registration) is flooded with sends, initial syncs
//! and registrations. The result is the flooded run, with the quiet run's figures and the p99
//! ratio beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Bound, Ctx, PASSWORD, fanout, register_users, setup};
use crate::cli::NeighboursArgs;
use crate::client::{Homeserver, Session, SyncQuery};
use crate::report::Outcome;

/// The flood runs this long before the quiet tenant's rounds start, so they meet it at full
/// strength.
const WARM_UP: Duration = Duration::from_secs(1);

/// What the flood got done while it ran.
#[derive(Default)]
struct Flooded {
    sends: AtomicU64,
    syncs: AtomicU64,
    registrations: AtomicU64,
    errors: AtomicU64,
}

pub async fn neighbours(ctx: &Ctx, args: &NeighboursArgs) -> anyhow::Result<Outcome> {
    let quiet = fanout::fanout(ctx, args.rounds, args.settle_ms, 0).await?;
    let noisy = Ctx {
        hs: ctx.hs.for_host(&args.noisy_host)?,
        registration_token: None,
        prefix: format!("{}n", ctx.prefix),
        max: ctx.max,
    };
    let bound = ctx.bound();
    let senders = register_users(&noisy, "ns", args.flood_senders, bound).await?;
    let syncers = register_users(&noisy, "ny", args.flood_syncers, bound).await?;
    let rooms = rooms_of(&noisy.hs, &senders, &syncers, bound).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let flooded = Arc::new(Flooded::default());
    let mut tasks = Vec::new();
    for (i, (sender, room_id)) in senders.into_iter().zip(rooms).enumerate() {
        let flood = sender_flood(
            noisy.clone(),
            sender,
            room_id,
            i,
            stop.clone(),
            flooded.clone(),
        );
        tasks.push(tokio::spawn(flood));
    }
    for syncer in syncers {
        let flood = sync_flood(noisy.hs.clone(), syncer, stop.clone(), flooded.clone());
        tasks.push(tokio::spawn(flood));
    }
    for worker in 0..args.flood_registrations {
        let flood = registration_flood(noisy.clone(), worker, stop.clone(), flooded.clone());
        tasks.push(tokio::spawn(flood));
    }
    tokio::time::sleep(WARM_UP).await;
    let start = Instant::now();
    let counted = |flooded: &Flooded| {
        [
            flooded.sends.load(Ordering::Relaxed),
            flooded.syncs.load(Ordering::Relaxed),
            flooded.registrations.load(Ordering::Relaxed),
        ]
    };
    let before = counted(&flooded);
    // The same rounds with users of their own (the quiet run's names are taken).
    let again = Ctx {
        prefix: format!("{}f", ctx.prefix),
        ..ctx.clone()
    };
    let mut out = fanout::fanout(&again, args.rounds, args.settle_ms, 0).await?;
    let [sends, syncs, registrations] =
        std::array::from_fn::<u64, 3, _>(|i| counted(&flooded)[i] - before[i]);
    let seconds = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.abort();
    }

    out.scenario = "neighbours".into();
    out.params
        .insert("noisy_host".into(), json!(args.noisy_host));
    out.params
        .insert("flood_senders".into(), json!(args.flood_senders));
    out.params
        .insert("flood_syncers".into(), json!(args.flood_syncers));
    out.params.insert(
        "flood_registrations".into(),
        json!(args.flood_registrations),
    );
    let (calm, stormy) = (quiet.rec.summary(), out.rec.summary());
    out.extra("quiet_p50_ms", calm.p50);
    out.extra("quiet_p99_ms", calm.p99);
    out.extra("p99_ratio", ratio(stormy.p99, calm.p99));
    out.extra("p50_ratio", ratio(stormy.p50, calm.p50));
    out.extra("noisy_sends_per_s", sends as f64 / seconds);
    out.extra("noisy_syncs_per_s", syncs as f64 / seconds);
    out.extra("noisy_registrations_per_s", registrations as f64 / seconds);
    out.extra("noisy_errors", flooded.errors.load(Ordering::Relaxed));
    out.extra(
        "note",
        "latency = the quiet tenant's fanout (send to long-poll return) while the noisy tenant is flooded; quiet_* = the same rounds before the flood",
    );
    Ok(out)
}

/// `None` when either run has no figure (no round succeeded).
fn ratio(flooded: Option<f64>, quiet: Option<f64>) -> Option<f64> {
    match (flooded, quiet) {
        (Some(flooded), Some(quiet)) if quiet > 0.0 => Some(flooded / quiet),
        _ => None,
    }
}

/// A public room per sender, which every syncer joins: their initial syncs then carry the
/// senders' timelines.
async fn rooms_of(
    hs: &Homeserver,
    senders: &[Session],
    syncers: &[Session],
    bound: Bound,
) -> anyhow::Result<Vec<String>> {
    let body = json!({"preset": "public_chat", "name": "noisy"});
    let mut rooms = Vec::with_capacity(senders.len());
    for sender in senders {
        let room_id = setup("a noisy room", bound, || {
            hs.create_room(&sender.access_token, &body)
        })
        .await?;
        for syncer in syncers {
            setup("a syncer joins", bound, || {
                hs.join(&syncer.access_token, &room_id)
            })
            .await?;
        }
        rooms.push(room_id);
    }
    Ok(rooms)
}

async fn sender_flood(
    ctx: Ctx,
    sender: Session,
    room_id: String,
    task: usize,
    stop: Arc<AtomicBool>,
    flooded: Arc<Flooded>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let txn_id = format!("{}-noisy-{task}-{n}", ctx.prefix);
        let sent = ctx
            .hs
            .send_text(&sender.access_token, &room_id, &txn_id, "noise")
            .await;
        count(&flooded, sent.is_ok(), &flooded.sends);
    }
}

async fn sync_flood(hs: Homeserver, syncer: Session, stop: Arc<AtomicBool>, flooded: Arc<Flooded>) {
    let initial = SyncQuery {
        timeout_ms: Some(0),
        ..SyncQuery::default()
    };
    while !stop.load(Ordering::Relaxed) {
        let synced = hs.sync(&syncer.access_token, &initial).await;
        count(&flooded, synced.is_ok(), &flooded.syncs);
    }
}

async fn registration_flood(ctx: Ctx, worker: u32, stop: Arc<AtomicBool>, flooded: Arc<Flooded>) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let localpart = ctx.localpart(&format!("nr{worker}x"), n);
        let registered = ctx.hs.register(&localpart, PASSWORD, None).await;
        count(&flooded, registered.is_ok(), &flooded.registrations);
    }
}

fn count(flooded: &Flooded, ok: bool, done: &AtomicU64) {
    if ok {
        done.fetch_add(1, Ordering::Relaxed);
    } else {
        flooded.errors.fetch_add(1, Ordering::Relaxed);
    }
}
