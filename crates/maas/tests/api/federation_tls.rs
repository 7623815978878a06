//! The federation listener (`federation.listen`): TLS with a certificate chosen by SNI — each
//! tenant's own, else the platform's default, else a failed handshake — files reread when
//! replaced, certificates set through the operator API and the CLI, and plain HTTP behind a
//! proxy (`federation.tls = false`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::export::{maas, succeeded};
use crate::harness::*;

const KEY_PATH: &str = "/_matrix/key/v2/server";

/// A test CA, and a directory for the PEM files of the certificates it issues.
pub(crate) struct Pki {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    dir: tempfile::TempDir,
}

/// One certificate issued by the test CA, with its key.
pub(crate) struct Leaf {
    certificate_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

/// A leaf's files on disk.
pub(crate) struct Files {
    certificate: PathBuf,
    key: PathBuf,
}

impl Files {
    pub(crate) fn certificate(&self) -> &str {
        self.certificate.to_str().expect("UTF-8 path")
    }

    pub(crate) fn key(&self) -> &str {
        self.key.to_str().expect("UTF-8 path")
    }
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "maas federation test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&key).expect("CA certificate");
        Pki {
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses).
    pub(crate) fn issue(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certificate = CertificateParams::new(names)
            .expect("leaf params")
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            der: certificate.der().to_vec(),
        }
    }

    /// Writes `leaf` as `<stem>.crt` and `<stem>.key`, replacing earlier files by rename (as
    /// certificate renewals do), so the server never reads half a file.
    pub(crate) fn write(&self, stem: &str, leaf: &Leaf) -> Files {
        let files = Files {
            certificate: self.dir.path().join(format!("{stem}.crt")),
            key: self.dir.path().join(format!("{stem}.key")),
        };
        replace(&files.certificate, &leaf.certificate_pem);
        replace(&files.key, &leaf.key_pem);
        files
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the CA certificate as `<name>` and returns its path.
    pub(crate) fn write_ca(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        replace(&path, &self.ca_pem);
        path
    }

    fn ca(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA certificate")
    }
}

fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write PEM");
    std::fs::rename(&tmp, path).expect("rename PEM");
}

