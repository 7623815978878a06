//! `remote-join`: the time to join a remote room of N members. On the server under test
//! (`--url`, `--host`) N users join a public room with an alias (untimed setup, a few joins in
//! flight); then a user of the peer (`--peer-url`, `--peer-host`) joins it by alias over
//! federation, and three figures are taken per room:
//!
//! - `join_ms`: the `POST /join/{alias}` until its answer (a server with partial-state joins,
//!   MSC3706, answers before it has the room's members);
//! - `first_send_ms`: from that answer until the first `PUT /send` of the peer's user in the
//!   room was answered (a refused send is counted as an error and retried every 100 ms);
//! - `members_ms`: from starting the join until `GET /rooms/{roomId}/joined_members` on the
//!   peer lists all N + 1 members, polled (right after the join, beside the send) until it does.
//!
//! A second join from the same peer would be local there, so each room is joined once;
//! `--rooms R` repeats the whole measurement on R fresh rooms (the same N members) and reports
//! each. Setting up 10,000 members takes minutes: give `--max-seconds` accordingly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use super::{Bound, Ctx, WorkQueue, measured, register_users, setup, spawn_all};
use crate::cli::{RemoteJoinArgs, loopback_url};
use crate::client::{Homeserver, Session};
use crate::report::Outcome;
use crate::stats::Recorder;

/// Pause before asking again after a refused send or a member list still short of everyone.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

pub async fn remote_join(ctx: &Ctx, args: &RemoteJoinArgs) -> anyhow::Result<Outcome> {
    let bound = ctx.bound();
    let params = json!({"members": args.members, "rooms": args.rooms});
    let mut out = Outcome::new("remote-join", params);
    let peer_url = loopback_url(&args.peer_url).context("--peer-url")?;
    let peer = Ctx {
        hs: Homeserver::new(peer_url, args.peer_host.as_deref(), 4)?,
        ..ctx.clone()
    };
    let registering = Instant::now();
    let members = Arc::new(register_users(ctx, "rm", args.members, bound).await?);
    let joiners = register_users(&peer, "rj", args.rooms, bound).await?;
    out.extra("register_s", registering.elapsed().as_secs_f64());
    let server_name = members[0]
        .user_id
        .split_once(':')
        .map(|(_, server)| server.to_owned())
        .context("the first member's user id names no server")?;
    let expected = members.len() + 1;

    let mut runs = Vec::new();
    for (r, joiner) in joiners.iter().enumerate() {
        if bound.expired() {
            out.extra("stopped_by_time_bound", true);
            break;
        }
        let alias = format!("bench_rj_{}_{r}", ctx.prefix);
        let populating = Instant::now();
        let room_id = populate(ctx, &members, &alias, args.setup_concurrency, bound).await?;
        let setup_s = populating.elapsed().as_secs_f64();
        eprintln!(
            "remote-join: room {}/{}: {} members joined in {setup_s:.1} s; joining from the peer",
            r + 1,
            args.rooms,
            members.len()
        );
        let full_alias = format!("#{alias}:{server_name}");
        let run = join_once(&peer.hs, joiner, &full_alias, &room_id, expected, bound).await;
        out.rec.merge(run.rec);
        out.duration += run.elapsed;
        eprintln!(
            "remote-join: room {}/{}: join_ms={:?} first_send_ms={:?} members_ms={:?} (last count {})",
            r + 1,
            args.rooms,
            run.join_ms,
            run.first_send_ms,
            run.members_ms,
            run.members_seen
        );
        runs.push(json!({
            "room_id": room_id,
            "setup_s": setup_s,
            "join_ms": run.join_ms,
            "first_send_ms": run.first_send_ms,
            "members_ms": run.members_ms,
            "members_polls": run.members_polls,
            "members_seen": run.members_seen,
        }));
    }
    for key in ["join_ms", "first_send_ms", "members_ms"] {
        let values: Vec<Value> = runs.iter().map(|run| run[key].clone()).collect();
        out.extra(key, values);
    }
    out.extra("runs", runs);
    Ok(out)
}

