//! Rate limiting: a token bucket. Each frame (or request, or wrong API token) takes a token; tokens
//! come back at a steady rate up to a burst. A client over its budget is told how long to wait, not
//! disconnected.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use crate::redis_link::Commands;

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
            // A zero or negative rate would lock a client out for good (and make a wait no
            // `Duration` can hold); treat it as "very slow": one a million seconds. Hourly budgets
            // (new rooms) are far above that; a floor of 0.001/s once made "1 an hour" 3.6.
            per_sec: per_sec.max(1e-6),
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

/// Token buckets by key (a token's id, a person's, an address), all alike. Keys come and go with
/// sessions and addresses, so past a size the buckets that are whole again are forgotten (nothing
/// spent is lost: a new one starts whole), and the size doubles after each pass, so a pass costs its
/// length at most once per as many inserts.
pub struct Buckets<K> {
    buckets: HashMap<K, TokenBucket>,
    per_sec: f64,
    burst: u32,
    prune_at: usize,
}

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    pub fn new(per_sec: f64, burst: u32) -> Self {
        Self {
            buckets: HashMap::new(),
            per_sec,
            burst,
            prune_at: 1024,
        }
    }

    /// Takes a token from `key`'s bucket (a new one is whole), or says how long until one is there.
    pub fn take(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.prune_at {
            self.buckets.retain(|_, bucket| !bucket.is_full(now));
            self.prune_at = (self.buckets.len() * 2).max(1024);
        }
        let (per_sec, burst) = (self.per_sec, self.burst);
        self.buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(per_sec, burst))
            .take(now)
    }

    /// How long until `key`'s bucket has a token, without taking one; `None` if it has one now.
    pub fn empty_for(&mut self, key: &K, now: Instant) -> Option<Duration> {
        self.buckets.get_mut(key)?.empty_for(now)
    }
}

/// One budget per key (a person), shared by every connection of that key: a person's budget is
/// theirs however many sockets, tabs or devices they use. A connection holds its key's budget while
/// it lives; a budget no connection holds is kept until it is whole again, so closing and reopening
/// a socket gives nothing back early.
///
/// In cluster mode the budget is the cluster's, in Redis (a generic cell rate per key), and each
/// node leases a few tokens of it at a time ([`LEASE_PART`] of the burst) which its connections of
/// that person spend: a Redis round trip per lease, not per frame, and a person across nodes gets
/// at most one lease's worth per node more than the budget. While Redis does not answer, the node's
/// own bucket is used.
#[derive(Clone)]
pub struct SharedBudgets {
    inner: Arc<Mutex<Budgets>>,
    per_sec: f64,
    burst: u32,
    shared: Option<Commands>,
}

struct Budgets {
    buckets: HashMap<String, Arc<Budget>>,
    /// Past this many budgets, those no connection holds and that are whole again are forgotten
    /// (doubling after each pass, so a pass costs its length at most once per as many inserts).
    prune_at: usize,
}

/// One key's budget on this node.
pub struct Budget {
    key: String,
    local: Mutex<TokenBucket>,
    /// Tokens leased from the cluster's budget and not spent yet.
    credit: AtomicU32,
}

/// A budget some connection holds, with how many connections of its key hold it.
pub struct Held {
    pub budget: Arc<Budget>,
    /// Connections holding it, this one included.
    pub holders: usize,
}

/// Each lease takes this part of the burst (at least one token).
const LEASE_PART: u32 = 8;

/// How long a lease may take before the node's own bucket is used instead.
const LEASE_PATIENCE: Duration = Duration::from_secs(1);

/// Leases up to `want` tokens of a budget kept as a generic cell rate: the key holds the
/// theoretical arrival time (µs) after everything taken. KEYS: the budget. ARGV: µs per token,
/// burst, want. Returns `{granted, wait_us}`: what fits now (up to `want`), or none and how long
/// until one does.
const LEASE: &str = r#"
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local room = math.floor((now - tat) / interval) + burst
if room < 1 then return {0, tat - (burst - 1) * interval - now} end
local n = math.min(want, room)
tat = tat + n * interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
return {n, 0}
"#;

