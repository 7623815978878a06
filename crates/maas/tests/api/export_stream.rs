//! Tenant archives stream both ways: an export is written to the response as the store reads
//! it, an import is read, checked and written as the body arrives. The server's memory follows
//! a chunk of the archive, not the archive (measured on the server process: its peak resident
//! set, reset before each transfer), and a damaged line is refused before the body has ended.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

fn export_path(server_name: &str) -> String {
    format!("{OP}/tenants/{}/export", enc(server_name))
}

/// Where archives are posted to be imported.
fn import_path(query: &str) -> String {
    format!("{OP}/import{query}")
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Starts measuring the peak resident set of `pid` afresh (Linux: `clear_refs` 5 resets
/// `VmHWM` to the current resident set); returns that resident set.
fn reset_peak(pid: u32) -> u64 {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset peak RSS");
    status_kib(pid, "VmRSS")
}

/// The tenant's SQLite database, written to directly to make it big quickly.
fn tenant_db(srv: &TestServer, tenant_id: &str) -> PathBuf {
    srv.data_dir
        .join("tenants")
        .join(tenant_id)
        .join("homeserver.db")
}

/// Adds `rows` rows of account data of about `bytes` bytes each to the admin user.
async fn fill_account_data(path: &PathBuf, rows: u32, bytes: u32) {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .expect("tenant database");
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO account_data (localpart, room_id, data_type, content, stream) \
         SELECT 'admin', '', 'org.example.filler.' || i, \
                json_object('pad', printf('%.*c', ?2, 'x'), 'i', i), i FROM n",
    )
    .bind(rows)
    .bind(bytes)
    .execute(&mut conn)
    .await
    .expect("filler rows");
    conn.close().await.expect("close");
}

const MIB: u64 = 1024;

#[tokio::test]
async fn a_big_tenant_moves_in_memory_bounded_by_a_chunk() {
    let srv = TestServer::start_with(Options::default().on_backend(TestBackend::Sqlite)).await;
    let name = "big.test";
    let created = srv.create_tenant(name, &[name], "open").await;
    let tenant_id = created["tenant_id"].as_str().expect("tenant id").to_owned();
    // About 64 MiB of rows: far more than the chunks they travel in.
    fill_account_data(&tenant_db(&srv, &tenant_id), 48_000, 1400).await;

    let pid = srv.pid();
    let before = reset_peak(pid);
    let started = Instant::now();
    let mut resp = srv
        .op()
        .builder(Method::GET, &export_path(name))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("export request");
    assert_eq!(resp.status().as_u16(), 200);
    // Written as it is read: no length is known when the answer starts.
    assert!(
        resp.headers().get("content-length").is_none(),
        "{:?}",
        resp.headers()
    );
    let mut archive = Vec::new();
    while let Some(piece) = resp.chunk().await.expect("archive body") {
        archive.extend_from_slice(&piece);
    }
    let export_peak = status_kib(pid, "VmHWM").saturating_sub(before);
    let export_time = started.elapsed();
    let archive_kib = archive.len() as u64 / 1024;
    assert!(archive_kib > 60 * MIB, "archive of {archive_kib} KiB");
    assert!(archive.ends_with(b"\n"));

    srv.op()
        .delete(&format!("{OP}/tenants/{}", enc(name)))
        .await
        .ok();
    let before = reset_peak(pid);
    let started = Instant::now();
    let imported = TestServer::send(
        srv.op()
            .builder(Method::POST, &import_path(""))
            .timeout(Duration::from_secs(300))
            .header("content-type", "application/x-ndjson")
            .body(archive.clone()),
    )
    .await
    .ok();
    let import_peak = status_kib(pid, "VmHWM").saturating_sub(before);
    let import_time = started.elapsed();
    assert_eq!(imported["server_name"], name, "{imported}");
    eprintln!(
        "archive {archive_kib} KiB; export: +{export_peak} KiB peak RSS in {export_time:?}; \
         import: +{import_peak} KiB peak RSS in {import_time:?}"
    );
    // Holding the archive, or its rows, once would take more than its size.
    let bound = archive_kib / 4;
    assert!(
        export_peak < bound,
        "export took {export_peak} KiB for a {archive_kib} KiB archive"
    );
    assert!(
        import_peak < bound,
        "import took {import_peak} KiB for a {archive_kib} KiB archive"
    );
    let again = srv.op().get(&format!("{OP}/tenants/{}", enc(name))).await;
    assert_eq!(again.ok()["user_count"], 1);
}

/// The first line of an archive of a new tenant `server_name`.
fn header_line(server_name: &str) -> String {
    let header = json!({
        "format": "maas-tenant-export", "version": 1, "created_ts": 1,
        "tenant": {"server_name": server_name, "hosts": [server_name],
                   "settings": {"registration": "closed", "suspended": false,
                                "allow_guests": false},
                   "created_ts": 1},
    });
    format!("{header}\n")
}

/// Sends the start of an import over a raw connection, with a chunked body that is never
/// finished; returns what the server answers within `wait` (empty if nothing).
async fn import_unfinished(srv: &TestServer, start: &str, wait: Duration) -> String {
    let address = srv.operator_url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{start}\r\n",
        import_path(""),
        srv.operator_token,
        start.len(),
    );
    conn.write_all(request.as_bytes()).await.expect("send");
    let mut answer = vec![0u8; 4096];
    match tokio::time::timeout(wait, conn.read(&mut answer)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&answer[..n]).into_owned(),
        Ok(Err(e)) => panic!("reading the answer: {e}"),
        Err(_) => String::new(),
    }
}

#[tokio::test]
async fn a_damaged_line_is_refused_before_the_body_ends() {
    let srv = TestServer::start().await;
    let name = "unfinished.test";
    let start = format!(
        "{}{{\"table\": \"sqlite_master\", \"columns\": [\"x\"], \"rows\": []}}\n",
        header_line(name)
    );
    let answer = import_unfinished(&srv, &start, Duration::from_secs(10)).await;
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "no refusal while the body was still open: {answer:?}"
    );
    assert!(answer.contains("M_INVALID_PARAM"), "{answer}");
    assert!(answer.contains("sqlite_master"), "{answer}");
    // Nothing of the refused import stays behind.
    let tenants = srv.op().get(&format!("{OP}/tenants")).await.ok();
    assert!(!tenants.to_string().contains(name), "{tenants}");
}

#[tokio::test]
async fn an_import_cut_off_midway_leaves_nothing() {
    let srv = TestServer::start().await;
    let name = "cut.test";
    // A header and a good first chunk, then the connection closes: the rows written so far
    // are rolled back and the new database removed.
    let start = format!(
        "{}{{\"table\": \"signing_keys\", \"columns\": [\"key_id\", \"pkcs8\", \"created_ts\"], \
         \"rows\": []}}\n",
        header_line(name)
    );
    let dirs_before = tenant_dirs(&srv.data_dir).len();
    let answer = import_unfinished(&srv, &start, Duration::from_millis(500)).await;
    assert_eq!(answer, "", "answered before the body ended");
    // The connection is gone once `import_unfinished` returned; the server notices.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tenant_dirs(&srv.data_dir).len() != dirs_before {
        assert!(
            Instant::now() < deadline,
            "the cut-off import left its database"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tenants = srv.op().get(&format!("{OP}/tenants")).await.ok();
    assert!(!tenants.to_string().contains(name), "{tenants}");
}
