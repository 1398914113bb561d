//! Rate limiting: a token bucket. Each frame (or request, or wrong API token) takes a token; tokens
//! come back at a steady rate up to a burst. A client over its budget is told how long to wait, not
//! disconnected.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub struct TokenBucket {
    /// Tokens the bucket holds when full: how many frames may come at once.
    burst: f64,
    /// Tokens added per second.
    per_sec: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    pub fn new(per_sec: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            burst,
            // A zero or negative rate would lock a client out for good; treat it as "very slow".
            per_sec: per_sec.max(0.001),
            tokens: burst,
            refilled_at: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is available.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }

    /// How long until a token is available, without taking one; `None` if one is now.
    pub fn empty_for(&mut self, now: Instant) -> Option<Duration> {
        self.refill(now);
        (self.tokens < 1.0).then(|| Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
    }

    /// Whether it is back to its burst (nothing spent is remembered: it can be forgotten).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        self.refilled_at = now;
    }
}

/// One bucket per key (a person), shared by every connection of that key: a person's budget is
/// theirs however many sockets, tabs or devices they use. A connection holds its key's bucket while
/// it lives; a bucket no connection holds is kept until it is whole again, so closing and reopening
/// a socket gives nothing back early.
#[derive(Clone)]
pub struct SharedBudgets {
    inner: Arc<Mutex<Budgets>>,
    per_sec: f64,
    burst: u32,
}

struct Budgets {
    buckets: HashMap<String, Arc<Mutex<TokenBucket>>>,
    /// Past this many buckets, those no connection holds and that are whole again are forgotten
    /// (doubling after each pass, so a pass costs its length at most once per as many inserts).
    prune_at: usize,
}

/// A bucket some connection holds, with how many connections of its key hold it.
pub struct Held {
    pub bucket: Arc<Mutex<TokenBucket>>,
    /// Connections holding it, this one included.
    pub holders: usize,
}

impl SharedBudgets {
    pub fn new(per_sec: f64, burst: u32) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Budgets {
                buckets: HashMap::new(),
                prune_at: 1024,
            })),
            per_sec,
            burst,
        }
    }

    /// The bucket of `key`, held by the caller until it drops what it got.
    pub fn hold(&self, key: &str) -> Held {
        let mut budgets = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if budgets.buckets.len() >= budgets.prune_at && !budgets.buckets.contains_key(key) {
            let now = Instant::now();
            budgets.buckets.retain(|_, bucket| {
                Arc::strong_count(bucket) > 1
                    || !bucket
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .is_full(now)
            });
            budgets.prune_at = (budgets.buckets.len() * 2).max(1024);
        }
        let (per_sec, burst) = (self.per_sec, self.burst);
        let bucket = budgets
            .buckets
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(TokenBucket::new(per_sec, burst))))
            .clone();
        // The map's reference is not a connection's.
        let holders = Arc::strong_count(&bucket) - 1;
        Held { bucket, holders }
    }
}

/// Takes a token from a shared bucket.
pub fn take(bucket: &Mutex<TokenBucket>, now: Instant) -> Result<(), Duration> {
    bucket.lock().unwrap_or_else(|p| p.into_inner()).take(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_steady_rate_applies() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 3);
        for _ in 0..3 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        let wait = bucket.take(start).expect_err("over the burst");
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // Half a second later at 2/s, one token is back.
        assert_eq!(bucket.take(start + Duration::from_millis(500)), Ok(()));
        assert!(bucket.take(start + Duration::from_millis(500)).is_err());
        // Never more than the burst, however long the wait.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(bucket.take(later), Ok(()));
        }
        assert!(bucket.take(later).is_err());
    }

    #[test]
    fn a_shared_budget_is_one_for_all_holders_and_outlives_them_until_whole() {
        let budgets = SharedBudgets::new(1.0, 3);
        let (a, b) = (budgets.hold("ann"), budgets.hold("ann"));
        assert_eq!((a.holders, b.holders), (1, 2));
        let now = Instant::now();
        assert!(take(&a.bucket, now).is_ok());
        assert!(take(&b.bucket, now).is_ok());
        assert!(take(&a.bucket, now).is_ok());
        assert!(
            take(&b.bucket, now).is_err(),
            "three between them, not three each"
        );
        // Someone else has their own.
        assert!(take(&budgets.hold("bob").bucket, now).is_ok());
        // Ann closes everything and comes back: still spent.
        drop((a, b));
        let again = budgets.hold("ann");
        assert_eq!(again.holders, 1);
        assert!(take(&again.bucket, now).is_err());
    }
}