/// The federation listener's address (loopback), from `federation_url`.
fn federation_addr(srv: &TestServer) -> SocketAddr {
    let port = srv
        .federation_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no port in {}", srv.federation_url));
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A client that trusts the test CA only, resolves the test names to the federation listener,
/// and keeps no connection between uses (each request of a new client is a new handshake).
fn strict_client(pki: &Pki, addr: SocketAddr) -> reqwest::Client {
    resolving(reqwest::Client::builder(), addr)
        .tls_certs_only([pki.ca()])
        .build()
        .expect("TLS client")
}

/// A client that accepts any certificate, to look at which one the server presented.
fn looking_client(addr: SocketAddr) -> reqwest::Client {
    resolving(reqwest::Client::builder(), addr)
        .danger_accept_invalid_certs(true)
        .build()
        .expect("TLS client")
}

fn resolving(builder: reqwest::ClientBuilder, addr: SocketAddr) -> reqwest::ClientBuilder {
    ["a.test", "b.test", "localhost", "unknown.test"]
        .into_iter()
        .fold(builder, |b, name| b.resolve(name, addr))
        .tls_info(true)
        .timeout(Duration::from_secs(10))
}

/// `GET https://<host>:PORT/_matrix/key/v2/server` (`host` an IP: no SNI).
async fn get_keys(
    client: &reqwest::Client,
    host: &str,
    port: u16,
) -> reqwest::Result<reqwest::Response> {
    client
        .get(format!("https://{host}:{port}{KEY_PATH}"))
        .send()
        .await
}

/// The leaf certificate the server presented for the response.
fn presented(response: &reqwest::Response) -> Vec<u8> {
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("TLS info");
    info.peer_certificate()
        .expect("a peer certificate")
        .to_vec()
}

/// The certificate presented to a client asking for `host`, and the answer's server name.
async fn presented_for(srv: &TestServer, host: &str) -> (Vec<u8>, Value) {
    let addr = federation_addr(srv);
    let response = get_keys(&looking_client(addr), host, addr.port())
        .await
        .unwrap_or_else(|e| panic!("no TLS answer for {host}: {e:?}"));
    let der = presented(&response);
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (der, body["server_name"].clone())
}

/// `PATCH` a tenant's certificate files, asserting success.
async fn set_certificate(srv: &TestServer, server_name: &str, files: &Files) -> Value {
    let tenant = srv
        .patch_tenant(
            server_name,
            json!({"tls_certificate": files.certificate(), "tls_key": files.key()}),
        )
        .await;
    assert_eq!(tenant["tls_certificate"], files.certificate(), "{tenant}");
    assert_eq!(tenant["tls_key"], files.key(), "{tenant}");
    tenant
}

/// A server with tenants `a.test` and `b.test`, and `default` as the platform's certificate
/// when given.
async fn server(default: Option<&Files>, env: &[(&str, &str)]) -> TestServer {
    let mut options = Options::default();
    if let Some(files) = default {
        options = options
            .env("MAAS_FEDERATION__TLS_CERTIFICATE", files.certificate())
            .env("MAAS_FEDERATION__TLS_KEY", files.key());
    }
    for (key, value) in env {
        options = options.env(key, value);
    }
    let srv = TestServer::start_with(options).await;
    srv.create_tenant("a.test", &["a.test"], "closed").await;
    srv.create_tenant("b.test", &["b.test"], "closed").await;
    srv
}

#[tokio::test]
async fn each_tenant_presents_its_own_certificate_by_sni() {
    let pki = Pki::new();
    let default_leaf = pki.issue(&["default.test", "127.0.0.1"]);
    let default = pki.write("default", &default_leaf);
    let srv = server(Some(&default), &[]).await;
    assert!(
        srv.federation_url.starts_with("https://127.0.0.1:"),
        "{}",
        srv.federation_url
    );
    assert_ne!(srv.federation_url, srv.url);

    let a_leaf = pki.issue(&["a.test"]);
    let b_leaf = pki.issue(&["b.test"]);
    set_certificate(&srv, "a.test", &pki.write("a", &a_leaf)).await;
    set_certificate(&srv, "b.test", &pki.write("b", &b_leaf)).await;

    // A client trusting only the test CA and checking the name: each tenant's own certificate,
    // the federation API of that tenant, over HTTP/2 (ALPN).
    let addr = federation_addr(&srv);
    let client = strict_client(&pki, addr);
    for (name, leaf) in [("a.test", &a_leaf), ("b.test", &b_leaf)] {
        let response = get_keys(&client, name, addr.port())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(response.version(), reqwest::Version::HTTP_2, "{name}");
        assert_eq!(
            presented(&response),
            leaf.der,
            "{name} presented another certificate"
        );
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["server_name"], name, "{body}");
    }

    // No SNI (an IP address), a name no tenant answers on, a tenant without a certificate of
    // its own: the platform's default.
    let (der, server_name) = presented_for(&srv, "127.0.0.1").await;
    assert_eq!(der, default_leaf.der, "no SNI");
    assert_eq!(server_name, "localhost", "127.0.0.1 is a host of localhost");
    let (der, _) = presented_for(&srv, "unknown.test").await;
    assert_eq!(der, default_leaf.der, "unknown SNI");
    let (der, server_name) = presented_for(&srv, "localhost").await;
    assert_eq!(der, default_leaf.der, "a tenant without a certificate");
    assert_eq!(server_name, "localhost");

    // The default certificate verifies for its own names (no SNI, by IP address).
    let response = get_keys(&client, "127.0.0.1", addr.port())
        .await
        .expect("the default certificate names 127.0.0.1");
    assert_eq!(response.status(), 200);

    // The operator API is not served to other servers.
    let response = client
        .get(format!("https://a.test:{}{OP}/tenants", addr.port()))
        .bearer_auth(&srv.operator_token)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 404);

    // Clearing a tenant's certificate falls back to the default.
    let tenant = srv
        .patch_tenant("a.test", json!({"tls_certificate": null, "tls_key": null}))
        .await;
    assert!(tenant["tls_certificate"].is_null(), "{tenant}");
    let (der, server_name) = presented_for(&srv, "a.test").await;
    assert_eq!(der, default_leaf.der);
    assert_eq!(server_name, "a.test");
}

