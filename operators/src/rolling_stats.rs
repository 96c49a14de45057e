//! Rolling request / failure / latency statistics over event-time buckets: a short
//! window (fine buckets with DDSketch latency sketches) and a baseline (one small
//! summary per closed bucket).

use std::collections::VecDeque;

use devloom_schemas::TimestampNs;
use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config as SketchConfig, DDSketch};

/// Window sizes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowConfig {
    /// Bucket width, milliseconds; health is re-evaluated on every bucket boundary.
    pub bucket_ms: u64,
    /// The "now" window, milliseconds.
    pub short_window_ms: u64,
    /// The baseline window before it, milliseconds.
    pub baseline_window_ms: u64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self { bucket_ms: 10_000, short_window_ms: 60_000, baseline_window_ms: 30 * 60_000 }
    }
}

impl WindowConfig {
    /// Rejects settings that parse but cannot work (the message names the key).
    pub fn validate(&self) -> Result<(), String> {
        if self.bucket_ms == 0 {
            return Err("bucket_ms must be above 0".into());
        }
        if self.short_window_ms < self.bucket_ms {
            return Err("short_window_ms must be at least bucket_ms".into());
        }
        if self.baseline_window_ms < self.bucket_ms {
            return Err("baseline_window_ms must be at least bucket_ms".into());
        }
        Ok(())
    }
}

impl WindowConfig {
    fn bucket_ns(&self) -> u64 {
        self.bucket_ms.max(1).saturating_mul(1_000_000)
    }
}

/// Requests, failure rate, p99 latency and rate over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowSummary {
    /// Requests in the window.
    pub requests: u64,
    /// Failed requests in the window.
    pub failures: u64,
    /// Median latency, milliseconds (0 without requests).
    pub p50_ms: f64,
    /// 90th percentile latency, milliseconds (0 without requests).
    #[serde(default)]
    pub p90_ms: f64,
    /// 99th percentile latency, milliseconds (0 without requests): the median of the
    /// 10 s buckets' p99s, in the short window as in the baseline.
    pub p99_ms: f64,
    /// Requests per second over the window.
    pub per_second: f64,
    /// Seconds the window covers (`per_second` is `requests` over them): the short
    /// window's length, or the baseline's buckets not closed while degraded.
    #[serde(default)]
    pub seconds: f64,
}

impl WindowSummary {
    /// Failures / requests (0 without requests).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.failures as f64 / self.requests as f64 }
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Bucket {
    start_ns: TimestampNs,
    requests: u64,
    failures: u64,
    latency_ms: DDSketch,
    /// Its p99, kept by `advance` until another request lands in it: the short window
    /// reads every open bucket's at every tick, and all but the newest are done.
    #[serde(skip)]
    p99_ms: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Closed {
    start_ns: TimestampNs,
    requests: u64,
    failures: u64,
    p50_ms: f64,
    #[serde(default)]
    p90_ms: f64,
    p99_ms: f64,
    /// Closed while its node or edge was red or amber: kept out of the baseline, so a
    /// fault that outlasts the short window does not become its own baseline.
    #[serde(default)]
    degraded: bool,
}

/// Rolling statistics of one node or edge.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RollingStats {
    open: VecDeque<Bucket>,
    closed: VecDeque<Closed>,
    /// What `closed` adds up to, kept as buckets enter and leave: derived, so not stored.
    #[serde(skip)]
    totals: BaselineTotals,
}

/// A checkpoint holds the buckets; the baseline's totals are rebuilt from them.
impl<'de> Deserialize<'de> for RollingStats {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Stored {
            open: VecDeque<Bucket>,
            closed: VecDeque<Closed>,
        }
        let Stored { open, closed } = Stored::deserialize(deserializer)?;
        let mut totals = BaselineTotals::default();
        closed.iter().for_each(|c| totals.add(c));
        Ok(Self { open, closed, totals })
    }
}

/// The baseline's sums and its buckets' percentiles in sorted order, updated by one
/// bucket in and one out per tick. Every node and edge reads its baseline at every tick;
/// recomputing it there (a pass over 180 buckets, three selections) was 40% of the tick.
#[derive(Clone, Debug, Default)]
struct BaselineTotals {
    /// Buckets not closed while degraded.
    buckets: u64,
    requests: u64,
    failures: u64,
    /// The p50s, p90s and p99s of those buckets that had requests: three ascending runs
    /// (total order) of equal length, back to back in one allocation, since every node and
    /// edge holds two of these.
    percentiles: Vec<f64>,
}

