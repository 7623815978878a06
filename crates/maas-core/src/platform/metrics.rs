//! The platform's Prometheus metrics: requests and their latency per endpoint group (no tenant
//! label, so these series don't grow with tenants), process metrics, and series per tenant for
//! the tenants loaded now, so their number is bounded by `tenants.max_loaded`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{StreamExt as _, stream};
use prometheus::{Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::Platform;
use crate::rooms::steps::EventStep;
use crate::store::NewEvent;
use crate::{Error, Result, Tenant};

/// Upper bounds of the latency buckets, in seconds: from a cached read to a long-poll's
/// timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Loaded tenants measured at once while a scrape renders their series.
const TENANTS_MEASURED_AT_ONCE: usize = 8;

/// The series the platform keeps between scrapes.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    durations: HistogramVec,
}

impl Metrics {
    pub(crate) fn new() -> Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "maas_http_requests_total",
                "HTTP requests answered, by endpoint group and status code.",
            ),
            &["group", "code"],
        )
        .map_err(metrics_error)?;
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "maas_http_request_duration_seconds",
                "Time to answer an HTTP request (to its response head), by endpoint group.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["group"],
        )
        .map_err(metrics_error)?;
        registry
            .register(Box::new(requests.clone()))
            .map_err(metrics_error)?;
        registry
            .register(Box::new(durations.clone()))
            .map_err(metrics_error)?;
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .map_err(metrics_error)?;
        Ok(Self {
            registry,
            requests,
            durations,
        })
    }

    /// Records one answered request. `group` is one of the HTTP layer's few fixed names.
    pub fn observe_request(&self, group: &str, status: u16, elapsed: Duration) {
        let code = status.to_string();
        self.requests.with_label_values(&[group, &code]).inc();
        self.durations
            .with_label_values(&[group])
            .observe(elapsed.as_secs_f64());
    }
}

/// What one loaded tenant counts for its series, since it was loaded.
#[derive(Default)]
pub(crate) struct TenantCounters {
    events_persisted: AtomicU64,
    requests: AtomicU64,
    sync_connections: AtomicI64,
}

impl TenantCounters {
    pub(crate) fn events_persisted(&self, count: usize) {
        self.events_persisted
            .fetch_add(count as u64, Ordering::Relaxed);
    }
}

/// Counts the events a tenant stores: a step of the event pipeline, told of every durable
/// event, local or received.
pub(crate) struct MetricsStep;

#[async_trait::async_trait]
impl EventStep for MetricsStep {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn committed(&self, tenant: &Tenant, events: &[NewEvent]) {
        tenant.counters().events_persisted(events.len());
    }
}

/// A `/sync` request in flight, counted while it lives.
pub struct SyncConnection(Tenant);

