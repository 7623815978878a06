//! `tenants` (maas only): spawns `maas serve` on a fresh data dir and measures what many
//! tenants cost: memory per loaded tenant, memory after idle unloading, start-up time with T
//! tenants, and the first request to a cold tenant against a warm one.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::seq::index::sample;
use reqwest::{Method, Url};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::{Bound, WorkQueue, measured, merged, random_lowercase, spawn_all};
use crate::cli::TenantsArgs;
use crate::client::{CallError, Homeserver, Timed};
use crate::report::{Mem, Outcome, open_fds, read_mem};
use crate::stats::Recorder;

/// How often readiness is polled; the start-up time is accurate to this.
const READY_POLL: Duration = Duration::from_millis(5);
/// A server not answering by then has failed to start.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Graceful shutdown gets this long before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// maas checks for idle tenants this often (`REAPER_INTERVAL` in maas-core's platform.rs);
/// waiting idle period + this + a margin lets one sweep unload every touched tenant.
const REAPER_INTERVAL: Duration = Duration::from_secs(30);
const LOG_FILE: &str = "maas-bench-server.log";

/// A `maas serve` child process; killed (SIGKILL) if dropped while running, and told to stop
/// (SIGTERM) by the kernel if this process dies first.
struct Server {
    child: Child,
    pid: u32,
}

impl Server {
    fn spawn(
        args: &TenantsArgs,
        port: u16,
        operator_token: &str,
        log: &File,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(&args.maas_bin);
        cmd.arg("--data-dir")
            .arg(&args.data_dir)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("MAAS_RATE_LIMITS__ENABLED", "false")
            .env(
                "MAAS_PASSWORDS__MEMORY_KIB",
                args.argon2_memory_kib.to_string(),
            )
            .env(
                "MAAS_PASSWORDS__ITERATIONS",
                args.argon2_iterations.to_string(),
            )
            .env("MAAS_OPERATOR__TOKEN", operator_token)
            // The operator API on the public listener: the scenario creates tenants through
            // the one address it knows.
            .env("MAAS_OPERATOR__LISTEN", format!("127.0.0.1:{port}"))
            // Not the default 8448, which another server on the machine may hold.
            .env("MAAS_FEDERATION__LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .kill_on_drop(true)
            // Its own process group: a Ctrl-C at the terminal reaches only us, and we stop it.
            .process_group(0);
        if args.idle_unload_secs > 0 {
            cmd.env(
                "MAAS_TENANTS__IDLE_UNLOAD_SECS",
                args.idle_unload_secs.to_string(),
            );
        }
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent; this runs
        // in the forked child before exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", args.maas_bin.display()))?;
        let pid = child.id().context("the spawned server has no pid")?;
        Ok(Self { child, pid })
    }

    /// Polls `/_matrix/client/versions` on `hs` until it answers 200.
    async fn wait_ready(&mut self, hs: &Homeserver, log: &Path) -> anyhow::Result<()> {
        let give_up = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "maas exited during start-up ({status}); see {}",
                    log.display()
                );
            }
            match hs.versions().await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > give_up => {
                    anyhow::bail!(
                        "maas did not answer within {START_TIMEOUT:?}: {e}; see {}",
                        log.display()
                    )
                }
                Err(_) => tokio::time::sleep(READY_POLL).await,
            }
        }
    }

    fn mem(&self) -> Option<Mem> {
        read_mem(self.pid)
    }

    fn fds(&self) -> Option<usize> {
        open_fds(self.pid)
    }

    /// SIGTERM, then waits for a clean exit; returns how long shutdown took.
    async fn stop(mut self) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let pid = libc::pid_t::try_from(self.pid)?;
        // SAFETY: plain syscall on the pid of our own child, which we haven't reaped yet (so
        // the pid can't have been reused).
        if unsafe { libc::kill(pid, libc::SIGTERM) } == -1 {
            return Err(std::io::Error::last_os_error()).context("cannot signal maas");
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                anyhow::ensure!(status.success(), "maas exited with {status} on SIGTERM");
                Ok(start.elapsed())
            }
            Err(_) => {
                self.child.kill().await?;
                anyhow::bail!("maas did not stop within {STOP_TIMEOUT:?} of SIGTERM; killed")
            }
        }
    }
}

