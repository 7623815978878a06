//! A real Synapse (from PyPI) as a federation peer, started by the tests on loopback: its own
//! virtualenv (`$MAAS_TEST_SYNAPSE`, else `~/.cache/maas-synapse`, created and filled with
//! `pip install matrix-synapse` when missing), SQLite, a server name that is an IP literal
//! (`127.0.0.3:PORT`) so nothing touches the machine's resolver, its federation listener
//! speaking TLS with a certificate of the tests' CA, which it also trusts for its outbound
//! requests (`federation_custom_ca_list`), loopback allowed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::federation_tls::Files;
use crate::harness::{enc, http_client};
use crate::media::Downloaded;

/// The address Synapse's federation listener binds; maas tenants use 127.0.0.1.
const SYNAPSE_IP: &str = "127.0.0.3";

pub(crate) struct Synapse {
    child: Child,
    pub(crate) server_name: String,
    /// Its client API, plain HTTP on 127.0.0.1.
    pub(crate) client_url: String,
    dir: tempfile::TempDir,
}

/// The virtualenv holding Synapse, installed on first use.
async fn virtualenv() -> PathBuf {
    let dir = std::env::var_os("MAAS_TEST_SYNAPSE").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME");
            Path::new(&home).join(".cache/maas-synapse")
        },
        PathBuf::from,
    );
    let python = dir.join("bin/python");
    let installed = Command::new(&python)
        .args(["-c", "import synapse"])
        .status()
        .await
        .is_ok_and(|s| s.success());
    if installed {
        return dir;
    }
    let created = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&dir)
        .status()
        .await
        .expect("python3 -m venv");
    assert!(created.success(), "python3 -m venv {}", dir.display());
    let pip = Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "matrix-synapse"])
        .status()
        .await
        .expect("pip install matrix-synapse");
    assert!(pip.success(), "pip install matrix-synapse");
    dir
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Synapse {
    /// Starts Synapse with `tls` as its federation certificate, trusting the CA at `ca`.
    pub(crate) async fn start(tls: &Files, ca: &Path) -> Synapse {
        let venv = virtualenv().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let federation_port = free_port(SYNAPSE_IP);
        let client_port = free_port("127.0.0.1");
        let server_name = format!("{SYNAPSE_IP}:{federation_port}");
        let path = |name: &str| dir.path().join(name).display().to_string();
        let log_config = format!(
            "version: 1\nformatters:\n  precise:\n    format: '%(asctime)s %(name)s %(levelname)s %(request)s %(message)s'\nhandlers:\n  file:\n    class: logging.FileHandler\n    formatter: precise\n    filename: {}\nroot:\n  level: INFO\n  handlers: [file]\ndisable_existing_loggers: false\n",
            path("homeserver.log")
        );
        std::fs::write(dir.path().join("log.yaml"), log_config).expect("log config");
        // JSON is YAML: the configuration is written as JSON.
        let config = json!({
            "server_name": server_name,
            "pid_file": path("homeserver.pid"),
            "listeners": [
                {
                    "port": federation_port,
                    "bind_addresses": [SYNAPSE_IP],
                    "type": "http",
                    "tls": true,
                    "resources": [{"names": ["federation"], "compress": false}],
                },
                {
                    "port": client_port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": false,
                    "resources": [{"names": ["client"], "compress": false}],
                },
            ],
            "tls_certificate_path": tls.certificate(),
            "tls_private_key_path": tls.key(),
            "federation_custom_ca_list": [ca.display().to_string()],
            "federation_verify_certificates": true,
            "database": {"name": "sqlite3", "args": {"database": path("homeserver.db")}},
            "log_config": path("log.yaml"),
            "media_store_path": path("media"),
            "signing_key_path": path("signing.key"),
            "report_stats": false,
            "enable_registration": true,
            "enable_registration_without_verification": true,
            "macaroon_secret_key": "maas-test-macaroon",
            "form_secret": "maas-test-form",
            "trusted_key_servers": [],
            "suppress_key_server_warning": true,
            "ip_range_blacklist": [],
            "ip_range_whitelist": ["127.0.0.0/8"],
            "url_preview_enabled": false,
            "presence": {"enabled": false},
            "rc_message": {"per_second": 1000, "burst_count": 1000},
            "rc_registration": {"per_second": 1000, "burst_count": 1000},
            "rc_login": {
                "address": {"per_second": 1000, "burst_count": 1000},
                "account": {"per_second": 1000, "burst_count": 1000},
            },
            "rc_joins": {
                "local": {"per_second": 1000, "burst_count": 1000},
                "remote": {"per_second": 1000, "burst_count": 1000},
            },
            "rc_federation": {
                "window_size": 1000,
                "sleep_limit": 1000,
                "reject_limit": 1000,
                "concurrent": 100,
            },
        });
        let config_path = dir.path().join("homeserver.yaml");
        std::fs::write(&config_path, config.to_string()).expect("config");
        let python = venv.join("bin/python");
        let keys = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "--generate-keys", "-c"])
            .arg(&config_path)
            .stdout(Stdio::null())
            .status()
            .await
            .expect("synapse --generate-keys");
        assert!(keys.success(), "synapse --generate-keys");
        let child = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("synapse");
        let synapse = Synapse {
            child,
            server_name,
            client_url: format!("http://127.0.0.1:{client_port}"),
            dir,
        };
        synapse.wait_until_up().await;
        synapse
    }

    async fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/_matrix/client/versions", self.client_url);
        while Instant::now() < deadline {
            if http_client()
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("Synapse did not start:\n{}", self.log());
    }

    /// The end of its log, for failures.
    pub(crate) fn log(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("homeserver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Registers `username` (no verification: the test configuration allows it) and returns
    /// its access token.
    pub(crate) async fn register(&self, username: &str) -> SynapseUser {
        let body = json!({
            "username": username,
            "password": format!("password-{username}-long"),
            "auth": {"type": "m.login.dummy"},
        });
        let answer = self
            .call("POST", "/_matrix/client/v3/register", None, Some(body))
            .await;
        SynapseUser {
            user_id: answer["user_id"].as_str().expect("user_id").to_owned(),
            token: answer["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
        }
    }

    /// A client API call; panics on an error status, with Synapse's log.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        user: Option<&SynapseUser>,
        body: Option<Value>,
    ) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = http_client().request(method, format!("{}{path}", self.client_url));
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("Synapse answers");
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "Synapse answered {status} to {path}: {value}\n{}",
            self.log()
        );
        value
    }

    /// Uploads `bytes` as `user` (`POST /_matrix/media/v3/upload`); returns the `mxc://` URI.
    pub(crate) async fn upload(
        &self,
        user: &SynapseUser,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> String {
        let response = http_client()
            .post(format!("{}/_matrix/media/v3/upload", self.client_url))
            .bearer_auth(&user.token)
            .header("Content-Type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("Synapse answers");
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "Synapse answered {status} to the upload: {value}\n{}",
            self.log()
        );
        value["content_uri"]
            .as_str()
            .expect("content_uri")
            .to_owned()
    }

    /// A GET as `user`, unparsed: media downloads are bytes, and their failures are checked
    /// by the caller, which reports Synapse's log with them.
    pub(crate) async fn download(&self, user: &SynapseUser, path: &str) -> Downloaded {
        let response = http_client()
            .get(format!("{}{path}", self.client_url))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("Synapse answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("download body").to_vec();
        Downloaded {
            status,
            headers,
            bytes,
        }
    }

    /// The message bodies of a room as `user` reads them on Synapse, oldest first.
    pub(crate) async fn bodies(&self, user: &SynapseUser, room_id: &str) -> Vec<String> {
        let page = self
            .call(
                "GET",
                &format!(
                    "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100",
                    enc(room_id)
                ),
                Some(user),
                None,
            )
            .await;
        let mut bodies: Vec<String> = page["chunk"]
            .as_array()
            .expect("chunk")
            .iter()
            .filter(|e| e["type"] == "m.room.message")
            .map(|e| {
                e["content"]["body"]
                    .as_str()
                    .unwrap_or("(redacted)")
                    .to_owned()
            })
            .collect();
        bodies.reverse();
        bodies
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("Synapse {}:\n{}", self.server_name, self.log());
        }
        let _ = self.child.start_kill();
    }
}

pub(crate) struct SynapseUser {
    pub(crate) user_id: String,
    pub(crate) token: String,
}