impl BaselineTotals {
    fn add(&mut self, c: &Closed) {
        if c.degraded {
            return;
        }
        self.buckets += 1;
        self.requests += c.requests;
        self.failures += c.failures;
        if c.requests > 0 {
            let n = self.percentiles.len() / 3;
            // The last run first, so the earlier runs' offsets still hold.
            for (run, value) in [c.p50_ms, c.p90_ms, c.p99_ms].into_iter().enumerate().rev() {
                let at = self.slot(n, run, value);
                self.percentiles.insert(at, value);
            }
        }
    }

    fn remove(&mut self, c: &Closed) {
        if c.degraded {
            return;
        }
        self.buckets -= 1;
        self.requests -= c.requests;
        self.failures -= c.failures;
        if c.requests > 0 {
            let n = self.percentiles.len() / 3;
            for (run, value) in [c.p50_ms, c.p90_ms, c.p99_ms].into_iter().enumerate().rev() {
                let at = self.slot(n, run, value);
                // The value is there: it went in with this very bucket.
                debug_assert!(self.percentiles.get(at).is_some_and(|v| v.total_cmp(&value).is_eq()));
                self.percentiles.remove(at);
            }
        }
    }

    /// Where `value` goes in (or is found in) run `run` of runs `n` long.
    fn slot(&self, n: usize, run: usize, value: f64) -> usize {
        let start = run * n;
        start + self.percentiles[start..start + n].partition_point(|v| v.total_cmp(&value).is_lt())
    }

    /// The median (the upper one of an even count; 0 when empty) of run `run`.
    fn median(&self, run: usize) -> f64 {
        let n = self.percentiles.len() / 3;
        if n == 0 { 0.0 } else { self.percentiles[run * n + n / 2] }
    }
}

/// How many of the latencies in `sketch` are above `ms` (to the sketch's relative
/// accuracy).
pub fn count_above(sketch: &DDSketch, ms: f64) -> u64 {
    let n = sketch.count() as u64;
    // The sketch answers quantiles only: find the first rank whose value is above `ms`
    // (the rank of quantile q is ⌊q (n − 1)⌋; the half keeps it off the floor).
    let value_at = |rank: u64| quantile(sketch, ((rank as f64 + 0.5) / (n.max(2) - 1) as f64).min(1.0));
    let (mut low, mut high) = (0, n);
    while low < high {
        let mid = (low + high) / 2;
        if value_at(mid) > ms { high = mid } else { low = mid + 1 }
    }
    n - low
}

fn quantile(sketch: &DDSketch, q: f64) -> f64 {
    sketch.quantile(q).ok().flatten().unwrap_or(0.0)
}

impl RollingStats {
    /// Records one request.
    pub fn record(&mut self, cfg: &WindowConfig, time_ns: TimestampNs, latency_ns: u64, failed: bool) {
        let bucket = self.bucket(time_ns - time_ns % cfg.bucket_ns());
        bucket.requests += 1;
        bucket.failures += u64::from(failed);
        bucket.latency_ms.add(latency_ns as f64 / 1e6);
        bucket.p99_ms = None;
    }

    /// Adds a bucket's worth of requests summed elsewhere (a call aggregate): the same
    /// counts and, sketches merging exactly, the same percentiles as recording each.
    pub fn merge(
        &mut self,
        cfg: &WindowConfig,
        time_ns: TimestampNs,
        requests: u64,
        failures: u64,
        latency_ms: &DDSketch,
    ) {
        let bucket = self.bucket(time_ns - time_ns % cfg.bucket_ns());
        bucket.requests += requests;
        bucket.failures += failures;
        // Both sketches use the default config, so merging cannot fail.
        let _ = bucket.latency_ms.merge(latency_ms);
        bucket.p99_ms = None;
    }

    /// The open bucket starting at `start_ns`, added where it belongs if missing; a
    /// request older than every open bucket counts in the oldest (its own has left the
    /// short window).
    fn bucket(&mut self, start_ns: TimestampNs) -> &mut Bucket {
        let position = self.open.iter().rposition(|b| b.start_ns <= start_ns);
        match position {
            Some(i) if self.open[i].start_ns == start_ns => &mut self.open[i],
            Some(i) => {
                self.open.insert(i + 1, Bucket::new(start_ns));
                &mut self.open[i + 1]
            }
            None if self.open.is_empty() => {
                self.open.push_back(Bucket::new(start_ns));
                self.open.back_mut().expect("pushed")
            }
            None => &mut self.open[0],
        }
    }