impl SharedBudgets {
    pub fn new(per_sec: f64, burst: u32) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Budgets {
                buckets: HashMap::new(),
                prune_at: 1024,
            })),
            per_sec,
            burst,
            shared: None,
        }
    }

    /// Keeps the budgets in Redis (cluster mode): the nodes lease from the same one.
    pub fn shared_through(mut self, commands: Commands) -> Self {
        self.shared = Some(commands);
        self
    }

    /// The budget of `key`, held by the caller until it drops what it got.
    pub fn hold(&self, key: &str) -> Held {
        let mut budgets = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if budgets.buckets.len() >= budgets.prune_at && !budgets.buckets.contains_key(key) {
            let now = Instant::now();
            budgets.buckets.retain(|_, budget| {
                Arc::strong_count(budget) > 1
                    || budget.credit.load(Ordering::Relaxed) > 0
                    || !lock(&budget.local).is_full(now)
            });
            budgets.prune_at = (budgets.buckets.len() * 2).max(1024);
        }
        let (per_sec, burst) = (self.per_sec, self.burst);
        let budget = budgets
            .buckets
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Budget {
                    key: key.to_owned(),
                    local: Mutex::new(TokenBucket::new(per_sec, burst)),
                    credit: AtomicU32::new(0),
                })
            })
            .clone();
        // The map's reference is not a connection's.
        let holders = Arc::strong_count(&budget) - 1;
        Held { budget, holders }
    }

    /// Takes a token from `budget`, or says how long until one is available.
    pub async fn take(&self, budget: &Budget) -> Result<(), Duration> {
        let Some(commands) = &self.shared else {
            return lock(&budget.local).take(Instant::now());
        };
        // Leased credit first.
        if budget
            .credit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1))
            .is_ok()
        {
            return Ok(());
        }
        let interval = (1_000_000.0 / self.per_sec.max(1e-6)).ceil() as u64;
        let want = (self.burst / LEASE_PART).max(1);
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(LEASE));
        let mut call = SCRIPT.prepare_invoke();
        call.key(format!("herald:send:{}", budget.key))
            .arg(interval)
            .arg(self.burst.max(1))
            .arg(want);
        let mut conn = commands.clone();
        match tokio::time::timeout(LEASE_PATIENCE, call.invoke_async::<(u32, u64)>(&mut conn)).await
        {
            Ok(Ok((0, wait))) => Err(Duration::from_micros(wait.max(1))),
            Ok(Ok((granted, _))) => {
                budget.credit.fetch_add(granted - 1, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::warn!("the shared send budget failed: {e}; this node's used");
                lock(&budget.local).take(Instant::now())
            }
            Err(_) => {
                tracing::warn!("the shared send budget did not answer; this node's used");
                lock(&budget.local).take(Instant::now())
            }
        }
    }
}

fn lock(bucket: &Mutex<TokenBucket>) -> std::sync::MutexGuard<'_, TokenBucket> {
    bucket.lock().unwrap_or_else(|p| p.into_inner())
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

    #[tokio::test]
    async fn a_shared_budget_is_one_for_all_holders_and_outlives_them_until_whole() {
        let budgets = SharedBudgets::new(0.001, 3);
        let (a, b) = (budgets.hold("ann"), budgets.hold("ann"));
        assert_eq!((a.holders, b.holders), (1, 2));
        assert!(budgets.take(&a.budget).await.is_ok());
        assert!(budgets.take(&b.budget).await.is_ok());
        assert!(budgets.take(&a.budget).await.is_ok());
        assert!(
            budgets.take(&b.budget).await.is_err(),
            "three between them, not three each"
        );
        // Someone else has their own.
        assert!(budgets.take(&budgets.hold("bob").budget).await.is_ok());
        // Ann closes everything and comes back: still spent.
        drop((a, b));
        let again = budgets.hold("ann");
        assert_eq!(again.holders, 1);
        assert!(budgets.take(&again.budget).await.is_err());
    }

    #[test]
    fn keyed_buckets_forget_only_whole_ones() {
        let mut buckets = Buckets::new(1.0, 2);
        let now = Instant::now();
        for key in 0..1024 {
            assert!(buckets.take(&key, now).is_ok());
        }
        assert!(buckets.take(&0, now).is_ok());
        assert!(buckets.take(&0, now).is_err(), "0 is spent");
        // A second later every bucket but 0 is whole again; the next new key forgets them.
        let later = now + Duration::from_secs(1);
        assert!(buckets.take(&5000, later).is_ok());
        assert_eq!(
            buckets.buckets.len(),
            2,
            "0, still not whole, and the new one"
        );
        assert!(
            buckets.empty_for(&0, later).is_none(),
            "one token back after a second"
        );
    }
}
