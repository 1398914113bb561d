//! What a run found, printed twice: a table for people, then one JSON line for scripts.

use std::sync::atomic::{AtomicU64, Ordering};

/// A run's outcome.
pub struct Report {
    pub scenario: &'static str,
    /// Column names, then one row per step.
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    /// Everything worth keeping, for the JSON line.
    pub summary: serde_json::Value,
    /// False if anything was lost or delivered twice.
    pub ok: bool,
}

impl Report {
    pub fn print(&self) {
        println!("herald-bench {}", self.scenario);
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                self.rows
                    .iter()
                    .map(|r| r.get(i).map_or(0, String::len))
                    .chain([c.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:>w$}"))
                .collect::<Vec<_>>()
                .join("  ")
        };
        println!("{}", line(self.columns.clone()));
        for row in &self.rows {
            println!("{}", line(row.iter().map(String::as_str).collect()));
        }
        println!("{}", self.summary);
    }
}

/// Latencies in microseconds, in buckets 5 % wide: lock-free to record from every subscriber task.
pub struct Histogram {
    buckets: Vec<AtomicU64>,
}

const BUCKETS: usize = 400;
const GROWTH: f64 = 1.05;

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Histogram {
    pub fn record(&self, micros: u64) {
        let index = if micros <= 1 {
            0
        } else {
            ((micros as f64).ln() / GROWTH.ln()) as usize
        };
        self.buckets[index.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The latency (upper edge of its bucket) below which `q` of the samples fall, in ms.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let wanted = (total as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= wanted {
                return GROWTH.powi(i as i32 + 1) / 1000.0;
            }
        }
        GROWTH.powi(BUCKETS as i32) / 1000.0
    }

    /// The counts recorded since the last call, by bucket (only buckets with any), leaving zeros.
    pub fn take_counts(&self) -> Vec<(usize, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| b.load(Ordering::Relaxed) > 0)
            .map(|(i, b)| (i, b.swap(0, Ordering::Relaxed)))
            .collect()
    }

    /// Adds counts taken from another histogram (another process's).
    pub fn add_counts(&self, counts: &[(usize, u64)]) {
        for &(i, n) in counts {
            if let Some(bucket) = self.buckets.get(i) {
                bucket.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
    }
}
