//! Runs scenarios under their hard time bound, reads the server's memory around them (--pid),
//! and prints and stores each result as soon as it exists, so an interrupted run keeps what
//! it measured.

use std::future::Future;
use std::time::Duration;

use crate::cli::{GlobalArgs, Scenario, SuiteArgs, scaled};
use crate::report::{self, Mem, Outcome, ScenarioResult};
use crate::scenarios::{
    Ctx, fanout, federation, initial_sync, media, neighbours, register, remote_join, rooms, send,
    tenants,
};

pub const DEFAULT_MAX_SECONDS: u64 = 120;
const TENANTS_MAX_SECONDS: u64 = 1800;
/// Beyond the bound scenarios check themselves: room for requests in flight (a long-poll can
/// take 30 s) before the scenario is cut off.
const GRACE: Duration = Duration::from_secs(40);

pub struct Runner {
    global: GlobalArgs,
    label: String,
    results: Vec<ScenarioResult>,
    failures: Vec<String>,
}

impl Runner {
    pub fn new(global: GlobalArgs) -> Self {
        let label = global.label.clone().unwrap_or_else(|| global.url.clone());
        Self {
            global,
            label,
            results: Vec::new(),
            failures: Vec::new(),
        }
    }

    pub fn max_seconds(&self, default: u64) -> Duration {
        Duration::from_secs(self.global.max_seconds.unwrap_or(default))
    }

    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    fn mem(&self) -> Option<Mem> {
        self.global.pid.and_then(report::read_mem)
    }

    /// Runs one scenario, cut off at its bound plus [`GRACE`].
    async fn one(
        &mut self,
        name: &str,
        max: Duration,
        scenario: impl Future<Output = anyhow::Result<Outcome>>,
    ) {
        eprintln!("running {name} …");
        let before = self.mem();
        match tokio::time::timeout(max + GRACE, scenario).await {
            Ok(Ok(outcome)) => {
                let after = self.mem();
                self.emit(outcome, (before, after));
            }
            Ok(Err(e)) => self.fail(format!("{name}: {e:#}")),
            Err(_) => self.fail(format!("{name}: cut off after {:?}", max + GRACE)),
        }
    }

    fn fail(&mut self, message: String) {
        eprintln!("FAILED {message}");
        self.failures.push(message);
    }

    fn emit(&mut self, outcome: Outcome, mem: (Option<Mem>, Option<Mem>)) {
        let result = ScenarioResult::from_outcome(outcome, &self.label, &self.global.url, mem);
        if self.results.is_empty() {
            println!("{}", report::table_header());
        }
        println!("{}", report::table_row(&result));
        if let Some(line) = report::highlights(&result) {
            println!("{line}");
        }
        if let Some(path) = &self.global.json
            && let Err(e) = report::append_json_line(path, &result)
        {
            self.fail(format!("cannot write {}: {e:#}", path.display()));
        }
        self.results.push(result);
    }

    /// The whole table again, for runs of several scenarios.
    pub fn print_summary(&self) {
        if self.results.len() < 2 {
            return;
        }
        println!("\nsummary:\n{}", report::table_header());
        for r in &self.results {
            println!("{}", report::table_row(r));
            if let Some(line) = report::highlights(r) {
                println!("{line}");
            }
        }
    }

