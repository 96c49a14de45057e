//! Wall-clock latency from reading an alert to publishing its impact map, summarized
//! with an HDR histogram.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// Now, in nanoseconds since the Unix epoch.
pub fn wall_clock_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Percentiles of recorded latencies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Maximum, milliseconds.
    pub max_ms: f64,
}

/// Recorded latencies (microsecond resolution, up to an hour).
#[derive(Debug)]
pub struct LatencyStats {
    hist: Histogram<u64>,
}

impl Default for LatencyStats {
    fn default() -> Self {
        Self { hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid") }
    }
}

impl LatencyStats {
    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let _ = self.hist.record((latency.as_micros() as u64).clamp(1, 3_600_000_000));
    }

    /// The summary, or `None` without samples.
    pub fn summary(&self) -> Option<LatencySummary> {
        (!self.hist.is_empty()).then(|| LatencySummary {
            count: self.hist.len(),
            p50_ms: self.hist.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: self.hist.value_at_quantile(0.99) as f64 / 1000.0,
            max_ms: self.hist.max() as f64 / 1000.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s = LatencyStats::default();
        assert!(s.summary().is_none());
        for ms in 1..=100 {
            s.record(Duration::from_millis(ms));
        }
        let sum = s.summary().unwrap();
        assert_eq!(sum.count, 100);
        assert!((sum.p50_ms - 50.0).abs() < 0.1 && (sum.p99_ms - 99.0).abs() < 0.1, "{sum:?}");
    }
}
