//! `compare A.jsonl B.jsonl`: per-figure ratios A/B of two result files, matched by scenario
//! (the last result of a scenario in a file wins), with the direction that counts as better.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::report::ScenarioResult;

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
}

/// One compared figure of one scenario.
#[derive(Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub figure: String,
    pub a: f64,
    pub b: f64,
    /// a / b; `None` when b is zero.
    pub ratio: Option<f64>,
    pub better: Better,
    /// How many times better A is than B (> 1: A better), whatever the direction.
    pub a_advantage: Option<f64>,
}

/// Figures of `extra` worth comparing, all "lower is better".
const EXTRA_FIGURES: &[&str] = &[
    "send_ack_ms_p50",
    "send_ack_ms_p95",
    "send_ack_ms_p99",
    "response_bytes_mean",
    "rss_kib_per_tenant",
    "startup_ms",
];

/// Figures of `extra` worth comparing where higher is better.
const EXTRA_FIGURES_HIGHER: &[&str] = &["mb_per_s"];

pub fn row(scenario: &str, figure: &str, a: f64, b: f64, better: Better) -> Row {
    let ratio = (b != 0.0).then(|| a / b);
    let a_advantage = match better {
        Better::Higher => ratio,
        Better::Lower => (a != 0.0).then(|| b / a),
    };
    Row {
        scenario: scenario.to_owned(),
        figure: figure.to_owned(),
        a,
        b,
        ratio,
        better,
        a_advantage,
    }
}

/// The figures both results have, compared.
pub fn compare_results(a: &ScenarioResult, b: &ScenarioResult) -> Vec<Row> {
    let key = a.key();
    let mut rows = vec![row(
        &key,
        "throughput_per_s",
        a.throughput_per_s,
        b.throughput_per_s,
        Better::Higher,
    )];
    let latencies = [
        ("p50_ms", a.latency_ms.p50, b.latency_ms.p50),
        ("p95_ms", a.latency_ms.p95, b.latency_ms.p95),
        ("p99_ms", a.latency_ms.p99, b.latency_ms.p99),
        ("mean_ms", a.latency_ms.mean, b.latency_ms.mean),
    ];
    for (figure, x, y) in latencies {
        if let (Some(x), Some(y)) = (x, y) {
            rows.push(row(&key, figure, x, y, Better::Lower));
        }
    }
    if let (Some(x), Some(y)) = (a.rss_kib_after, b.rss_kib_after) {
        rows.push(row(
            &key,
            "rss_kib_after",
            x as f64,
            y as f64,
            Better::Lower,
        ));
    }
    let extras = EXTRA_FIGURES
        .iter()
        .map(|f| (f, Better::Lower))
        .chain(EXTRA_FIGURES_HIGHER.iter().map(|f| (f, Better::Higher)));
    for (figure, better) in extras {
        let get = |r: &ScenarioResult| r.extra.get(*figure).and_then(Value::as_f64);
        if let (Some(x), Some(y)) = (get(a), get(b)) {
            rows.push(row(&key, figure, x, y, better));
        }
    }
    rows
}

fn load(path: &Path) -> anyhow::Result<BTreeMap<String, ScenarioResult>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut by_key = BTreeMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let result: ScenarioResult = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a result line", path.display(), n + 1))?;
        by_key.insert(result.key(), result);
    }
    Ok(by_key)
}

/// Loads both files, prints the table and the JSON; returns the rows.
pub fn run(a_path: &Path, b_path: &Path) -> anyhow::Result<Value> {
    let a = load(a_path)?;
    let b = load(b_path)?;
    let rows: Vec<Row> = a
        .iter()
        .filter_map(|(key, ra)| b.get(key).map(|rb| compare_results(ra, rb)))
        .flatten()
        .collect();
    let label = |m: &BTreeMap<String, ScenarioResult>| {
        m.values()
            .next()
            .map_or_else(String::new, |r| r.label.clone())
    };
    let (label_a, label_b) = (label(&a), label(&b));
    println!(
        "A = {label_a} ({}), B = {label_b} ({})",
        a_path.display(),
        b_path.display()
    );
    println!(
        "{:<22} {:<20} {:>12} {:>12} {:>8} {:>7} {:>12}",
        "scenario", "figure", "A", "B", "A/B", "better", "A advantage"
    );
    for r in &rows {
        println!(
            "{:<22} {:<20} {:>12.2} {:>12.2} {:>8} {:>7} {:>12}",
            r.scenario,
            r.figure,
            r.a,
            r.b,
            fmt_ratio(r.ratio),
            match r.better {
                Better::Higher => "higher",
                Better::Lower => "lower",
            },
            r.a_advantage
                .map_or_else(|| "n/a".into(), |v| format!("{v:.2}x")),
        );
    }
    let only: Vec<&String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| !(a.contains_key(*k) && b.contains_key(*k)))
        .collect();
    if !only.is_empty() {
        println!("in one file only (not compared): {only:?}");
    }
    Ok(serde_json::json!({"a": label_a, "b": label_b, "rows": rows}))
}

fn fmt_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".into(), |r| format!("{r:.3}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_advantage_is_the_ratio() {
        let r = row("send", "throughput_per_s", 200.0, 100.0, Better::Higher);
        assert_eq!(r.ratio, Some(2.0));
        assert_eq!(r.a_advantage, Some(2.0));
    }

    #[test]
    fn latency_advantage_is_the_inverse_ratio() {
        let r = row("send", "p50_ms", 5.0, 20.0, Better::Lower);
        assert_eq!(r.ratio, Some(0.25));
        assert_eq!(r.a_advantage, Some(4.0));
        let worse = row("send", "p50_ms", 20.0, 5.0, Better::Lower);
        assert_eq!(worse.a_advantage, Some(0.25));
    }

    #[test]
    fn zero_denominators_give_no_ratio() {
        assert_eq!(row("x", "p50_ms", 1.0, 0.0, Better::Lower).ratio, None);
        assert_eq!(
            row("x", "p50_ms", 0.0, 1.0, Better::Lower).a_advantage,
            None
        );
    }
}
