//! Prometheus metrics: served on a listener of their own (never the public one), in the text
//! format a Prometheus parser reads, with the platform's request series and one set of series
//! per loaded tenant.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value as PromValue};
use serde_json::{Value, json};

use crate::harness::*;
use crate::room_support::{create_room, send_text, sync};

async fn server_with_metrics() -> (TestServer, String) {
    let options = Options::default().env("MAAS_METRICS__LISTEN", "127.0.0.1:0");
    let srv = TestServer::start_with(options).await;
    let info: Value = serde_json::from_str(
        &std::fs::read_to_string(srv.data_dir.join("server.json")).expect("server.json"),
    )
    .expect("server.json is JSON");
    let url = info["metrics_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no metrics_url in {info}"))
        .trim_end_matches('/')
        .to_owned();
    (srv, url)
}

async fn scrape(url: &str) -> Scrape {
    let resp = http_client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("scraping /metrics");
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = resp.text().await.expect("metrics text");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    Scrape::parse(lines).unwrap_or_else(|e| panic!("unparsable metrics ({e}):\n{text}"))
}

fn value_of(sample: &Sample) -> f64 {
    match &sample.value {
        PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => *v,
        other => panic!("{} is not a single value: {other:?}", sample.metric),
    }
}

/// The value of `metric` for `tenant`, if it has one.
fn tenant_value(scrape: &Scrape, metric: &str, tenant: &str) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && s.labels.get("tenant") == Some(tenant))
        .map(value_of)
}

#[tokio::test]
async fn metrics_are_parsable_and_count_tenants_requests_and_events() {
    let (srv, url) = server_with_metrics().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let api = srv.on("a.test").as_user(&alice);
    let room_id = create_room(&api, json!({})).await;

    let before = scrape(&url).await;
    let users = tenant_value(&before, "maas_tenant_users", "a.test");
    // The first admin and alice.
    assert_eq!(users, Some(2.0));
    assert_eq!(
        tenant_value(&before, "maas_tenant_rooms", "a.test"),
        Some(1.0)
    );
    let events = tenant_value(&before, "maas_tenant_events_persisted_total", "a.test")
        .expect("events persisted");
    assert!(events >= 6.0, "a new room's events: {events}");
    assert!(tenant_value(&before, "maas_tenant_database_bytes", "a.test").unwrap_or(0.0) > 0.0);

    send_text(&api, &room_id, "one more").await;
    let after = scrape(&url).await;
    let events_after = tenant_value(&after, "maas_tenant_events_persisted_total", "a.test");
    assert_eq!(events_after, Some(events + 1.0));
    let requests = |s: &Scrape| tenant_value(s, "maas_tenant_requests_total", "a.test");
    assert!(requests(&after) > requests(&before), "requests counted");

    // Platform series: requests by group and code, latency histograms, process metrics.
    let sends = after.samples.iter().find(|s| {
        s.metric == "maas_http_requests_total"
            && s.labels.get("group") == Some("client_send")
            && s.labels.get("code") == Some("200")
    });
    assert!(
        sends.is_some_and(|s| value_of(s) >= 1.0),
        "client_send counted"
    );
    assert!(
        after.samples.iter().any(|s| {
            s.metric == "maas_http_request_duration_seconds"
                && matches!(s.value, PromValue::Histogram(_))
        }),
        "latency histograms"
    );
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == "process_resident_memory_bytes"),
        "process metrics"
    );
    let tenants = after.samples.iter().find(|s| s.metric == "maas_tenants");
    assert!(tenants.is_some_and(|s| value_of(s) >= 1.0));
}

