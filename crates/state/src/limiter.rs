//! Token buckets for throttling (AWS documents its throttling as a token bucket per scope:
//! `rateLimit` tokens per second refill a bucket holding at most `burstLimit`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// A bucket's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Tokens per second. 0 blocks everything.
    pub rate: f64,
    /// Bucket size.
    pub burst: u32,
}

/// Token buckets keyed by scope (`account`, `method:{api}/{stage}/...`, `plan:...`).
pub trait RateLimiter: Send + Sync {
    /// Takes one token from the scope's bucket; `false` means throttled. A bucket whose settings
    /// changed starts over, full; unchanged settings keep their state (hot reloads).
    fn try_acquire(&self, scope: &str, limit: Limit) -> bool;
}

#[derive(Debug)]
struct Bucket {
    limit: Limit,
    tokens: f64,
    last: Instant,
}

/// In-process buckets (single node). Buckets idle long enough to be full again are dropped
/// when the table grows.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    /// foldhash: scope names come from the configuration and key ids, and SipHash showed in
    /// profiles of the proxy path.
    buckets: Mutex<HashMap<String, Bucket, foldhash::fast::RandomState>>,
}

const PRUNE_AT: usize = 100_000;

impl MemoryLimiter {
    pub fn new() -> Self {
        Self::default()
    }
}

impl RateLimiter for MemoryLimiter {
    fn try_acquire(&self, scope: &str, limit: Limit) -> bool {
        if limit.rate.is_nan() || limit.rate <= 0.0 || (limit.burst == 0 && limit.rate < 1.0) {
            // Rate 0 blocks everything; a zero burst with a sub-1 rate never accrues a token.
            return false;
        }
        let now = Instant::now();
        let Ok(mut map) = self.buckets.lock() else {
            // A poisoned lock means a panic elsewhere; fail open rather than reject everything.
            return true;
        };
        if map.len() >= PRUNE_AT && !map.contains_key(scope) {
            map.retain(|_, b| {
                let full = b.tokens + now.duration_since(b.last).as_secs_f64() * b.limit.rate;
                full < f64::from(b.limit.burst)
            });
        }
        // A zero burst still lets a rate >= 1 through one request at a time.
        let cap = f64::from(limit.burst.max(1));
        // Look up before inserting: `entry` would allocate the key on every request.
        let b = match map.get_mut(scope) {
            Some(b) => b,
            None => map.entry(scope.to_string()).or_insert(Bucket {
                limit,
                tokens: cap,
                last: now,
            }),
        };
        if b.limit != limit {
            *b = Bucket {
                limit,
                tokens: cap,
                last: now,
            };
        }
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * limit.rate).min(cap);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_throttle() {
        let l = MemoryLimiter::new();
        let lim = Limit {
            rate: 0.001,
            burst: 3,
        };
        assert!(l.try_acquire("a", lim));
        assert!(l.try_acquire("a", lim));
        assert!(l.try_acquire("a", lim));
        assert!(!l.try_acquire("a", lim));
        // Other scopes are independent.
        assert!(l.try_acquire("b", lim));
        // Changed settings start over.
        let lim2 = Limit {
            rate: 0.001,
            burst: 1,
        };
        assert!(l.try_acquire("a", lim2));
        assert!(!l.try_acquire("a", lim2));
        assert!(!l.try_acquire(
            "z",
            Limit {
                rate: 0.0,
                burst: 10
            }
        ));
    }

    #[test]
    fn refills() {
        let l = MemoryLimiter::new();
        let lim = Limit {
            rate: 1000.0,
            burst: 1,
        };
        assert!(l.try_acquire("a", lim));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(l.try_acquire("a", lim));
    }
}
