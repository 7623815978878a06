//! The test harness: spawns the real `maas` binary on an ephemeral port with its own data
//! directory, and speaks HTTP to it with an explicit `Host` header (the server routes requests
//! to tenants by `Host`, without port).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// The operator token every test server is configured with.
pub const OPERATOR_TOKEN: &str = "test-operator-token-5d1b0c3e9a7f";

/// Upper bound for the server to start (or stop).
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for one HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Path prefix of the Client-Server API.
pub const CS: &str = "/_matrix/client/v3";
/// Path prefix of the operator API.
pub const OP: &str = "/_maas/operator/v1";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Percent-encodes a path segment or query value (user ids contain `@` and `:`).
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Options for starting a server.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Extra (or overriding) environment variables.
    pub env: Vec<(String, String)>,
    /// Leave rate limiting on (the default test server switches it off).
    pub rate_limits: bool,
    /// Don't configure an operator token: the server generates `<data_dir>/operator.token`.
    pub generated_operator_token: bool,
    /// Run on this backend whatever the suite's mode (for tests that move data between them).
    pub backend: Option<TestBackend>,
    /// `--listen` for every start; `None` picks a free port each time.
    pub listen: Option<String>,
}

/// A storage backend a test server can be pinned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    /// A fresh database on `MAAS_TEST_POSTGRES`, else on the local server `.ci/run` starts.
    Postgres,
}

/// The PostgreSQL server of a pinned `TestBackend::Postgres` when the suite runs on SQLite.
const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

impl Options {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn with_rate_limits(mut self) -> Self {
        self.rate_limits = true;
        self
    }

    pub fn with_generated_operator_token(mut self) -> Self {
        self.generated_operator_token = true;
        self
    }

    pub fn on_backend(mut self, backend: TestBackend) -> Self {
        self.backend = Some(backend);
        self
    }

    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = Some(addr.to_owned());
        self
    }
}

/// A running `maas serve` child process with its own data directory.
pub struct TestServer {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`, read from `<data_dir>/server.json`.
    pub url: String,
    /// The operator API's listener (`operator_url` of `server.json`), `http://127.0.0.1:PORT`.
    pub operator_url: String,
    /// The federation listener (`federation_url` of `server.json`): `https://127.0.0.1:PORT`,
    /// or `http://…` with `MAAS_FEDERATION__TLS=false`.
    pub federation_url: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub operator_token: String,
    options: Options,
    /// `--listen` for the next start; `None` means `127.0.0.1:0` (a free port).
    listen: Option<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    http: reqwest::Client,
    /// The PostgreSQL database of this server when the suite runs on PostgreSQL.
    pub database: Option<TestDatabase>,
    // Last, so that it is removed after the child is gone.
    tmp: tempfile::TempDir,
}

