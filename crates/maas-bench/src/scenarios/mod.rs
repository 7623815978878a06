//! What every scenario shares: the run context (server, unique user names, time bound), the
//! measured call with 429 handling, untimed setup calls, and concurrent user registration.

pub mod fanout;
pub mod federation;
pub mod initial_sync;
pub mod media;
pub mod neighbours;
pub mod register;
pub mod remote_join;
pub mod rooms;
pub mod send;
pub mod tenants;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::Rng;
use rand::distributions::Alphanumeric;

use crate::client::{CallError, Homeserver, Session, Timed};
use crate::stats::Recorder;

/// Every bench user gets this password; the users are throwaway.
pub const PASSWORD: &str = "maas-bench-password-1";
/// Parallel registrations during setup: registration is password-hashing bound on the server,
/// more would only queue on a small machine.
pub const SETUP_CONCURRENCY: u32 = 4;
/// A 429 is retried this often before the operation counts as failed.
const MAX_RATE_LIMIT_RETRIES: usize = 10;

/// The server under test and what makes this run's names unique.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub hs: Homeserver,
    pub registration_token: Option<String>,
    /// Random per process, so reruns against the same server don't collide.
    pub prefix: String,
    pub max: Duration,
}

impl Ctx {
    pub fn new(hs: Homeserver, registration_token: Option<String>, max: Duration) -> Self {
        Self {
            hs,
            registration_token,
            prefix: random_lowercase(8),
            max,
        }
    }

    pub fn bound(&self) -> Bound {
        Bound(Instant::now() + self.max)
    }

    /// A localpart unique to this run, scenario tag and index.
    pub fn localpart(&self, tag: &str, i: u32) -> String {
        format!("bench_{}_{tag}{i}", self.prefix)
    }

    pub fn token(&self) -> Option<&str> {
        self.registration_token.as_deref()
    }
}

/// The instant a scenario must stop starting new work.
#[derive(Clone, Copy, Debug)]
pub struct Bound(pub Instant);

impl Bound {
    pub fn expired(&self) -> bool {
        Instant::now() >= self.0
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

pub fn random_lowercase(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(Alphanumeric)
        .map(|c| char::from(c).to_ascii_lowercase())
        .take(len)
        .collect()
}

/// Runs a timed operation, recording its latency or its error; a 429 is recorded as an error
/// too, then retried after the delay the server asked for.
pub async fn measured<T, F, Fut>(rec: &mut Recorder, bound: Bound, mut op: F) -> Option<Timed<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Timed<T>, CallError>>,
{
    for _ in 0..MAX_RATE_LIMIT_RETRIES {
        match op().await {
            Ok(timed) => {
                rec.ok(timed.latency);
                return Some(timed);
            }
            Err(e) => {
                rec.error(&e);
                match e.retry_after() {
                    Some(wait) if wait < bound.remaining() => tokio::time::sleep(wait).await,
                    _ => return None,
                }
            }
        }
    }
    None
}

/// An untimed setup call: retried on 429, any other failure aborts the scenario.
pub async fn setup<T, F, Fut>(what: &str, bound: Bound, mut op: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Timed<T>, CallError>>,
{
    for _ in 0..MAX_RATE_LIMIT_RETRIES {
        match op().await {
            Ok(timed) => return Ok(timed.value),
            Err(e) => match e.retry_after() {
                Some(wait) if wait < bound.remaining() => tokio::time::sleep(wait).await,
                _ => return Err(e).with_context(|| format!("setup failed: {what}")),
            },
        }
    }
    anyhow::bail!("setup failed: {what}: still rate limited after {MAX_RATE_LIMIT_RETRIES} tries")
}

/// Opens up to `connections` pooled connections, so the timed phase doesn't pay for connecting.
pub async fn warm_up(hs: &Homeserver, connections: u32, bound: Bound) -> anyhow::Result<()> {
    let calls = (0..connections).map(|_| {
        let hs = hs.clone();
        async move { setup("GET /_matrix/client/versions", bound, || hs.versions()).await }
    });
    spawn_all(calls).await?.into_iter().collect()
}

/// Runs futures as tokio tasks (on every core) and collects their outputs in order.
pub async fn spawn_all<T, Fut>(futures: impl IntoIterator<Item = Fut>) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.context("a benchmark task panicked")?);
    }
    Ok(outputs)
}

/// Registers `n` users (untimed) with a few in parallel; returns them in index order.
pub async fn register_users(
    ctx: &Ctx,
    tag: &str,
    n: u32,
    bound: Bound,
) -> anyhow::Result<Vec<Session>> {
    let next = Arc::new(AtomicU32::new(0));
    let workers = (0..SETUP_CONCURRENCY.min(n)).map(|_| {
        let (ctx, next, tag) = (ctx.clone(), next.clone(), tag.to_owned());
        async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(mine);
                }
                if bound.expired() {
                    anyhow::bail!("time bound reached while registering setup users");
                }
                let localpart = ctx.localpart(&tag, i);
                let session = setup(&format!("register {localpart}"), bound, || {
                    ctx.hs.register(&localpart, PASSWORD, ctx.token())
                })
                .await?;
                mine.push((i, session));
            }
        }
    });
    let mut all = Vec::new();
    for worker in spawn_all(workers).await? {
        all.extend(worker?);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, s)| s).collect())
}

/// Hands out indices `0..total` to concurrent workers until done or out of time.
#[derive(Clone, Debug)]
pub struct WorkQueue {
    next: Arc<AtomicU32>,
    total: u32,
    bound: Bound,
}

impl WorkQueue {
    pub fn new(total: u32, bound: Bound) -> Self {
        Self {
            next: Arc::new(AtomicU32::new(0)),
            total,
            bound,
        }
    }

    pub fn take(&self) -> Option<u32> {
        if self.bound.expired() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.total).then_some(i)
    }

    /// Whether the time bound stopped the work before every index was handed out.
    pub fn truncated(&self) -> bool {
        self.next.load(Ordering::Relaxed) < self.total
    }
}

/// Sums the recorders of concurrent workers.
pub fn merged(recorders: Vec<Recorder>) -> Recorder {
    let mut all = Recorder::default();
    for rec in recorders {
        all.merge(rec);
    }
    all
}