    /// Moves buckets that left the short window into the baseline (marked `degraded`
    /// when the owner is red or amber now: they will not count) and forgets buckets older
    /// than the baseline window. Forgets first, so in steady state one bucket leaves before
    /// one comes and nothing grows.
    pub fn advance(&mut self, cfg: &WindowConfig, now_ns: TimestampNs, degraded: bool) {
        let short_start = now_ns.saturating_sub(cfg.short_window_ms.saturating_mul(1_000_000));
        let baseline_start = short_start.saturating_sub(cfg.baseline_window_ms.saturating_mul(1_000_000));
        while self.closed.front().is_some_and(|c| c.start_ns < baseline_start) {
            let gone = self.closed.pop_front().expect("checked");
            self.totals.remove(&gone);
        }
        while self.open.front().is_some_and(|b| b.start_ns + cfg.bucket_ns() <= short_start) {
            let b = self.open.pop_front().expect("checked");
            if b.start_ns < baseline_start {
                // Left the baseline too while no tick came.
                continue;
            }
            let closed = Closed {
                start_ns: b.start_ns,
                requests: b.requests,
                failures: b.failures,
                p50_ms: quantile(&b.latency_ms, 0.5),
                p90_ms: quantile(&b.latency_ms, 0.9),
                p99_ms: b.p99(),
                degraded,
            };
            self.totals.add(&closed);
            self.closed.push_back(closed);
        }
        for b in self.open.iter_mut().filter(|b| b.p99_ms.is_none() && b.requests > 0) {
            b.p99_ms = Some(b.p99());
        }
    }

    /// True when nothing is held (the node or edge may be forgotten).
    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.closed.is_empty()
    }

    /// The short window at a tick at `until_ns`: its buckets before then (one starting
    /// there is the next window's, though a pairing instance ahead of the others may have
    /// handed some of it on already). Its p99 is the median of its buckets' p99s, as the
    /// baseline's is: a bucket of fifteen requests has its slowest for p99, and the
    /// median of such maxima is nearer the 95th percentile; a p99 over the whole window's
    /// requests would be half again above that baseline in a quarter of the minutes of a
    /// healthy service with 1.5 requests a second.
    pub fn short(&self, cfg: &WindowConfig, until_ns: TimestampNs) -> WindowSummary {
        self.short_with_sketch(cfg, until_ns).0
    }

    /// [`Self::short`], and the window's latencies merged into one sketch (for
    /// [`count_above`]).
    pub fn short_with_sketch(&self, cfg: &WindowConfig, until_ns: TimestampNs) -> (WindowSummary, DDSketch) {
        let mut sketch = DDSketch::new(SketchConfig::defaults());
        let (mut requests, mut failures) = (0, 0);
        let mut p99s = Vec::with_capacity(self.open.len());
        for b in self.open.iter().take_while(|b| b.start_ns < until_ns) {
            requests += b.requests;
            failures += b.failures;
            if b.requests > 0 {
                p99s.push(b.p99());
            }
            // Both sketches use the default config, so merging cannot fail.
            let _ = sketch.merge(&b.latency_ms);
        }
        p99s.sort_by(f64::total_cmp);
        let seconds = cfg.short_window_ms.max(1) as f64 / 1000.0;
        let summary = WindowSummary {
            requests,
            failures,
            p50_ms: quantile(&sketch, 0.5),
            p90_ms: quantile(&sketch, 0.9),
            p99_ms: p99s.get(p99s.len() / 2).copied().unwrap_or(0.0),
            per_second: requests as f64 / seconds,
            seconds,
        };
        (summary, sketch)
    }

    /// The baseline: totals over the closed buckets not closed while degraded, and the
    /// medians of their percentiles.
    pub fn baseline(&self, cfg: &WindowConfig) -> WindowSummary {
        let t = &self.totals;
        let seconds = (t.buckets * cfg.bucket_ms) as f64 / 1000.0;
        WindowSummary {
            requests: t.requests,
            failures: t.failures,
            p50_ms: t.median(0),
            p90_ms: t.median(1),
            p99_ms: t.median(2),
            per_second: if seconds > 0.0 { t.requests as f64 / seconds } else { 0.0 },
            seconds,
        }
    }
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("start_ns", &self.start_ns)
            .field("requests", &self.requests)
            .field("failures", &self.failures)
            .field("p99_ms", &self.p99())
            .finish()
    }
}