/// Tenant `i` (1-based) of the run.
fn tenant_name(i: u32) -> String {
    format!("t{i:05}.bench.test")
}

/// A tenant and the credentials of its one user.
#[derive(Clone, Debug)]
struct Tenant {
    name: String,
    user_id: String,
    password: String,
}

fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("--data-dir {} is not a readable directory", dir.display()))?;
        anyhow::ensure!(
            entries.next().is_none(),
            "--data-dir {} is not empty; give a new or empty directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn free_loopback_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// What every phase of the scenario needs: the arguments, the server's address and secrets.
struct Bench<'a> {
    args: &'a TenantsArgs,
    hs: Homeserver,
    port: u16,
    operator_token: String,
    log: File,
    log_path: PathBuf,
    bound: Bound,
    params: Value,
}

impl Bench<'_> {
    /// Starts `maas serve` and waits until `/versions` on `ready_host` answers.
    async fn start(&self, ready_host: &str) -> anyhow::Result<(Server, Duration)> {
        let probe = self.hs.for_host(ready_host)?;
        let spawned = Instant::now();
        let mut server = Server::spawn(self.args, self.port, &self.operator_token, &self.log)?;
        server.wait_ready(&probe, &self.log_path).await?;
        Ok((server, spawned.elapsed()))
    }

    fn outcome(&self, scenario: &str) -> Outcome {
        Outcome::new(scenario, self.params.clone())
    }
}

pub async fn run(args: &TenantsArgs, max: Duration, sink: &mut Vec<Outcome>) -> anyhow::Result<()> {
    let bound = Bound(Instant::now() + max);
    prepare_data_dir(&args.data_dir)?;
    let log_path = args.data_dir.join(LOG_FILE);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let port = free_loopback_port()?;
    let base = Url::parse(&format!("http://127.0.0.1:{port}"))?;
    let pool = usize::try_from(args.create_concurrency)?.saturating_add(2);
    let bench = Bench {
        args,
        hs: Homeserver::new(base, Some("127.0.0.1"), pool)?,
        port,
        operator_token: random_lowercase(32),
        log,
        log_path,
        bound,
        params: json!({
            "tenants": args.tenants,
            "create_concurrency": args.create_concurrency,
            "argon2_memory_kib": args.argon2_memory_kib,
            "argon2_iterations": args.argon2_iterations,
            "idle_unload_secs": args.idle_unload_secs,
        }),
    };
    eprintln!(
        "tenants: starting {} on 127.0.0.1:{port} (log: {})",
        args.maas_bin.display(),
        bench.log_path.display()
    );
    let (server, first_start) = bench.start("localhost").await?;
    let tenants = load_tenants(&bench, &server, first_start, sink).await?;

    eprintln!("tenants: restarting the server");
    let shutdown = server.stop().await?;
    let first = tenants.first().context("no tenant was created")?;
    let (server, startup) = bench.start(&first.name).await?;
    sink.push(restart_outcome(&bench, &server, startup, shutdown));

    eprintln!("tenants: first requests to cold tenants");
    let (cold, warm) = cold_and_warm(&bench, &server, &tenants).await?;
    sink.push(cold);
    sink.push(warm);
    server.stop().await?;
    Ok(())
}