#[tokio::test]
async fn without_a_default_certificate_unknown_names_fail_the_handshake_cleanly() {
    let pki = Pki::new();
    // A short head timeout, which bounds handshakes too.
    let srv = server(None, &[("MAAS_LIMITS__HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let a_leaf = pki.issue(&["a.test"]);
    set_certificate(&srv, "a.test", &pki.write("a", &a_leaf)).await;
    let addr = federation_addr(&srv);

    for host in ["unknown.test", "127.0.0.1", "localhost", "b.test"] {
        let refused = get_keys(&looking_client(addr), host, addr.port()).await;
        assert!(
            refused.is_err(),
            "{host}: a handshake without a certificate succeeded"
        );
    }

    // Plain HTTP on the TLS port, and a handshake that never ends, are closed; the server
    // serves on.
    let mut plain = tokio::net::TcpStream::connect(addr).await.expect("connect");
    plain
        .write_all(b"GET /_matrix/key/v2/server HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "plain HTTP on the TLS listener was not closed"
    );
    assert!(!answer.starts_with(b"HTTP/"), "answered in plain HTTP");

    let mut stalled = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The first bytes of a TLS record header, then nothing.
    stalled.write_all(&[0x16, 0x03]).await.expect("write");
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "a stalled handshake was not closed");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "a stalled handshake was closed after {took:?}, not the head timeout (1 s)"
    );

    let response = get_keys(&strict_client(&pki, addr), "a.test", addr.port())
        .await
        .expect("a.test still answers");
    assert_eq!(presented(&response), a_leaf.der);
    srv.on("localhost")
        .get("/_matrix/client/versions")
        .await
        .ok();
}

#[tokio::test]
async fn a_replaced_certificate_file_is_served_without_a_restart() {
    let pki = Pki::new();
    let srv = server(None, &[]).await;
    let first = pki.issue(&["a.test"]);
    set_certificate(&srv, "a.test", &pki.write("a", &first)).await;
    assert_eq!(presented_for(&srv, "a.test").await.0, first.der);

    // Renewed in place: same paths, new key and certificate.
    let renewed = pki.issue(&["a.test"]);
    pki.write("a", &renewed);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (der, server_name) = presented_for(&srv, "a.test").await;
        if der == renewed.der {
            assert_eq!(server_name, "a.test");
            break;
        }
        assert_eq!(der, first.der, "neither the old nor the new certificate");
        assert!(
            Instant::now() < deadline,
            "the replaced certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A client trusting only the CA checks the new one too.
    let addr = federation_addr(&srv);
    get_keys(&strict_client(&pki, addr), "a.test", addr.port())
        .await
        .expect("the renewed certificate verifies");
}

#[tokio::test]
async fn bad_certificate_files_are_refused_naming_the_file() {
    let pki = Pki::new();
    let srv = server(None, &[]).await;
    let a = pki.write("a", &pki.issue(&["a.test"]));
    let b = pki.write("b", &pki.issue(&["b.test"]));
    let garbage = pki.path("garbage.pem");
    std::fs::write(&garbage, "this is no PEM\n").expect("write");
    let garbage = garbage.to_str().expect("UTF-8 path");
    let missing = pki.path("missing.crt");
    let missing = missing.to_str().expect("UTF-8 path");

    let path = format!("{OP}/tenants/a.test");
    for (patch, named) in [
        (
            json!({"tls_certificate": missing, "tls_key": a.key()}),
            missing,
        ),
        (
            json!({"tls_certificate": garbage, "tls_key": a.key()}),
            garbage,
        ),
        (
            json!({"tls_certificate": a.certificate(), "tls_key": garbage}),
            garbage,
        ),
        (
            json!({"tls_certificate": a.certificate(), "tls_key": missing}),
            missing,
        ),
        // Another certificate's key.
        (
            json!({"tls_certificate": a.certificate(), "tls_key": b.key()}),
            b.key(),
        ),
        // A certificate without its key, and the other way round.
        (json!({"tls_certificate": a.certificate()}), "tls_key"),
        (json!({"tls_key": a.key()}), "tls_certificate"),
        (
            json!({"tls_certificate": a.certificate(), "tls_key": null}),
            "tls_key",
        ),
        // Read from the server's working directory, which may change: refused.
        (
            json!({"tls_certificate": "a.crt", "tls_key": a.key()}),
            "a.crt",
        ),
    ] {
        let resp = srv.op().patch(&path, patch.clone()).await;
        assert_error(&resp, 400, "M_INVALID_PARAM");
        let error = resp.body["error"].as_str().unwrap_or_default();
        assert!(error.contains(named), "{patch}: {error}");
        assert!(
            !error.contains("BEGIN"),
            "file contents in the answer: {error}"
        );
    }
    let tenant = srv.get_tenant("a.test").await;
    assert!(tenant["tls_certificate"].is_null(), "{tenant}");
    assert!(tenant["tls_key"].is_null(), "{tenant}");

    // A good pair is taken and shown.
    set_certificate(&srv, "a.test", &a).await;
    let tenant = srv.get_tenant("a.test").await;
    assert_eq!(tenant["tls_certificate"], a.certificate(), "{tenant}");
}

#[tokio::test]
async fn a_broken_default_certificate_stops_the_start_naming_the_key() {
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("data");
    let missing = tmp.path().join("platform.crt");
    let mut cmd = srv.serve_command(&data_dir);
    cmd.env("MAAS_FEDERATION__TLS_CERTIFICATE", &missing)
        .env("MAAS_FEDERATION__TLS_KEY", tmp.path().join("platform.key"));
    let stderr = refused_start(cmd, &data_dir).await;
    assert!(
        stderr.contains("federation.tls_certificate")
            && stderr.contains(&missing.display().to_string()),
        "stderr:\n{stderr}"
    );

    // A certificate without its key is a configuration that can't work.
    let data_dir = tmp.path().join("data2");
    let mut cmd = srv.serve_command(&data_dir);
    cmd.env("MAAS_FEDERATION__TLS_CERTIFICATE", &missing);
    let stderr = refused_start(cmd, &data_dir).await;
    assert!(stderr.contains("federation.tls_key"), "stderr:\n{stderr}");
}

#[tokio::test]
async fn plain_http_mode_serves_federation_without_tls() {
    let srv = server(None, &[("MAAS_FEDERATION__TLS", "false")]).await;
    assert!(
        srv.federation_url.starts_with("http://127.0.0.1:"),
        "{}",
        srv.federation_url
    );
    assert_ne!(srv.federation_url, srv.url);
    let http = reqwest::Client::new();
    for name in ["a.test", "b.test"] {
        let body: Value = http
            .get(format!("{}{KEY_PATH}", srv.federation_url))
            .header("Host", name)
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("JSON");
        assert_eq!(body["server_name"], name, "{body}");
    }
    let version = http
        .get(format!(
            "{}/_matrix/federation/v1/version",
            srv.federation_url
        ))
        .header("Host", "a.test")
        .send()
        .await
        .expect("answer");
    assert_eq!(version.status(), 200);
    let operator = http
        .get(format!("{}{OP}/tenants", srv.federation_url))
        .bearer_auth(&srv.operator_token)
        .send()
        .await
        .expect("answer");
    assert_eq!(
        operator.status(),
        404,
        "the operator API on the federation listener"
    );
}

#[tokio::test]
async fn the_cli_sets_and_clears_a_tenants_certificate() {
    let pki = Pki::new();
    let srv = server(None, &[]).await;
    let leaf = pki.issue(&["a.test"]);
    let files = pki.write("a", &leaf);

    let out = maas(
        &srv,
        &[
            "tenant",
            "set",
            "a.test",
            "--tls-certificate",
            files.certificate(),
            "--tls-key",
            files.key(),
            "--json",
        ],
    )
    .await;
    let tenant: Value = serde_json::from_str(&succeeded(&out)).expect("JSON");
    assert_eq!(tenant["tls_certificate"], files.certificate(), "{tenant}");
    let shown = succeeded(&maas(&srv, &["tenant", "show", "a.test"]).await);
    assert!(
        shown.contains("TLS certificate") && shown.contains(files.certificate()),
        "{shown}"
    );
    assert_eq!(presented_for(&srv, "a.test").await.0, leaf.der);

    // One file alone is refused before anything is sent; a bad one by the server, named.
    let out = maas(
        &srv,
        &[
            "tenant",
            "set",
            "a.test",
            "--tls-certificate",
            files.certificate(),
        ],
    )
    .await;
    assert!(
        !out.status.success(),
        "a certificate without its key was accepted"
    );
    let b = pki.write("b", &pki.issue(&["b.test"]));
    let out = maas(
        &srv,
        &[
            "tenant",
            "set",
            "a.test",
            "--tls-certificate",
            files.certificate(),
            "--tls-key",
            b.key(),
        ],
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(b.key()), "{stderr}");

    let out = maas(
        &srv,
        &["tenant", "set", "a.test", "--no-tls-certificate", "--json"],
    )
    .await;
    let tenant: Value = serde_json::from_str(&succeeded(&out)).expect("JSON");
    assert!(tenant["tls_certificate"].is_null(), "{tenant}");
    let shown = succeeded(&maas(&srv, &["tenant", "show", "a.test"]).await);
    assert!(shown.contains("(platform default)"), "{shown}");
    // No certificate left anywhere: the handshake fails.
    let addr = federation_addr(&srv);
    assert!(
        get_keys(&looking_client(addr), "a.test", addr.port())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_per_address_bound_holds_on_the_tls_listener() {
    let pki = Pki::new();
    let srv = server(None, &[("MAAS_LIMITS__MAX_CONNECTIONS_PER_IP", "1")]).await;
    let leaf = pki.issue(&["a.test"]);
    set_certificate(&srv, "a.test", &pki.write("a", &leaf)).await;
    let addr = federation_addr(&srv);

    // A connection that never finishes its handshake holds the address's one place …
    let _held = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // … so the next one is told so, in TLS, at once.
    let started = Instant::now();
    let response = get_keys(&strict_client(&pki, addr), "a.test", addr.port())
        .await
        .expect("an answer");
    assert_eq!(response.status(), 429);
    assert!(started.elapsed() < Duration::from_secs(3));
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["errcode"], "M_LIMIT_EXCEEDED", "{body}");
}