#[tokio::test]
async fn a_long_poll_is_an_active_sync_connection() {
    let (srv, url) = server_with_metrics().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    let alice = srv.register("a.test", "alice", "pw-alice-1").await;
    let api = srv.on("a.test").as_user(&alice);
    let since = crate::room_support::next_batch(&sync(&api, None, None).await);

    let path = format!(
        "/_matrix/client/v3/sync?timeout=20000&since={}",
        enc(&since)
    );
    let poll = api.get(&path);
    let watch = async {
        // The long-poll is in flight once the gauge says so.
        for _ in 0..100 {
            let scraped = scrape(&url).await;
            if tenant_value(&scraped, "maas_tenant_sync_connections", "a.test") == Some(1.0) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    let wake = async {
        let seen = watch.await;
        // Ends the long-poll.
        let room = create_room(&api, json!({})).await;
        (seen, room)
    };
    let (resp, (seen, _room)) = tokio::join!(poll, wake);
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert!(seen, "the long-poll was never counted");
    let scraped = scrape(&url).await;
    assert_eq!(
        tenant_value(&scraped, "maas_tenant_sync_connections", "a.test"),
        Some(0.0)
    );
}

#[tokio::test]
async fn metrics_are_off_by_default_and_never_on_the_public_listener() {
    let srv = TestServer::start().await;
    let info = std::fs::read_to_string(srv.data_dir.join("server.json")).expect("server.json");
    assert!(!info.contains("metrics_url"), "{info}");
    let resp = srv.on("localhost").get("/metrics").await;
    assert_eq!(resp.status, 404, "{}", resp.text);

    let (srv, _url) = server_with_metrics().await;
    let resp = srv.on("localhost").get("/metrics").await;
    assert_eq!(resp.status, 404, "{}", resp.text);

    // An address another listener serves is refused for metrics.
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let mut cmd = srv.serve_command(&data_dir);
    cmd.env("MAAS_OPERATOR__LISTEN", "127.0.0.1:18931");
    cmd.env("MAAS_METRICS__LISTEN", "127.0.0.1:18931");
    let stderr = refused_start(cmd, &data_dir).await;
    assert!(stderr.contains("metrics.listen"), "{stderr}");
}

#[tokio::test]
async fn per_tenant_series_can_be_turned_off() {
    let options = Options::default()
        .env("MAAS_METRICS__LISTEN", "127.0.0.1:0")
        .env("MAAS_METRICS__PER_TENANT", "false");
    let srv = TestServer::start_with(options).await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    let info: Value = serde_json::from_str(
        &std::fs::read_to_string(srv.data_dir.join("server.json")).expect("server.json"),
    )
    .expect("server.json is JSON");
    let url = info["metrics_url"]
        .as_str()
        .expect("metrics_url")
        .to_owned();
    let scraped = scrape(url.trim_end_matches('/')).await;
    assert!(
        scraped
            .samples
            .iter()
            .all(|s| s.labels.get("tenant").is_none())
    );
    assert!(
        scraped
            .samples
            .iter()
            .any(|s| s.metric == "maas_tenants_loaded")
    );
}

/// Debian's Prometheus, installed on first use like the other real components of the tests.
async fn prometheus_binary() -> PathBuf {
    let binary = PathBuf::from("/usr/bin/prometheus");
    if binary.exists() {
        return binary;
    }
    let installed = tokio::process::Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "prometheus"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .await
        .expect("apt-get install prometheus");
    assert!(installed.success(), "apt-get install prometheus");
    binary
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// A real Prometheus scrapes the metrics listener and can query a tenant's series.
#[tokio::test]
async fn prometheus_scrapes_the_metrics() {
    if postgres_base_url().is_some() {
        eprintln!("runs on the SQLite pass only: scraping by Prometheus is backend-independent");
        return;
    }
    let (srv, url) = server_with_metrics().await;
    srv.create_tenant("a.test", &["a.test"], "open").await;
    let target = url.trim_start_matches("http://");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    let scrape_config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: maas\n    static_configs:\n      - targets: [\"{target}\"]\n"
    );
    std::fs::write(&config, scrape_config).expect("prometheus.yml");
    let port = free_port();
    let mut prometheus = tokio::process::Command::new(prometheus_binary().await)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting prometheus");

    let query = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=maas_tenant_users%7Btenant%3D%22a.test%22%7D"
    );
    let mut last = Value::Null;
    for _ in 0..120 {
        if let Ok(resp) = http_client().get(&query).send().await
            && let Ok(body) = resp.json::<Value>().await
        {
            if body["data"]["result"][0]["value"][1] == "1" {
                let health = http_client()
                    .get(format!("http://127.0.0.1:{port}/api/v1/targets"))
                    .send()
                    .await
                    .expect("targets")
                    .json::<Value>()
                    .await
                    .expect("targets JSON");
                let target = &health["data"]["activeTargets"][0];
                assert_eq!(target["health"], "up", "{health}");
                let _ = prometheus.kill().await;
                return;
            }
            last = body;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = prometheus.kill().await;
    panic!("Prometheus never read the tenant's users (the first admin): {last}");
}