/// Creates the tenants, loads each once, optionally waits for idle unloading; pushes the
/// `tenants-create` and `tenants-touch` outcomes.
async fn load_tenants(
    bench: &Bench<'_>,
    server: &Server,
    first_start: Duration,
    sink: &mut Vec<Outcome>,
) -> anyhow::Result<Arc<Vec<Tenant>>> {
    let (fresh, fresh_fds) = (server.mem(), server.fds());
    eprintln!("tenants: creating {} tenants", bench.args.tenants);
    let (mut create, tenants) = create_tenants(bench).await?;
    let tenants = Arc::new(tenants);
    let after_create = server.mem();
    eprintln!("tenants: logging in once on every tenant");
    let mut touch = touch_tenants(bench, &tenants).await?;
    let (loaded, loaded_fds) = (server.mem(), server.fds());

    create.mem = Some((fresh, loaded));
    create.extra("first_start_ms", first_start.as_secs_f64() * 1000.0);
    create.extra("rss_kib_after_create", after_create.map(|m| m.rss_kib));
    create.extra(
        "rss_kib_per_tenant",
        per_tenant(fresh, loaded, tenants.len()),
    );
    create.extra("open_fds_fresh", fresh_fds);
    create.extra("open_fds_loaded", loaded_fds);
    create.extra(
        "note",
        "rss before = fresh server (tenant localhost only); after = every tenant created and logged in once; cheap argon2 params",
    );
    touch.mem = Some((after_create, loaded));
    let idle_secs = bench.args.idle_unload_secs;
    if idle_secs > 0 && touch.duration.as_secs() >= idle_secs {
        // The first tenants touched may be unloaded again before "after" is read.
        create.extra(
            "warning",
            "touching took longer than idle_unload_secs; raise it",
        );
    }
    if idle_secs > 0 {
        let idle = idle_unloaded_mem(server, idle_secs, bench.bound).await;
        create.extra("rss_kib_after_idle_unload", idle.map(|m| m.rss_kib));
        create.extra("open_fds_after_idle_unload", idle.and(server.fds()));
        create.extra("idle_wait_s", idle_secs + REAPER_INTERVAL.as_secs() + 2);
    }
    sink.push(create);
    sink.push(touch);
    Ok(tenants)
}

fn restart_outcome(
    bench: &Bench<'_>,
    server: &Server,
    startup: Duration,
    shutdown: Duration,
) -> Outcome {
    let mut restart = bench.outcome("tenants-restart");
    restart.rec.ok(startup);
    restart.duration = startup;
    restart.mem = Some((None, server.mem()));
    restart.extra("open_fds_after_startup", server.fds());
    restart.extra("startup_ms", startup.as_secs_f64() * 1000.0);
    restart.extra("shutdown_ms", shutdown.as_secs_f64() * 1000.0);
    restart.extra("ready_poll_ms", READY_POLL.as_secs_f64() * 1000.0);
    restart.extra(
        "note",
        "start-up = spawn until GET /_matrix/client/versions (Host: first tenant) answers 200; shutdown = SIGTERM until exit",
    );
    restart
}

fn per_tenant(before: Option<Mem>, after: Option<Mem>, tenants: usize) -> Option<f64> {
    let (before, after) = (before?.rss_kib, after?.rss_kib);
    (tenants > 0).then(|| (after as f64 - before as f64) / tenants as f64)
}

async fn create_tenant(
    operator: &Homeserver,
    token: &str,
    name: &str,
) -> Result<Timed<Tenant>, CallError> {
    let body = json!({"server_name": name, "registration": "closed"});
    let segments = ["_maas", "operator", "v1", "tenants"];
    let timed = operator
        .call(Method::POST, &segments, &[], Some(token), Some(&body))
        .await?;
    let field = |pointer: &str| {
        timed
            .value
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| CallError::Protocol(format!("tenant answer lacks {pointer}")))
    };
    let tenant = Tenant {
        name: name.to_owned(),
        user_id: field("/admin/user_id")?,
        password: field("/admin/password")?,
    };
    Ok(Timed {
        value: tenant,
        latency: timed.latency,
        bytes: timed.bytes,
    })
}

/// Creates the tenants through the operator API (each comes with its admin user).
async fn create_tenants(bench: &Bench<'_>) -> anyhow::Result<(Outcome, Vec<Tenant>)> {
    let mut out = bench.outcome("tenants-create");
    let bound = bench.bound;
    let queue = WorkQueue::new(bench.args.tenants, bound);
    let start = Instant::now();
    let workers = (0..bench.args.create_concurrency).map(|_| {
        let (hs, queue) = (bench.hs.clone(), queue.clone());
        let token = bench.operator_token.clone();
        async move {
            let (mut rec, mut created) = (Recorder::default(), Vec::new());
            while let Some(i) = queue.take() {
                let name = tenant_name(i + 1);
                if let Some(t) =
                    measured(&mut rec, bound, || create_tenant(&hs, &token, &name)).await
                {
                    created.push((i, t.value));
                }
            }
            (rec, created)
        }
    });
    let (mut recs, mut tenants) = (Vec::new(), Vec::new());
    for (rec, created) in spawn_all(workers).await? {
        recs.push(rec);
        tenants.extend(created);
    }
    out.rec = merged(recs);
    out.duration = start.elapsed();
    if queue.truncated() {
        out.extra("stopped_by_time_bound", true);
    }
    tenants.sort_by_key(|(i, _)| *i);
    Ok((out, tenants.into_iter().map(|(_, t)| t).collect()))
}