/// The suite runs on SQLite unless `MAAS_TEST_POSTGRES` names a PostgreSQL server
/// (`postgres://postgres@127.0.0.1:5432`); then every test server gets a fresh database.
pub fn postgres_base_url() -> Option<String> {
    std::env::var("MAAS_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A database created for one test server and dropped with it.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    base_url: String,
}

impl TestDatabase {
    fn create(base_url: &str) -> TestDatabase {
        let name = format!("maas_it_{:016x}", rand_u64());
        psql(base_url, &format!("CREATE DATABASE {name}"));
        TestDatabase {
            url: format!("{base_url}/{name}"),
            name,
            base_url: base_url.to_owned(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        psql(
            &self.base_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Unique enough for database names: time, process and a counter within the process.
fn rand_u64() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32) ^ count.rotate_left(48)
}

impl TestServer {
    /// Whether a tenant's storage exists: its directory on SQLite, its schema on PostgreSQL.
    pub async fn tenant_storage_exists(&self, tenant_id: &str) -> bool {
        match &self.database {
            None => self.data_dir.join("tenants").join(tenant_id).is_dir(),
            Some(database) => {
                let pool = sqlx::PgPool::connect(&database.url)
                    .await
                    .expect("connect to test db");
                let found: Option<String> = sqlx::query_scalar(
                    "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name = $1",
                )
                .bind(format!("t_{tenant_id}"))
                .fetch_optional(&pool)
                .await
                .expect("query schemata");
                pool.close().await;
                found.is_some()
            }
        }
    }

    /// Everything the server stored, as byte blobs with a name: every file of the data dir,
    /// plus a dump of the database on PostgreSQL. For checks that secrets never hit storage.
    pub fn stored_bytes(&self) -> Vec<(String, Vec<u8>)> {
        let mut blobs = Vec::new();
        let mut stack = vec![self.data_dir.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    blobs.push((path.display().to_string(), bytes));
                }
            }
        }
        if let Some(database) = &self.database {
            let dump = std::process::Command::new("pg_dump")
                .arg(&database.url)
                .output()
                .expect("running pg_dump");
            assert!(dump.status.success(), "pg_dump failed");
            blobs.push((format!("pg_dump {}", database.name), dump.stdout));
        }
        blobs
    }
}

/// Runs one statement with `psql` against the server's `postgres` database.
fn psql(base_url: &str, sql: &str) {
    let status = std::process::Command::new("psql")
        .arg(format!("{base_url}/postgres"))
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .stdout(Stdio::null())
        .status()
        .expect("running psql");
    assert!(status.success(), "psql failed: {sql}");
}

/// A fully read HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body parsed as JSON, `Value::Null` when it isn't JSON.
    pub body: Value,
}

impl Resp {
    async fn read(resp: reqwest::Response) -> Resp {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("reading response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            body,
        }
    }

    /// Asserts a 200 response and returns its JSON body.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert_eq!(
            self.status, 200,
            "expected 200, got {}: {}",
            self.status, self.text
        );
        assert!(
            self.body.is_object(),
            "expected a JSON object, got: {}",
            self.text
        );
        self.body
    }

    /// The value of a header as a string ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    pub fn errcode(&self) -> &str {
        self.body["errcode"].as_str().unwrap_or_default()
    }
}

/// Asserts that `resp` is a Matrix error with this status and errcode (and an `error` string
/// when present).
#[track_caller]
pub fn assert_error(resp: &Resp, status: u16, errcode: &str) {
    assert_eq!(
        (resp.status, resp.errcode()),
        (status, errcode),
        "expected {status} {errcode}, got {}: {}",
        resp.status,
        resp.text
    );
    if let Some(error) = resp.body.get("error") {
        assert!(error.is_string(), "`error` must be a string: {}", resp.text);
    }
}

