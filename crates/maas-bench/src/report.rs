//! Results: the JSON object of one scenario run (appended as a JSON line), the readable table
//! on stdout, and the server memory figures read from /proc.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::stats::{LatencySummary, Recorder};

/// Resident and peak resident memory of a process, from /proc/<pid>/status.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mem {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

pub fn read_mem(pid: u32) -> Option<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_mem(&status)
}

/// Open file descriptors of a process: each loaded maas tenant holds its database files open,
/// so this shows loading and unloading independently of how the allocator returns memory.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

fn parse_mem(status: &str) -> Option<Mem> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
    };
    Some(Mem {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// What a scenario measured, before it is labelled for the report.
#[derive(Debug, Default)]
pub struct Outcome {
    pub scenario: String,
    pub params: Map<String, Value>,
    pub rec: Recorder,
    /// Wall time of the timed phase (setup excluded); throughput is count / this.
    pub duration: Duration,
    pub extra: Map<String, Value>,
    /// Memory the scenario measured itself (it spawned the server); else --pid is read.
    pub mem: Option<(Option<Mem>, Option<Mem>)>,
}

impl Outcome {
    pub fn new(scenario: &str, params: Value) -> Self {
        Self {
            scenario: scenario.to_owned(),
            params: match params {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            ..Self::default()
        }
    }

    pub fn extra(&mut self, key: &str, value: impl Into<Value>) {
        self.extra.insert(key.to_owned(), value.into());
    }
}

/// One line of the JSON-lines result file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub label: String,
    pub scenario: String,
    pub params: Map<String, Value>,
    pub count: u64,
    pub errors: u64,
    pub duration_s: f64,
    pub throughput_per_s: f64,
    pub latency_ms: LatencySummary,
    pub rss_kib_before: Option<u64>,
    pub rss_kib_after: Option<u64>,
    #[serde(default)]
    pub extra: Map<String, Value>,
    /// Seconds since the Unix epoch when the result was made.
    #[serde(default)]
    pub timestamp: u64,
    #[serde(default)]
    pub url: String,
}

impl ScenarioResult {
    pub fn from_outcome(
        mut outcome: Outcome,
        label: &str,
        url: &str,
        mem: (Option<Mem>, Option<Mem>),
    ) -> Self {
        let (before, after) = outcome.mem.take().unwrap_or(mem);
        let seconds = outcome.duration.as_secs_f64();
        let count = outcome.rec.count();
        let mut extra = outcome.extra;
        if let Some(error) = outcome.rec.first_error() {
            extra.insert("first_error".into(), error.into());
        }
        if outcome.rec.rate_limited() > 0 {
            extra.insert("rate_limited".into(), outcome.rec.rate_limited().into());
        }
        if let Some(hwm) = before.map(|m| m.hwm_kib) {
            extra.insert("hwm_kib_before".into(), hwm.into());
        }
        if let Some(hwm) = after.map(|m| m.hwm_kib) {
            extra.insert("hwm_kib_after".into(), hwm.into());
        }
        Self {
            label: label.to_owned(),
            scenario: outcome.scenario,
            params: outcome.params,
            count,
            errors: outcome.rec.errors(),
            duration_s: seconds,
            throughput_per_s: if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            },
            latency_ms: outcome.rec.summary(),
            rss_kib_before: before.map(|m| m.rss_kib),
            rss_kib_after: after.map(|m| m.rss_kib),
            extra,
            timestamp: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            url: url.to_owned(),
        }
    }

    /// Scenario name plus the parameter that makes two runs of it different figures
    /// (`send` runs at several concurrencies).
    pub fn key(&self) -> String {
        match self.params.get("concurrency").and_then(Value::as_u64) {
            Some(c) if self.scenario == "send" => format!("send c={c}"),
            _ => self.scenario.clone(),
        }
    }
}

pub fn append_json_line(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let mut line = serde_json::to_string(value)?;
    line.push('\n');
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(line.as_bytes())?;
    Ok(())
}

pub fn table_header() -> String {
    format!(
        "{:<10} {:<22} {:>7} {:>6} {:>10} {:>9} {:>9} {:>9}  {}",
        "label",
        "scenario",
        "count",
        "errors",
        "per_s",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "rss MiB before→after"
    )
}

pub fn table_row(r: &ScenarioResult) -> String {
    format!(
        "{:<10} {:<22} {:>7} {:>6} {:>10.1} {:>9} {:>9} {:>9}  {}",
        r.label,
        r.key(),
        r.count,
        r.errors,
        r.throughput_per_s,
        ms(r.latency_ms.p50),
        ms(r.latency_ms.p95),
        ms(r.latency_ms.p99),
        rss(r.rss_kib_before, r.rss_kib_after),
    )
}

/// Figures of `extra` worth a glance in the table, printed under the row.
const HIGHLIGHTS: &[&str] = &[
    "send_ack_ms_p50",
    "send_ack_ms_p95",
    "mb_per_s",
    "media_api",
    "response_bytes_mean",
    "image_bytes_mean",
    "content_types",
    "first_ms",
    "join_ms",
    "first_send_ms",
    "members_ms",
    "rss_kib_per_tenant",
    "rss_kib_after_idle_unload",
    "open_fds_loaded",
    "open_fds_after_idle_unload",
    "startup_ms",
    "shutdown_ms",
    "open_fds_after",
    "stopped_by_time_bound",
    "warning",
    "first_error",
];

/// `key=value` pairs of the highlighted extra figures a result has; `None` when it has none.
pub fn highlights(r: &ScenarioResult) -> Option<String> {
    let pairs: Vec<String> = HIGHLIGHTS
        .iter()
        .filter_map(|key| match r.extra.get(*key)? {
            Value::Null => None,
            Value::Number(n) => Some(format!("{key}={:.1}", n.as_f64()?)),
            other => Some(format!("{key}={other}")),
        })
        .collect();
    (!pairs.is_empty()).then(|| format!("    ↳ {}", pairs.join("  ")))
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

fn rss(before: Option<u64>, after: Option<u64>) -> String {
    let mib =
        |kib: Option<u64>| kib.map_or_else(|| "-".into(), |k| format!("{:.1}", k as f64 / 1024.0));
    if before.is_none() && after.is_none() {
        return "-".into();
    }
    format!("{}→{}", mib(before), mib(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let status = "Name:\tmaas\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\nThreads:\t4\n";
        assert_eq!(
            parse_mem(status),
            Some(Mem {
                rss_kib: 10240,
                hwm_kib: 20480
            })
        );
        assert_eq!(parse_mem("Name: x\n"), None);
    }

    #[test]
    fn result_counts_successes_and_round_trips_as_json() {
        let mut outcome = Outcome::new("send", serde_json::json!({"concurrency": 10}));
        outcome.rec.ok(Duration::from_millis(2));
        outcome.rec.ok(Duration::from_millis(4));
        outcome.rec.failure("boom");
        outcome.duration = Duration::from_secs(2);
        let r =
            ScenarioResult::from_outcome(outcome, "maas", "http://127.0.0.1:8008", (None, None));
        assert_eq!((r.count, r.errors), (2, 1));
        assert!((r.throughput_per_s - 1.0).abs() < 1e-9);
        assert_eq!(r.extra["first_error"], "boom");
        assert_eq!(r.key(), "send c=10");
        let line = serde_json::to_string(&r).expect("json");
        let back: ScenarioResult = serde_json::from_str(&line).expect("parse");
        assert_eq!(back.latency_ms, r.latency_ms);
    }
}