/// Logs in once on every tenant, so every tenant has been loaded.
async fn touch_tenants(bench: &Bench<'_>, tenants: &Arc<Vec<Tenant>>) -> anyhow::Result<Outcome> {
    let mut out = bench.outcome("tenants-touch");
    let bound = bench.bound;
    let queue = WorkQueue::new(u32::try_from(tenants.len())?, bound);
    let start = Instant::now();
    let workers = (0..bench.args.create_concurrency).map(|_| {
        let (hs, queue, tenants) = (bench.hs.clone(), queue.clone(), tenants.clone());
        async move {
            let mut rec = Recorder::default();
            while let Some(i) = queue.take() {
                let Some(t) = tenants.get(i as usize) else {
                    break;
                };
                let Ok(tenant_hs) = hs.for_host(&t.name) else {
                    break;
                };
                measured(&mut rec, bound, || tenant_hs.login(&t.user_id, &t.password)).await;
            }
            rec
        }
    });
    out.rec = merged(spawn_all(workers).await?);
    out.duration = start.elapsed();
    out.extra(
        "note",
        "one password login per tenant, right after creation",
    );
    Ok(out)
}

/// Waits until every tenant has been idle long enough for one unload sweep, then reads RSS.
async fn idle_unloaded_mem(server: &Server, idle_secs: u64, bound: Bound) -> Option<Mem> {
    let wait = Duration::from_secs(idle_secs) + REAPER_INTERVAL + Duration::from_secs(2);
    if wait >= bound.remaining() {
        eprintln!("tenants: not enough time left to wait {wait:?} for idle unloading");
        return None;
    }
    eprintln!("tenants: waiting {wait:?} for idle tenants to be unloaded");
    tokio::time::sleep(wait).await;
    server.mem()
}

/// Times the first request to K random tenants not touched since the restart, then a second
/// request to each (warm). The first tenant answered the readiness probe, so it is never
/// sampled.
async fn cold_and_warm(
    bench: &Bench<'_>,
    server: &Server,
    tenants: &[Tenant],
) -> anyhow::Result<(Outcome, Outcome)> {
    let (hs, bound) = (&bench.hs, bench.bound);
    let candidates = tenants.len().saturating_sub(1);
    let k = (bench.args.cold_samples as usize).min(candidates);
    let picked: Vec<&Tenant> = sample(&mut rand::thread_rng(), candidates, k)
        .into_iter()
        .filter_map(|i| tenants.get(i + 1))
        .collect();
    let mut cold = bench.outcome("tenants-cold-request");
    let mut warm = bench.outcome("tenants-warm-request");
    for out in [&mut cold, &mut warm] {
        out.params.insert("samples".into(), k.into());
        out.params
            .insert("request".into(), "GET /_matrix/client/v3/login".into());
    }
    let before = server.mem();
    let fds_before = server.fds();
    let start = Instant::now();
    for tenant in picked {
        if bound.expired() {
            cold.extra("stopped_by_time_bound", true);
            break;
        }
        let tenant_hs = hs.for_host(&tenant.name)?;
        measured(&mut cold.rec, bound, || tenant_hs.login_flows()).await;
        measured(&mut warm.rec, bound, || tenant_hs.login_flows()).await;
    }
    // The two kinds interleave, so each one's throughput is over its own waiting time.
    cold.duration = cold.rec.busy();
    warm.duration = warm.rec.busy();
    cold.extra("wall_s", start.elapsed().as_secs_f64());
    let after = server.mem();
    cold.extra("open_fds_before", fds_before);
    cold.extra("open_fds_after", server.fds());
    cold.mem = Some((before, after));
    warm.mem = Some((before, after));
    cold.extra(
        "note",
        "first request to a tenant since the restart (loads it); sequential, throughput = 1/mean",
    );
    Ok((cold, warm))
}
