//! Latency samples and error counts of one scenario, and their summary (nearest-rank
//! percentiles over the sorted samples; no histogram crate, the sample counts are small).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::CallError;

/// Longest error body kept for diagnosis: enough for a Matrix error JSON, not for an HTML page.
const ERROR_BODY_CHARS: usize = 400;

/// Nearest-rank percentile `p` (0..=100) of ascending `sorted` samples; `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (p / 100.0 * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// The latency figures every result carries, in milliseconds; `None` without samples.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

impl LatencySummary {
    pub fn of(samples_ms: &[f64]) -> Self {
        let mut sorted = samples_ms.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mean = if sorted.is_empty() {
            None
        } else {
            Some(sorted.iter().sum::<f64>() / sorted.len() as f64)
        };
        Self {
            p50: percentile(&sorted, 50.0),
            p95: percentile(&sorted, 95.0),
            p99: percentile(&sorted, 99.0),
            max: sorted.last().copied(),
            mean,
        }
    }
}

/// What one task measured; tasks keep their own and the scenario merges them, so the hot path
/// takes no lock.
#[derive(Debug, Default)]
pub struct Recorder {
    samples_ms: Vec<f64>,
    errors: u64,
    rate_limited: u64,
    first_error: Option<String>,
}

impl Recorder {
    pub fn ok(&mut self, latency: Duration) {
        self.samples_ms.push(latency.as_secs_f64() * 1000.0);
    }

    pub fn error(&mut self, error: &CallError) {
        self.errors += 1;
        if error.is_rate_limited() {
            self.rate_limited += 1;
        }
        if self.first_error.is_none() {
            self.first_error = Some(truncate(&error.to_string(), ERROR_BODY_CHARS));
        }
    }

    /// An operation that failed without an HTTP error, e.g. an event that never arrived.
    pub fn failure(&mut self, what: &str) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(truncate(what, ERROR_BODY_CHARS));
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        self.samples_ms.extend(other.samples_ms);
        self.errors += other.errors;
        self.rate_limited += other.rate_limited;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Takes only the errors of `other`, e.g. of a side operation whose latency is reported
    /// elsewhere.
    pub fn merge_errors(&mut self, other: &Recorder) {
        self.errors += other.errors;
        self.rate_limited += other.rate_limited;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }

    /// Successful operations measured.
    pub fn count(&self) -> u64 {
        self.samples_ms.len() as u64
    }

    /// Sum of the measured latencies: the time spent waiting for answers.
    pub fn busy(&self) -> Duration {
        Duration::from_secs_f64(self.samples_ms.iter().sum::<f64>() / 1000.0)
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    pub fn rate_limited(&self) -> u64 {
        self.rate_limited
    }

    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }

    pub fn summary(&self) -> LatencySummary {
        LatencySummary::of(&self.samples_ms)
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(50.0));
        assert_eq!(percentile(&sorted, 95.0), Some(95.0));
        assert_eq!(percentile(&sorted, 99.0), Some(99.0));
        assert_eq!(percentile(&sorted, 100.0), Some(100.0));
        assert_eq!(percentile(&sorted, 0.0), Some(1.0));
    }

    #[test]
    fn percentiles_of_few_samples_pick_existing_values() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&sorted, 50.0), Some(2.0));
        assert_eq!(percentile(&sorted, 51.0), Some(3.0));
        assert_eq!(percentile(&sorted, 99.0), Some(4.0));
    }

    #[test]
    fn summary_sorts_unsorted_samples() {
        let s = LatencySummary::of(&[3.0, 1.0, 2.0]);
        assert_eq!(s.p50, Some(2.0));
        assert_eq!(s.max, Some(3.0));
        assert_eq!(s.mean, Some(2.0));
        assert_eq!(LatencySummary::of(&[]), LatencySummary::default());
    }

    #[test]
    fn merge_keeps_the_first_error() {
        let mut a = Recorder::default();
        a.ok(Duration::from_millis(5));
        let mut b = Recorder::default();
        b.failure("second");
        b.ok(Duration::from_millis(1));
        a.merge(b);
        a.failure("third");
        assert_eq!(a.count(), 2);
        assert_eq!(a.errors(), 2);
        assert_eq!(a.first_error(), Some("second"));
    }

    #[test]
    fn truncates_long_error_bodies_on_char_boundaries() {
        assert_eq!(truncate("äöü", 2), "äö…");
        assert_eq!(truncate("ab", 2), "ab");
    }
}