impl Drop for SyncConnection {
    fn drop(&mut self) {
        self.0
            .counters()
            .sync_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Tenant {
    /// Counts one request for this tenant.
    pub fn count_request(&self) {
        self.counters().requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a `/sync` request as a connection until the returned guard drops.
    pub fn sync_connection(&self) -> SyncConnection {
        self.counters()
            .sync_connections
            .fetch_add(1, Ordering::Relaxed);
        SyncConnection(self.clone())
    }
}

impl Platform {
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every series in Prometheus's text format (version 0.0.4). Loaded tenants are measured
    /// afresh (a few counts each, cheap next to a scrape interval), a few at a time; one that
    /// fails to measure is left out (and logged) rather than failing the scrape.
    pub async fn render_metrics(&self) -> Result<String> {
        let mut text = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.metrics.registry.gather(), &mut text)
            .map_err(metrics_error)?;
        let mut text = String::from_utf8(text).map_err(|e| Error::Internal(e.to_string()))?;
        write_family(
            &mut text,
            "maas_tenants",
            "gauge",
            "Tenants the platform hosts.",
            [(None, self.tenants().len() as u64)],
        );
        write_family(
            &mut text,
            "maas_tenants_loaded",
            "gauge",
            "Tenants loaded now (with their series below).",
            [(None, self.loaded_tenants() as u64)],
        );
        if self.config().metrics.per_tenant {
            let samples = self.tenant_samples().await;
            write_tenant_families(&mut text, &samples);
        }
        Ok(text)
    }

    async fn tenant_samples(&self) -> Vec<TenantSample> {
        let mut samples: Vec<TenantSample> = stream::iter(self.loaded_handles())
            .map(|tenant| async move { TenantSample::measure(&tenant).await })
            .buffer_unordered(TENANTS_MEASURED_AT_ONCE)
            .filter_map(|sample| async move { sample })
            .collect()
            .await;
        samples.sort_by(|a, b| a.server_name.cmp(&b.server_name));
        samples
    }
}

/// One loaded tenant's values at a scrape.
struct TenantSample {
    server_name: String,
    users: u64,
    rooms: u64,
    database_bytes: u64,
    media_bytes: u64,
    federation_queue: u64,
    events_persisted: u64,
    requests: u64,
    sync_connections: u64,
}

impl TenantSample {
    async fn measure(tenant: &Tenant) -> Option<Self> {
        let measured = async {
            let usage = tenant.usage().await?;
            let federation_queue = tenant.store().federation_queue().await?;
            Ok::<_, Error>((usage, federation_queue))
        };
        let (usage, federation_queue) = match measured.await {
            Ok(measured) => measured,
            Err(error) => {
                tracing::warn!(tenant = %tenant.server_name(), %error, "tenant left out of the metrics");
                return None;
            }
        };
        let counters = tenant.counters();
        Some(Self {
            server_name: tenant.server_name().to_string(),
            users: usage.users,
            rooms: usage.rooms,
            database_bytes: usage.database_bytes,
            media_bytes: usage.media_bytes,
            federation_queue,
            events_persisted: counters.events_persisted.load(Ordering::Relaxed),
            requests: counters.requests.load(Ordering::Relaxed),
            sync_connections: counters.sync_connections.load(Ordering::Relaxed).max(0) as u64,
        })
    }
}

/// The per-tenant families, each labelled `tenant` (the server name).
fn write_tenant_families(text: &mut String, samples: &[TenantSample]) {
    type Field = fn(&TenantSample) -> u64;
    let families: [(&str, &str, &str, Field); 8] = [
        ("maas_tenant_users", "gauge", "Users of the tenant.", |s| {
            s.users
        }),
        (
            "maas_tenant_rooms",
            "gauge",
            "Rooms the tenant's database holds.",
            |s| s.rooms,
        ),
        (
            "maas_tenant_events_persisted_total",
            "counter",
            "Events the tenant stored since it was loaded.",
            |s| s.events_persisted,
        ),
        (
            "maas_tenant_requests_total",
            "counter",
            "Requests the tenant answered since it was loaded.",
            |s| s.requests,
        ),
        (
            "maas_tenant_sync_connections",
            "gauge",
            "/sync requests in flight.",
            |s| s.sync_connections,
        ),
        (
            "maas_tenant_federation_queue",
            "gauge",
            "Events and EDUs waiting to be sent to other servers.",
            |s| s.federation_queue,
        ),
        (
            "maas_tenant_database_bytes",
            "gauge",
            "Bytes the tenant's database takes on disk.",
            |s| s.database_bytes,
        ),
        (
            "maas_tenant_media_bytes",
            "gauge",
            "Bytes of media the tenant's users uploaded.",
            |s| s.media_bytes,
        ),
    ];
    for (name, kind, help, field) in families {
        let values = samples
            .iter()
            .map(|s| (Some(tenant_label(&s.server_name)), field(s)));
        write_family(text, name, kind, help, values);
    }
}

fn tenant_label(server_name: &str) -> String {
    format!("tenant=\"{}\"", escape_label(server_name))
}

/// One family: its `HELP` and `TYPE` lines, then a sample per value.
fn write_family(
    text: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    values: impl IntoIterator<Item = (Option<String>, u64)>,
) {
    // Writing to a `String` can't fail.
    let _ = writeln!(text, "# HELP {name} {help}");
    let _ = writeln!(text, "# TYPE {name} {kind}");
    for (labels, value) in values {
        match labels {
            Some(labels) => {
                let _ = writeln!(text, "{name}{{{labels}}} {value}");
            }
            None => {
                let _ = writeln!(text, "{name} {value}");
            }
        }
    }
}

/// A label value as the text format writes it: backslash, quote and newline escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn metrics_error(err: prometheus::Error) -> Error {
    Error::Internal(format!("metrics: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("a\nb"), "a\\nb");
    }

    #[test]
    fn families_have_help_type_and_samples() {
        let mut text = String::new();
        write_family(
            &mut text,
            "x_total",
            "counter",
            "Xs.",
            [(Some(tenant_label("a.test")), 3)],
        );
        assert_eq!(
            text,
            "# HELP x_total Xs.\n# TYPE x_total counter\nx_total{tenant=\"a.test\"} 3\n"
        );
    }
}
