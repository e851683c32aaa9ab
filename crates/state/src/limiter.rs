//! Token buckets for throttling (AWS documents its throttling as a token bucket per scope:
//! `rateLimit` tokens per second refill a bucket holding at most `burstLimit`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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
    /// Takes one token from the scope's bucket at `now`; `false` means throttled. A bucket
    /// whose settings changed starts over, full; unchanged settings keep their state (hot
    /// reloads).
    fn try_acquire(&self, scope: &str, limit: Limit, now: Instant) -> bool;

    /// [`RateLimiter::try_acquire`] for the account's bucket, which every request takes from.
    fn try_acquire_account(&self, limit: Limit, now: Instant) -> bool {
        self.try_acquire("account", limit, now)
    }
}

/// One token bucket, kept as the generic cell rate algorithm does: a single "theoretical
/// arrival time" (TAT) that each admitted request moves on by one emission interval
/// (1/rate). A request is admitted while the TAT is at most `burst - 1` intervals ahead of
/// now, which is the token bucket's rule (a full bucket holds `burst` tokens) in one atomic
/// word: the account's bucket is taken by every request on every worker, without a lock.
#[derive(Debug)]
pub struct AtomicBucket {
    origin: Instant,
    /// Nanoseconds after `origin`; at or before now means the bucket is full.
    tat: AtomicU64,
    /// The settings `tat` was computed with (`f64` bits and burst): changed ones start over.
    rate_bits: AtomicU64,
    burst: AtomicU32,
}

impl AtomicBucket {
    /// A full bucket for `limit`.
    pub fn new(limit: Limit, now: Instant) -> Self {
        AtomicBucket {
            origin: now,
            tat: AtomicU64::new(0),
            rate_bits: AtomicU64::new(limit.rate.to_bits()),
            burst: AtomicU32::new(limit.burst),
        }
    }

    /// Takes one token at `now`; `false` means throttled.
    pub fn try_acquire(&self, limit: Limit, now: Instant) -> bool {
        if limit.rate.is_nan() || limit.rate <= 0.0 || (limit.burst == 0 && limit.rate < 1.0) {
            // Rate 0 blocks everything; a zero burst with a sub-1 rate never accrues a token.
            return false;
        }
        if self.rate_bits.load(Ordering::Relaxed) != limit.rate.to_bits()
            || self.burst.load(Ordering::Relaxed) != limit.burst
        {
            // Two requests seeing the change at once both start it over: still full.
            self.rate_bits
                .store(limit.rate.to_bits(), Ordering::Relaxed);
            self.burst.store(limit.burst, Ordering::Relaxed);
            self.tat.store(0, Ordering::Relaxed);
        }
        let now = self.nanos(now);
        // `as` saturates: a rate too small for u64 nanoseconds never refills in practice.
        let interval = (1e9 / limit.rate) as u64;
        // A zero burst still lets a rate >= 1 through one request at a time.
        let ahead = (1e9 / limit.rate * f64::from(limit.burst.max(1) - 1)) as u64;
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let from = tat.max(now);
            if from - now > ahead {
                return false;
            }
            match self.tat.compare_exchange_weak(
                tat,
                from.saturating_add(interval),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }

    /// Whether the bucket would be full at `now` (it holds nothing worth keeping).
    pub fn is_full(&self, now: Instant) -> bool {
        self.tat.load(Ordering::Relaxed) <= self.nanos(now)
    }

    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// In-process buckets (single node). Buckets idle long enough to be full again are dropped
/// when the table grows.
#[derive(Debug)]
pub struct MemoryLimiter {
    /// foldhash: scope names come from the configuration and key ids, and SipHash showed in
    /// profiles of the proxy path.
    buckets: Mutex<HashMap<String, AtomicBucket, foldhash::fast::RandomState>>,
    /// The account's bucket, outside the table: every request takes from it, and the table
    /// costs a lock and a hash.
    account: AtomicBucket,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        MemoryLimiter {
            buckets: Mutex::default(),
            account: AtomicBucket::new(
                Limit {
                    rate: 0.0,
                    burst: 0,
                },
                Instant::now(),
            ),
        }
    }
}

const PRUNE_AT: usize = 100_000;

impl MemoryLimiter {
    pub fn new() -> Self {
        Self::default()
    }
}

impl RateLimiter for MemoryLimiter {
    fn try_acquire(&self, scope: &str, limit: Limit, now: Instant) -> bool {
        let Ok(mut map) = self.buckets.lock() else {
            // A poisoned lock means a panic elsewhere; fail open rather than reject everything.
            return true;
        };
        if map.len() >= PRUNE_AT && !map.contains_key(scope) {
            map.retain(|_, b| !b.is_full(now));
        }
        // Look up before inserting: `entry` would allocate the key on every request.
        let b = match map.get(scope) {
            Some(b) => b,
            None => map
                .entry(scope.to_string())
                .or_insert_with(|| AtomicBucket::new(limit, now)),
        };
        b.try_acquire(limit, now)
    }