/// The first member creates a public room with `alias`, the others join it with `concurrency`
/// joins in flight; returns the room id.
async fn populate(
    ctx: &Ctx,
    members: &Arc<Vec<Session>>,
    alias: &str,
    concurrency: u32,
    bound: Bound,
) -> anyhow::Result<String> {
    let body =
        json!({"preset": "public_chat", "name": "bench remote join", "room_alias_name": alias});
    let room_id = setup("create the room", bound, || {
        ctx.hs.create_room(&members[0].access_token, &body)
    })
    .await?;
    let others = u32::try_from(members.len() - 1).context("too many members")?;
    let queue = WorkQueue::new(others, bound);
    let workers = (0..concurrency.min(others)).map(|_| {
        let (hs, queue, members, room_id) = (
            ctx.hs.clone(),
            queue.clone(),
            members.clone(),
            room_id.clone(),
        );
        async move {
            while let Some(i) = queue.take() {
                let member = &members[i as usize + 1];
                setup("join the room", bound, || {
                    hs.join(&member.access_token, &room_id)
                })
                .await?;
            }
            Ok::<_, anyhow::Error>(())
        }
    });
    for worker in spawn_all(workers).await? {
        worker?;
    }
    anyhow::ensure!(
        !queue.truncated(),
        "time bound reached while the members joined"
    );
    Ok(room_id)
}

/// What one join from the peer measured; `None` for what didn't happen within the bound.
struct Run {
    rec: Recorder,
    join_ms: Option<f64>,
    first_send_ms: Option<f64>,
    members_ms: Option<f64>,
    members_polls: u32,
    members_seen: usize,
    /// From starting the join until the send and the member list were both done.
    elapsed: Duration,
}

async fn join_once(
    hs: &Homeserver,
    joiner: &Session,
    alias: &str,
    room_id: &str,
    expected: usize,
    bound: Bound,
) -> Run {
    let mut rec = Recorder::default();
    let start = Instant::now();
    let joined = measured(&mut rec, bound, || hs.join(&joiner.access_token, alias)).await;
    let mut run = Run {
        join_ms: joined.as_ref().map(|t| ms(t.latency)),
        rec,
        first_send_ms: None,
        members_ms: None,
        members_polls: 0,
        members_seen: 0,
        elapsed: Duration::ZERO,
    };
    if joined.is_some() {
        let ((send_rec, first_send), (members_rec, members)) = tokio::join!(
            first_send(hs, joiner, room_id, bound),
            until_members(hs, joiner, room_id, expected, start, bound),
        );
        run.rec.merge_errors(&send_rec);
        run.rec.merge_errors(&members_rec);
        run.first_send_ms = first_send.map(ms);
        run.members_ms = members.done.map(ms);
        run.members_polls = members.polls;
        run.members_seen = members.seen;
    }
    run.elapsed = start.elapsed();
    run
}

/// Sends one message until the server takes it; the time from now until it did.
async fn first_send(
    hs: &Homeserver,
    joiner: &Session,
    room_id: &str,
    bound: Bound,
) -> (Recorder, Option<Duration>) {
    let mut rec = Recorder::default();
    let start = Instant::now();
    for attempt in 0u32.. {
        let txn_id = format!("rj-first-{attempt}");
        match hs
            .send_text(
                &joiner.access_token,
                room_id,
                &txn_id,
                "hello after joining",
            )
            .await
        {
            Ok(_) => return (rec, Some(start.elapsed())),
            Err(e) => rec.error(&e),
        }
        if bound.expired() {
            break;
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    (rec, None)
}

struct Members {
    /// From the start of the join until the list was complete.
    done: Option<Duration>,
    polls: u32,
    /// Members in the last list.
    seen: usize,
}

/// Polls the peer's member list of the room until it holds `expected` members.
async fn until_members(
    hs: &Homeserver,
    joiner: &Session,
    room_id: &str,
    expected: usize,
    start: Instant,
    bound: Bound,
) -> (Recorder, Members) {
    let mut rec = Recorder::default();
    let mut members = Members {
        done: None,
        polls: 0,
        seen: 0,
    };
    while !bound.expired() {
        members.polls += 1;
        match hs.joined_members(&joiner.access_token, room_id).await {
            Ok(timed) => {
                members.seen = timed.value;
                if timed.value >= expected {
                    members.done = Some(start.elapsed());
                    break;
                }
            }
            Err(e) => rec.error(&e),
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    if members.done.is_none() {
        rec.failure(&format!(
            "the peer listed {} of {expected} members when the time bound passed",
            members.seen
        ));
    }
    (rec, members)
}

/// Milliseconds, rounded to 0.1.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}