impl Bucket {
    fn new(start_ns: TimestampNs) -> Self {
        Self {
            start_ns,
            requests: 0,
            failures: 0,
            latency_ms: DDSketch::new(SketchConfig::defaults()),
            p99_ms: None,
        }
    }

    /// Its p99: the kept one, or read from its sketch.
    fn p99(&self) -> f64 {
        self.p99_ms.unwrap_or_else(|| quantile(&self.latency_ms, 0.99))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_quiet_healthy_services_window_p99_reads_like_its_baseline() {
        // 1.5 requests a second (15 a bucket) for 40 minutes, healthy throughout: 8 ms
        // typical, a long tail (a Pareto draw from a fixed pseudo-random sequence).
        let cfg = WindowConfig::default();
        let mut stats = RollingStats::default();
        let mut x: u64 = 7;
        let mut ratios = Vec::new();
        for i in 0..3_600u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            let latency_ms = 8.0 * (1.0 / (1.0 - u)).powf(0.3);
            let t = i * S * 2 / 3;
            stats.record(&cfg, t, (latency_ms * 1e6) as u64, false);
            if i % 15 == 14 {
                stats.advance(&cfg, t, false);
                if t > 31 * 60 * S {
                    ratios.push(stats.short(&cfg, u64::MAX).p99_ms / stats.baseline(&cfg).p99_ms);
                }
            }
        }
        ratios.sort_by(f64::total_cmp);
        let (typical, amber) = (ratios[ratios.len() / 2], ratios.iter().filter(|&&r| r >= 1.5).count());
        assert!(typical < 1.2, "the window's p99 typically ran {typical:.2}x the baseline's");
        assert!(
            amber * 10 < ratios.len(),
            "{amber} of {} minutes at 1.5x the baseline's p99 (amber)",
            ratios.len()
        );
    }

    #[test]
    fn the_short_window_counts_its_requests_slower_than_a_threshold() {
        let cfg = WindowConfig::default();
        let mut stats = RollingStats::default();
        let above = |stats: &RollingStats, ms| count_above(&stats.short_with_sketch(&cfg, u64::MAX).1, ms);
        assert_eq!(above(&stats, 1.0), 0, "nothing recorded");
        // 37 calls in the last minute, every ninth waiting 200 ms on a retransmission.
        for i in 0..37u64 {
            let ms = if i % 9 == 0 { 200 } else { 1 + i % 3 };
            stats.record(&cfg, 100 * S + i * S, ms * 1_000_000, false);
        }
        stats.advance(&cfg, 137 * S, false);
        assert_eq!(stats.short(&cfg, u64::MAX).requests, 37);
        assert_eq!(above(&stats, 21.5), 5);
        assert_eq!(above(&stats, 2.5), 5 + 12, "the 3 ms calls too");
        assert_eq!(above(&stats, 0.5), 37);
        assert_eq!(above(&stats, 250.0), 0);
    }

    #[test]
    fn a_late_request_counts_in_its_own_bucket_between_open_ones() {
        let cfg = WindowConfig::default();
        let mut stats = RollingStats::default();
        for t in [100 * S, 120 * S, 111 * S] {
            stats.record(&cfg, t, 5_000_000, false);
        }
        let starts: Vec<u64> = stats.open.iter().map(|b| b.start_ns / S).collect();
        assert_eq!(starts, [100, 110, 120], "not counted in the 100 s bucket");
        assert_eq!(stats.short(&cfg, 120 * S).requests, 2, "a tick at 120 s reads the buckets before it");
    }