    pub async fn run(&mut self, ctx: &Ctx, scenario: &Scenario) {
        let max = self.max_seconds(DEFAULT_MAX_SECONDS);
        match scenario {
            Scenario::Register(a) => {
                self.one("register", max, register::register(ctx, a.users))
                    .await
            }
            Scenario::Login(a) => self.one("login", max, register::login(ctx, a.users)).await,
            Scenario::CreateRooms(a) => {
                self.one(
                    "create-rooms",
                    max,
                    rooms::create_rooms(ctx, a.rooms, a.concurrency),
                )
                .await;
            }
            Scenario::Join(a) => self.one("join", max, rooms::join(ctx, a.users)).await,
            Scenario::Send(a) => {
                self.one(
                    "send",
                    max,
                    send::send(ctx, a.messages, a.concurrency, a.rooms),
                )
                .await;
            }
            Scenario::Fanout(a) => {
                let run = fanout::fanout(ctx, a.rounds, a.settle_ms, a.idle_pollers);
                self.one("fanout", max, run).await;
            }
            Scenario::InitialSync(a) => {
                let run = initial_sync::initial_sync(
                    ctx,
                    a.rooms,
                    a.repeats,
                    a.setup_concurrency,
                    a.distinct_requests,
                );
                self.one("initial-sync", max, run).await;
            }
            Scenario::Neighbours(a) => {
                self.one("neighbours", max, neighbours::neighbours(ctx, a))
                    .await;
            }
            Scenario::Federation(a) => {
                self.one("federation", max, federation::federation(ctx, a))
                    .await;
            }
            Scenario::RemoteJoin(a) => {
                self.one("remote-join", max, remote_join::remote_join(ctx, a))
                    .await;
            }
            Scenario::Media(a) => self.media(ctx, a).await,
            Scenario::Suite(a) => self.suite(ctx, a).await,
            Scenario::Tenants(_) | Scenario::Compare(_) => {
                self.fail("internal: tenants and compare don't run against --url".into());
            }
        }
    }

    /// Every client scenario with its defaults times `--scale`.
    async fn suite(&mut self, ctx: &Ctx, args: &SuiteArgs) {
        let max = self.max_seconds(DEFAULT_MAX_SECONDS);
        let n = |count| scaled(count, args.scale);
        self.one("register", max, register::register(ctx, n(100)))
            .await;
        self.one("login", max, register::login(ctx, n(100))).await;
        self.one("create-rooms", max, rooms::create_rooms(ctx, n(200), 10))
            .await;
        self.one("join", max, rooms::join(ctx, n(100))).await;
        self.one("send c=1", max, send::send(ctx, n(2000), 1, 1))
            .await;
        self.one("send c=10", max, send::send(ctx, n(2000), 10, 1))
            .await;
        self.one("fanout", max, fanout::fanout(ctx, n(200), 5, 0))
            .await;
        let sync = initial_sync::initial_sync(ctx, n(300), n(20), 10, false);
        self.one("initial-sync", max, sync).await;
    }

    /// The media phases, one result each; the scenario reads the server's memory around every
    /// phase itself. A phase with failed requests fails the run: its figures would count only
    /// the requests that worked.
    async fn media(&mut self, ctx: &Ctx, args: &crate::cli::MediaArgs) {
        let max = self.max_seconds(DEFAULT_MAX_SECONDS);
        let mut outcomes = Vec::new();
        eprintln!("running media …");
        let result = tokio::time::timeout(
            max + GRACE,
            media::run(ctx, args, self.global.pid, &mut outcomes),
        )
        .await;
        let mut failed = Vec::new();
        for outcome in outcomes {
            if outcome.rec.errors() > 0 {
                failed.push(format!(
                    "{}: {} failed request(s), first: {}",
                    outcome.scenario,
                    outcome.rec.errors(),
                    outcome.rec.first_error().unwrap_or("-")
                ));
            }
            self.emit(outcome, (None, None));
        }
        for message in failed {
            self.fail(message);
        }
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.fail(format!("media: {e:#}")),
            Err(_) => self.fail(format!("media: cut off after {:?}", max + GRACE)),
        }
    }

    /// The maas-only scenario; it spawns its own server and measures its memory itself.
    pub async fn tenants(&mut self, args: &crate::cli::TenantsArgs) {
        let max = self.max_seconds(TENANTS_MAX_SECONDS);
        let mut outcomes = Vec::new();
        eprintln!("running tenants …");
        let result =
            tokio::time::timeout(max + GRACE, tenants::run(args, max, &mut outcomes)).await;
        for outcome in outcomes {
            self.emit(outcome, (None, None));
        }
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.fail(format!("tenants: {e:#}")),
            Err(_) => self.fail(format!("tenants: cut off after {:?}", max + GRACE)),
        }
    }
}