/// Asserts a user-interactive-auth 401 body (flows, session, params) and returns the session.
#[track_caller]
pub fn assert_uia(resp: &Resp) -> String {
    assert_eq!(
        resp.status, 401,
        "expected a UIA 401, got {}: {}",
        resp.status, resp.text
    );
    let flows = resp.body["flows"]
        .as_array()
        .unwrap_or_else(|| panic!("no flows: {}", resp.text));
    assert!(!flows.is_empty(), "empty flows: {}", resp.text);
    for flow in flows {
        let stages = flow["stages"]
            .as_array()
            .unwrap_or_else(|| panic!("no stages: {}", resp.text));
        assert!(
            stages.iter().all(Value::is_string),
            "bad stages: {}",
            resp.text
        );
    }
    assert!(
        resp.body["params"].is_object(),
        "`params` must be an object: {}",
        resp.text
    );
    let session = resp.body["session"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {}", resp.text));
    assert!(!session.is_empty());
    session.to_owned()
}

/// The stage types of every flow of a UIA 401 body.
pub fn uia_flows(resp: &Resp) -> Vec<Vec<String>> {
    resp.body["flows"]
        .as_array()
        .map(|flows| {
            flows
                .iter()
                .map(|f| {
                    f["stages"]
                        .as_array()
                        .map(|s| {
                            s.iter()
                                .filter_map(|x| x.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A logged-in (or freshly registered) device.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: String,
    pub access_token: String,
    pub device_id: String,
}

/// UIA stage `m.login.dummy`.
pub fn dummy_stage() -> Value {
    json!({"type": "m.login.dummy"})
}

/// UIA stage `m.login.registration_token`.
pub fn token_stage(token: &str) -> Value {
    json!({"type": "m.login.registration_token", "token": token})
}

/// UIA stage `m.login.password` with an `m.id.user` identifier.
pub fn password_stage(user: &str, password: &str) -> Value {
    json!({
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    })
}

fn base_env(options: &Options) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    if !options.generated_operator_token {
        env.push(("MAAS_OPERATOR__TOKEN".into(), OPERATOR_TOKEN.into()));
    }
    if !options.rate_limits {
        env.push(("MAAS_RATE_LIMITS__ENABLED".into(), "false".into()));
    }
    env.push(("MAAS_PASSWORDS__MEMORY_KIB".into(), "1024".into()));
    env.push(("MAAS_PASSWORDS__ITERATIONS".into(), "1".into()));
    // A free port for the operator API too: tests run in parallel, the default port is fixed.
    env.push(("MAAS_OPERATOR__LISTEN".into(), "127.0.0.1:0".into()));
    // And for the federation listener, whose default is 0.0.0.0:8448.
    env.push(("MAAS_FEDERATION__LISTEN".into(), "127.0.0.1:0".into()));
    env.extend(options.env.iter().cloned());
    env
}

/// A `Command` with no `MAAS_*` variable inherited from the environment of the test run.
pub fn clean_command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars() {
        if key.starts_with("MAAS_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn drain(pipe: impl AsyncRead + Unpin + Send + 'static, buf: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut buf = buf.lock().unwrap();
            buf.push_str(&line);
            buf.push('\n');
        }
    });
}

/// Runs `cmd` (a `maas serve` expected to refuse to start) and returns its stderr once it
/// exited with a failure. Fails the test as soon as the server announces itself in
/// `<data_dir>/server.json` instead, or when it neither exits nor starts in time.
pub async fn refused_start(mut cmd: Command, data_dir: &Path) -> String {
    let mut child = cmd.spawn().expect("spawning maas serve");
    let pid = child.id().expect("child pid");
    let stderr = Arc::<Mutex<String>>::default();
    drain(child.stderr.take().expect("piped stderr"), stderr.clone());
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for maas serve") {
            // Let the drain task read the last lines.
            let mut stdout = String::new();
            if let Some(mut out) = child.stdout.take() {
                use tokio::io::AsyncReadExt;
                let _ = out.read_to_string(&mut stdout).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let stderr = stderr.lock().unwrap().clone();
            assert!(
                !status.success(),
                "maas serve exited with success\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
            return stderr;
        }
        let announced = std::fs::read_to_string(data_dir.join("server.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .is_some_and(|v| v["pid"].as_u64() == Some(u64::from(pid)));
        if announced || Instant::now() > deadline {
            let _ = child.start_kill();
            let _ = child.wait().await;
            panic!(
                "maas serve started (or hung) where it should have refused to\n{}",
                stderr.lock().unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

impl TestServer {
    /// Starts a server with rate limits off and the known operator token.
    pub async fn start() -> TestServer {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> TestServer {
        let tmp = tempfile::Builder::new()
            .prefix("maas-test-")
            .tempdir()
            .expect("tempdir");
        let data_dir = tmp.path().join("data");
        let database = match options.backend {
            Some(TestBackend::Sqlite) => None,
            Some(TestBackend::Postgres) => Some(TestDatabase::create(
                &postgres_base_url().unwrap_or_else(|| LOCAL_POSTGRES.to_owned()),
            )),
            None => postgres_base_url().map(|base| TestDatabase::create(&base)),
        };
        let mut server = TestServer {
            child: None,
            url: String::new(),
            operator_url: String::new(),
            federation_url: String::new(),
            port: 0,
            data_dir,
            operator_token: OPERATOR_TOKEN.to_owned(),
            listen: options.listen.clone(),
            options,
            stdout: Arc::default(),
            stderr: Arc::default(),
            http: http_client(),
            database,
            tmp,
        };
        server.spawn().await;
        server
    }

    /// A `maas serve` command configured like this server (environment, database) on
    /// `data_dir`, listening on free ports, with stdout and stderr piped.
    pub fn serve_command(&self, data_dir: &Path) -> Command {
        let mut cmd = clean_command(env!("CARGO_BIN_EXE_maas"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(self.listen.as_deref().unwrap_or("127.0.0.1:0"))
            .current_dir(self.tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in base_env(&self.options) {
            cmd.env(k, v);
        }
        if let Some(database) = &self.database {
            cmd.env("MAAS_DATABASE__URL", &database.url);
        }
        cmd
    }

    async fn spawn(&mut self) {
        let server_json = self.data_dir.join("server.json");
        let _ = std::fs::remove_file(&server_json);
        let mut cmd = self.serve_command(&self.data_dir);
        let mut child = cmd.spawn().expect("spawning maas serve");
        drain(child.stdout.take().unwrap(), self.stdout.clone());
        drain(child.stderr.take().unwrap(), self.stderr.clone());
        let pid = child.id().expect("child pid");
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&server_json)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && v["pid"].as_u64() == Some(u64::from(pid))
                && let Some(url) = v["url"].as_str()
            {
                self.url = url.trim_end_matches('/').to_owned();
                // A server sharing one listener for both APIs may leave `operator_url` out.
                let operator_url = v["operator_url"].as_str().unwrap_or(url);
                self.operator_url = operator_url.trim_end_matches('/').to_owned();
                // Likewise a server serving federation on the public listener.
                let federation_url = v["federation_url"].as_str().unwrap_or(url);
                self.federation_url = federation_url.trim_end_matches('/').to_owned();
                break;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("maas serve exited early with {status}\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "maas serve didn't write {} within {START_TIMEOUT:?}\n{}",
                server_json.display(),
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.port = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in server url {}", self.url));
        assert!(
            self.url.starts_with("http://127.0.0.1:"),
            "unexpected url {}",
            self.url
        );
        if self.options.generated_operator_token {
            let token = std::fs::read_to_string(self.data_dir.join("operator.token"))
                .expect("reading operator.token");
            self.operator_token = token.trim().to_owned();
        }
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(|c| c.id())
            .expect("server not running")
    }

    /// Everything the server printed to stdout so far (all starts).
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything the server logged to stderr so far (all starts).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Clears the captured stdout (e.g. before a restart).
    pub fn clear_stdout(&self) {
        self.stdout.lock().unwrap().clear();
    }

    /// Waits (bounded) until stdout contains `needle`.
    pub async fn wait_stdout(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.stdout();
            if out.contains(needle) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "stdout never contained {needle:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn logs(&self) -> String {
        let tail = |s: &str| {
            let start = s.len().saturating_sub(8000);
            let start = (start..s.len())
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(s.len());
            s[start..].to_owned()
        };
        format!(
            "--- server stdout ---\n{}\n--- server stderr ---\n{}",
            tail(&self.stdout.lock().unwrap()),
            tail(&self.stderr.lock().unwrap())
        )
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    pub async fn stop(&mut self) -> ExitStatus {
        self.stop_with("-TERM").await
    }

    /// Sends `signal` (e.g. `-INT`), then waits (bounded) for the exit status.
    pub async fn stop_with(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("server not running");
        let pid = child.id().expect("child pid");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} {pid} failed");
        match tokio::time::timeout(START_TIMEOUT, child.wait()).await {
            Ok(status) => status.expect("waiting for maas serve"),
            Err(_) => {
                let _ = child.start_kill();
                panic!(
                    "maas serve didn't exit within {START_TIMEOUT:?} of {signal}\n{}",
                    self.logs()
                );
            }
        }
    }

    /// Stops the server (asserting a clean exit) and starts it again on the same data dir.
    pub async fn restart(&mut self) {
        let status = self.stop().await;
        assert!(
            status.success(),
            "maas serve exited with {status}\n{}",
            self.logs()
        );
        self.spawn().await;
    }

    /// Like `restart`, but on the same port too, so that clients holding the homeserver URL
    /// (e.g. a matrix-sdk `Client`) carry on.
    pub async fn restart_on_same_port(&mut self) {
        let status = self.stop().await;
        assert!(
            status.success(),
            "maas serve exited with {status}\n{}",
            self.logs()
        );
        self.listen = Some(format!("127.0.0.1:{}", self.port));
        self.spawn().await;
        self.listen = self.options.listen.clone();
    }

    /// Starts the server again after `stop()`, on the same data dir.
    pub async fn restart_after_stop(&mut self) {
        assert!(self.child.is_none(), "server still running");
        self.spawn().await;
    }

    /// Requests to one host (tenant) of this server.
    pub fn on(&self, host: &str) -> Api<'_> {
        Api {
            server: self,
            host: Some(host.to_owned()),
            token: None,
            operator: false,
        }
    }

    /// Requests with the default `Host` (`127.0.0.1:PORT`).
    pub fn direct(&self) -> Api<'_> {
        Api {
            server: self,
            host: None,
            token: None,
            operator: false,
        }
    }

    pub async fn send(builder: reqwest::RequestBuilder) -> Resp {
        let resp = builder.send().await.expect("HTTP request failed");
        Resp::read(resp).await
    }

    // ----- operator API -----

    /// Operator API requests (on the operator listener), authorised with the operator token.
    pub fn op(&self) -> Api<'_> {
        Api {
            token: Some(self.operator_token.clone()),
            ..self.op_anon()
        }
    }

    /// Requests to the operator listener without a token.
    pub fn op_anon(&self) -> Api<'_> {
        Api {
            server: self,
            host: None,
            token: None,
            operator: true,
        }
    }

    /// `POST /tenants`, asserting success. Returns the tenant object (with `admin`).
    pub async fn create_tenant(
        &self,
        server_name: &str,
        hosts: &[&str],
        registration: &str,
    ) -> Value {
        let resp = self
            .op()
            .post(
                &format!("{OP}/tenants"),
                json!({"server_name": server_name, "hosts": hosts, "registration": registration}),
            )
            .await;
        let body = resp.ok();
        assert_eq!(body["server_name"], server_name, "{body}");
        body
    }

    /// `PATCH /tenants/{server_name}`, asserting success.
    pub async fn patch_tenant(&self, server_name: &str, patch: Value) -> Value {
        self.op()
            .patch(&format!("{OP}/tenants/{}", enc(server_name)), patch)
            .await
            .ok()
    }

    /// `GET /tenants/{server_name}`, asserting success.
    pub async fn get_tenant(&self, server_name: &str) -> Value {
        self.op()
            .get(&format!("{OP}/tenants/{}", enc(server_name)))
            .await
            .ok()
    }

    /// `POST /tenants/{server_name}/users`, asserting success.
    pub async fn create_user(&self, server_name: &str, localpart: &str, password: &str) -> Value {
        let body = self
            .op()
            .post(
                &format!("{OP}/tenants/{}/users", enc(server_name)),
                json!({"localpart": localpart, "password": password}),
            )
            .await
            .ok();
        assert_eq!(
            body["user_id"],
            format!("@{localpart}:{server_name}"),
            "{body}"
        );
        body
    }

    /// `POST /tenants/{server_name}/registration_tokens`, asserting success.
    pub async fn create_registration_token(&self, server_name: &str, body: Value) -> Value {
        self.op()
            .post(
                &format!("{OP}/tenants/{}/registration_tokens", enc(server_name)),
                body,
            )
            .await
            .ok()
    }

    // ----- client API shortcuts -----

    pub async fn register(&self, host: &str, username: &str, password: &str) -> Session {
        self.on(host).register(username, password).await
    }

    pub async fn login(&self, host: &str, user: &str, password: &str) -> Session {
        self.on(host).login(user, password).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "server at {} (data dir {})\n{}",
                self.url,
                self.data_dir.display(),
                self.logs()
            );
        }
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Requests to one host, optionally authenticated.
#[derive(Clone)]
pub struct Api<'a> {
    server: &'a TestServer,
    host: Option<String>,
    token: Option<String>,
    /// To the operator listener rather than the public one.
    operator: bool,
}

impl<'a> Api<'a> {
    /// The same host, with `Authorization: Bearer <token>`.
    pub fn auth(&self, token: &str) -> Api<'a> {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// The same host, authenticated as this session.
    pub fn as_user(&self, session: &Session) -> Api<'a> {
        self.auth(&session.access_token)
    }

    /// A request builder with the host and token applied.
    pub fn builder(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let base = if self.operator {
            &self.server.operator_url
        } else {
            &self.server.url
        };
        let mut b = self.server.http.request(method, format!("{base}{path}"));
        if let Some(host) = &self.host {
            b = b.header("Host", host);
        }
        if let Some(token) = &self.token {
            b = b.bearer_auth(token);
        }
        b
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let mut b = self.builder(method, path);
        if let Some(body) = body {
            b = b.json(body);
        }
        TestServer::send(b).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Some(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PUT, path, Some(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PATCH, path, Some(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None).await
    }

    pub async fn delete_json(&self, path: &str, body: Value) -> Resp {
        self.send(Method::DELETE, path, Some(&body)).await
    }

    /// Sends `body`, then, while the answer is a UIA 401 with a session, completes the next of
    /// `stages` (adding the session). Stops at the first failed stage (a 401 with an errcode).
    /// Returns the last response.
    pub async fn uia(&self, method: Method, path: &str, body: Value, stages: &[Value]) -> Resp {
        let mut resp = self.send(method.clone(), path, Some(&body)).await;
        for stage in stages {
            if resp.status != 401 {
                break;
            }
            let Some(session) = resp.body["session"].as_str() else {
                break;
            };
            let mut auth = stage.clone();
            auth["session"] = session.into();
            let mut next = body.clone();
            next["auth"] = auth;
            resp = self.send(method.clone(), path, Some(&next)).await;
            if resp.body.get("errcode").is_some() {
                // The stage failed; don't try further stages.
                break;
            }
        }
        resp
    }

    /// `POST /register` with the dummy stage, returning the final response.
    pub async fn register_raw(&self, body: Value) -> Resp {
        self.uia(
            Method::POST,
            &format!("{CS}/register"),
            body,
            &[dummy_stage()],
        )
        .await
    }

    /// Registers `username` through the `m.login.dummy` flow, asserting success.
    pub async fn register(&self, username: &str, password: &str) -> Session {
        let resp = self
            .register_raw(json!({"username": username, "password": password}))
            .await;
        self.session_from(resp)
    }

    /// Registers through the `m.login.registration_token` flow, asserting success.
    pub async fn register_with_token(
        &self,
        username: &str,
        password: &str,
        token: &str,
    ) -> Session {
        let resp = self
            .uia(
                Method::POST,
                &format!("{CS}/register"),
                json!({"username": username, "password": password}),
                &[token_stage(token), dummy_stage()],
            )
            .await;
        self.session_from(resp)
    }

    #[track_caller]
    pub fn session_from(&self, resp: Resp) -> Session {
        let body = resp.ok();
        let s = |k: &str| {
            body[k]
                .as_str()
                .unwrap_or_else(|| panic!("no string `{k}` in {body}"))
                .to_owned()
        };
        Session {
            user_id: s("user_id"),
            access_token: s("access_token"),
            device_id: s("device_id"),
        }
    }

    pub async fn login_raw(&self, body: Value) -> Resp {
        self.post(&format!("{CS}/login"), body).await
    }

    /// `m.login.password` with an `m.id.user` identifier, asserting success.
    pub async fn login(&self, user: &str, password: &str) -> Session {
        let resp = self.login_raw(login_body(user, password)).await;
        self.session_from(resp)
    }

    /// `GET /account/whoami`.
    pub async fn whoami(&self) -> Resp {
        self.get(&format!("{CS}/account/whoami")).await
    }
}

/// A server with open tenants `a.test` and `b.test`, and a session of each one's admin.
pub async fn tenants_with_admins() -> (TestServer, Session, Session) {
    let srv = TestServer::start().await;
    let mut admins = Vec::new();
    for name in ["a.test", "b.test"] {
        let tenant = srv.create_tenant(name, &[name], "open").await;
        let password = tenant["admin"]["password"]
            .as_str()
            .unwrap_or_else(|| panic!("no admin password: {tenant}"))
            .to_owned();
        admins.push(srv.login(name, "admin", &password).await);
    }
    let b = admins.pop().expect("b.test's admin");
    let a = admins.pop().expect("a.test's admin");
    (srv, a, b)
}

/// A `POST /login` body for `m.login.password` with an `m.id.user` identifier.
pub fn login_body(user: &str, password: &str) -> Value {
    json!({
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    })
}

/// The directories under `<data_dir>/tenants`.
pub fn tenant_dirs(data_dir: &Path) -> Vec<String> {
    std::fs::read_dir(data_dir.join("tenants"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
