//! Token-bucket rate limiting, keyed by whatever the caller names (tenant, action, IP or user).
//! Buckets live in memory: a limit protects one process, and losing them on restart is harmless.

use std::time::Instant;

use dashmap::DashMap;

use crate::config::Bucket;
use crate::{Error, Result};

/// The bucket of a user's own message rate, as Synapse's admin override sets it
/// (`messages_per_second`, `burst_count`); `None` for a rate of 0, which Synapse takes as no
/// limit at all. A burst of 0 (Synapse: nothing ever passes) lets one message through at the
/// rate: a bucket here always holds at least one.
pub(crate) fn override_bucket(messages_per_second: u64, burst_count: u64) -> Option<Bucket> {
    if messages_per_second == 0 {
        return None;
    }
    Some(Bucket {
        per_second: messages_per_second as f64,
        burst: u32::try_from(burst_count).unwrap_or(u32::MAX),
    })
}

#[derive(Default)]
pub struct RateLimiter {
    enabled: bool,
    buckets: DashMap<String, State>,
}

struct State {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            buckets: DashMap::new(),
        }
    }

    /// Takes one token from the bucket `key`, or fails with the time until one is available.
    pub fn take(&self, key: &str, bucket: Bucket) -> Result<()> {
        self.apply(key, bucket, true)
    }

    /// Fails like `take` when the bucket is empty, without taking a token: for limits that only
    /// count failures (a wrong password) but must refuse before checking once exhausted.
    pub fn check(&self, key: &str, bucket: Bucket) -> Result<()> {
        self.apply(key, bucket, false)
    }

    fn apply(&self, key: &str, bucket: Bucket, consume: bool) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let now = Instant::now();
        let burst = f64::from(bucket.burst.max(1));
        let mut state = self.buckets.entry(key.to_owned()).or_insert(State {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.duration_since(state.updated).as_secs_f64();
        state.tokens = (state.tokens + elapsed * bucket.per_second).min(burst);
        state.updated = now;
        if state.tokens >= 1.0 {
            if consume {
                state.tokens -= 1.0;
            }
            return Ok(());
        }
        let wait_secs = (1.0 - state.tokens) / bucket.per_second.max(f64::MIN_POSITIVE);
        let retry_after_ms = (wait_secs * 1000.0).ceil().min(u64::MAX as f64) as u64;
        Err(Error::LimitExceeded { retry_after_ms })
    }

    /// Forgets buckets that have refilled completely, so memory follows recent activity only.
    pub fn prune(&self, bucket_of: impl Fn(&str) -> Option<Bucket>) {
        let now = Instant::now();
        self.buckets.retain(|key, state| {
            let Some(bucket) = bucket_of(key) else {
                return false;
            };
            let elapsed = now.duration_since(state.updated).as_secs_f64();
            state.tokens + elapsed * bucket.per_second < f64::from(bucket.burst)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_burst_and_says_when() {
        let limiter = RateLimiter::new(true);
        let bucket = Bucket {
            per_second: 0.5,
            burst: 2,
        };
        assert!(limiter.take("k", bucket).is_ok());
        assert!(limiter.take("k", bucket).is_ok());
        match limiter.take("k", bucket) {
            Err(Error::LimitExceeded { retry_after_ms }) => assert!(retry_after_ms > 1000),
            other => panic!("expected a limit, got {other:?}"),
        }
        assert!(limiter.take("other", bucket).is_ok());
    }

    #[test]
    fn check_does_not_consume() {
        let limiter = RateLimiter::new(true);
        let bucket = Bucket {
            per_second: 0.001,
            burst: 1,
        };
        assert!(limiter.check("k", bucket).is_ok());
        assert!(limiter.check("k", bucket).is_ok());
        assert!(limiter.take("k", bucket).is_ok());
        assert!(limiter.check("k", bucket).is_err());
    }

    #[test]
    fn override_of_zero_is_no_limit() {
        assert!(override_bucket(0, 5).is_none());
        let bucket = override_bucket(2, u64::MAX).expect("a rate");
        assert_eq!(bucket.burst, u32::MAX);
        assert!((bucket.per_second - 2.0).abs() < f64::EPSILON);
    }

    #[test]
    fn disabled_never_limits() {
        let limiter = RateLimiter::new(false);
        let bucket = Bucket {
            per_second: 0.001,
            burst: 1,
        };
        for _ in 0..10 {
            assert!(limiter.take("k", bucket).is_ok());
        }
    }
}