    #[test]
    fn short_window_rolls_into_baseline() {
        let cfg = WindowConfig::default();
        let mut stats = RollingStats::default();
        for i in 0..600u64 {
            // 10 req/s at 20 ms for 60 s, with 1% failures.
            stats.record(&cfg, i * S / 10, 20_000_000, i % 100 == 0);
        }
        for i in 600..1200u64 {
            // Then 10 req/s at 200 ms with 50% failures.
            stats.record(&cfg, i * S / 10, 200_000_000, i % 2 == 0);
        }
        stats.advance(&cfg, 120 * S, false);
        let now = stats.short(&cfg, u64::MAX);
        let base = stats.baseline(&cfg);
        assert_eq!(now.requests, 600);
        assert!((now.error_rate() - 0.5).abs() < 1e-9);
        assert!((now.p99_ms - 200.0).abs() < 200.0 * 0.02, "DDSketch 1% relative accuracy: {}", now.p99_ms);
        assert!((now.per_second - 10.0).abs() < 1e-9);
        assert_eq!(base.requests, 600);
        assert!((base.error_rate() - 0.01).abs() < 1e-9);
        assert!((base.p99_ms - 20.0).abs() < 0.5);
        assert!((base.p50_ms - 20.0).abs() < 0.5 && (now.p50_ms - 200.0).abs() < 4.0);
        assert!((base.per_second - 10.0).abs() < 1e-9);
        stats.advance(&cfg, 40 * 60 * S, false);
        assert!(stats.is_empty(), "everything aged out");
    }

    /// The baseline the slow way: a pass over the closed buckets, sorted medians.
    fn recomputed(stats: &RollingStats, cfg: &WindowConfig) -> WindowSummary {
        let normal: Vec<&Closed> = stats.closed.iter().filter(|c| !c.degraded).collect();
        let median = |pick: fn(&Closed) -> f64| {
            let mut values: Vec<f64> = normal.iter().filter(|c| c.requests > 0).map(|c| pick(c)).collect();
            values.sort_by(f64::total_cmp);
            values.get(values.len() / 2).copied().unwrap_or(0.0)
        };
        let requests = normal.iter().map(|c| c.requests).sum::<u64>();
        let seconds = (normal.len() as u64 * cfg.bucket_ms) as f64 / 1000.0;
        WindowSummary {
            requests,
            failures: normal.iter().map(|c| c.failures).sum(),
            p50_ms: median(|c| c.p50_ms),
            p90_ms: median(|c| c.p90_ms),
            p99_ms: median(|c| c.p99_ms),
            per_second: if seconds > 0.0 { requests as f64 / seconds } else { 0.0 },
            seconds,
        }
    }

    #[test]
    fn the_kept_baseline_equals_one_recomputed_from_its_buckets_and_survives_a_checkpoint() {
        let cfg = WindowConfig::default();
        let mut stats = RollingStats::default();
        let mut full = false;
        // 50 minutes at 4 req/s, latencies cycling with period 7 s against 10 s buckets
        // (so bucket percentiles repeat and tie), degraded for minutes 20–25.
        for i in 0..12_000u64 {
            let ms = 5 + (i % 28) * 3 + (i / 2_400) * 7;
            stats.record(&cfg, i * S / 4, ms * 1_000_000, i % 13 == 0);
            if i % 40 == 39 {
                let now = (i + 1) * S / 4;
                stats.advance(&cfg, now, (1_200..1_500).contains(&(now / S)));
                assert_eq!(stats.baseline(&cfg), recomputed(&stats, &cfg), "at {} s", now / S);
                full |= stats.closed.len() == 180;
            }
        }
        assert!(full, "the baseline filled and buckets left it");
        let json = serde_json::to_string(&stats).expect("serializes");
        assert!(!json.contains("totals"), "derived totals are not checkpointed: {json:.200}");
        let restored: RollingStats = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(restored.baseline(&cfg), stats.baseline(&cfg));
    }

    #[test]
    fn buckets_closed_while_degraded_stay_out_of_the_baseline() {
        let cfg = WindowConfig::default();
        let mut stats = RollingStats::default();
        for i in 0..1800u64 {
            // 10 req/s: 20 ms for a minute, then 200 ms (the fault) for two.
            let ms = if i < 600 { 20 } else { 200 };
            stats.record(&cfg, i * S / 10, ms * 1_000_000, false);
            if i % 100 == 99 {
                // Amber (its short window slow) from 120 s on: every fault bucket
                // leaves the short window after that.
                stats.advance(&cfg, (i + 1) * S / 10, i >= 1200);
            }
        }
        let base = stats.baseline(&cfg);
        assert!((base.p50_ms - 20.0).abs() < 0.5, "the fault is not its own baseline: {base:?}");
        assert_eq!(base.requests, 600);
    }
}