    fn try_acquire_account(&self, limit: Limit, now: Instant) -> bool {
        self.account.try_acquire(limit, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_throttle() {
        let l = MemoryLimiter::new();
        let now = Instant::now();
        let lim = Limit {
            rate: 0.001,
            burst: 3,
        };
        assert!(l.try_acquire("a", lim, now));
        assert!(l.try_acquire("a", lim, now));
        assert!(l.try_acquire("a", lim, now));
        assert!(!l.try_acquire("a", lim, now));
        // Other scopes are independent.
        assert!(l.try_acquire("b", lim, now));
        // Changed settings start over.
        let lim2 = Limit {
            rate: 0.001,
            burst: 1,
        };
        assert!(l.try_acquire("a", lim2, now));
        assert!(!l.try_acquire("a", lim2, now));
        assert!(!l.try_acquire(
            "z",
            Limit {
                rate: 0.0,
                burst: 10
            },
            now
        ));
    }

    #[test]
    fn refills_at_the_rate_up_to_the_burst() {
        let now = Instant::now();
        let lim = Limit {
            rate: 10.0,
            burst: 2,
        };
        let b = AtomicBucket::new(lim, now);
        assert!(b.is_full(now));
        assert!(b.try_acquire(lim, now));
        assert!(b.try_acquire(lim, now));
        assert!(!b.try_acquire(lim, now));
        assert!(!b.is_full(now));
        // One token per 100 ms.
        assert!(!b.try_acquire(lim, now + Duration::from_millis(99)));
        assert!(b.try_acquire(lim, now + Duration::from_millis(100)));
        assert!(!b.try_acquire(lim, now + Duration::from_millis(150)));
        // A long pause refills to the burst, no further.
        let later = now + Duration::from_secs(60);
        assert!(b.is_full(later));
        assert!(b.try_acquire(lim, later));
        assert!(b.try_acquire(lim, later));
        assert!(!b.try_acquire(lim, later));
        // Over a second at a steady pace: the rate, plus what the bucket held.
        let start = now + Duration::from_secs(120);
        let admitted = (0..1000)
            .filter(|i| b.try_acquire(lim, start + Duration::from_millis(*i)))
            .count();
        assert_eq!(admitted, 2 + 9);
    }

    #[test]
    fn zero_burst_and_zero_rate() {
        let now = Instant::now();
        let one_at_a_time = Limit {
            rate: 1000.0,
            burst: 0,
        };
        let b = AtomicBucket::new(one_at_a_time, now);
        assert!(b.try_acquire(one_at_a_time, now));
        assert!(!b.try_acquire(one_at_a_time, now));
        assert!(b.try_acquire(one_at_a_time, now + Duration::from_millis(1)));
        for never in [
            Limit {
                rate: 0.5,
                burst: 0,
            },
            Limit {
                rate: 0.0,
                burst: 5,
            },
            Limit {
                rate: f64::NAN,
                burst: 5,
            },
        ] {
            assert!(!b.try_acquire(never, now + Duration::from_secs(10)));
        }
    }

    #[test]
    fn the_account_bucket_is_shared_by_threads_without_losing_tokens() {
        let l = std::sync::Arc::new(MemoryLimiter::new());
        let now = Instant::now();
        let lim = Limit {
            rate: 0.001,
            burst: 1000,
        };
        let admitted: usize = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    (0..500).filter(|_| l.try_acquire_account(lim, now)).count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap_or(0))
            .sum();
        assert_eq!(admitted, 1000);
    }
}
