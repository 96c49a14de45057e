//! Health classification: a short window against its baseline.

use devloom_schemas::HealthState;
use serde::{Deserialize, Serialize};

use crate::rolling_stats::WindowSummary;

/// Thresholds. Defaults follow Kiali's failure threshold (20%) and add latency and
/// baseline comparison for amber.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Failure rate at or above which a node or edge is red.
    pub failure_threshold: f64,
    /// Amber when the error rate is at least this much above baseline (absolute)…
    pub amber_error_increase: f64,
    /// …and at least this many times the baseline.
    pub amber_error_ratio: f64,
    /// Amber when p99 latency is at least this many times the baseline p99…
    pub amber_latency_ratio: f64,
    /// …and at least this many milliseconds above it.
    pub amber_latency_increase_ms: f64,
    /// Fewer requests than this in the short window judge nothing: gray (or unknown at 0).
    pub min_requests: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 0.2,
            amber_error_increase: 0.02,
            amber_error_ratio: 2.0,
            amber_latency_ratio: 1.5,
            amber_latency_increase_ms: 20.0,
            min_requests: 5,
        }
    }
}

impl HealthConfig {
    /// Red, amber, gray or unknown, from traffic alone (alerts are overlaid elsewhere).
    pub fn classify(&self, now: &WindowSummary, baseline: &WindowSummary) -> HealthState {
        if now.requests == 0 {
            return HealthState::Unknown;
        }
        if now.requests < self.min_requests {
            return HealthState::Gray;
        }
        let rate = now.error_rate();
        if rate >= self.failure_threshold {
            return HealthState::Red;
        }
        let base_rate = baseline.error_rate();
        let errors_up =
            rate >= base_rate + self.amber_error_increase && rate >= base_rate * self.amber_error_ratio;
        let latency_up = baseline.requests > 0
            && now.p99_ms >= baseline.p99_ms * self.amber_latency_ratio
            && now.p99_ms >= baseline.p99_ms + self.amber_latency_increase_ms;
        if errors_up || latency_up { HealthState::Amber } else { HealthState::Gray }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(requests: u64, failures: u64, p99_ms: f64) -> WindowSummary {
        WindowSummary { requests, failures, p99_ms, per_second: 0.0 }
    }

    #[test]
    fn states_against_baseline() {
        let h = HealthConfig::default();
        let base = w(1000, 10, 50.0);
        assert_eq!(h.classify(&w(0, 0, 0.0), &base), HealthState::Unknown);
        assert_eq!(h.classify(&w(3, 3, 900.0), &base), HealthState::Gray, "too few to judge");
        assert_eq!(h.classify(&w(100, 1, 55.0), &base), HealthState::Gray);
        assert_eq!(h.classify(&w(100, 25, 55.0), &base), HealthState::Red);
        assert_eq!(h.classify(&w(100, 5, 55.0), &base), HealthState::Amber, "5% against 1%");
        assert_eq!(h.classify(&w(100, 1, 80.0), &base), HealthState::Amber, "p99 +60%, +30 ms");
        assert_eq!(h.classify(&w(100, 1, 66.0), &base), HealthState::Gray, "p99 +32%: within noise");
        // No baseline yet: only absolute error levels count.
        assert_eq!(h.classify(&w(100, 3, 500.0), &w(0, 0, 0.0)), HealthState::Amber);
        assert_eq!(h.classify(&w(100, 1, 500.0), &w(0, 0, 0.0)), HealthState::Gray);
    }
}
