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
    /// Amber when the error rate (the lower bound of its 95% Wilson interval, so a few
    /// unlucky requests at low traffic do not count) is at least this much above
    /// baseline (absolute)…
    pub amber_error_increase: f64,
    /// …and at least this many times the baseline.
    pub amber_error_ratio: f64,
    /// Amber when latency is at least this many times its baseline (p99 against the
    /// baseline p99; the median against the baseline median in windows with fewer than
    /// `p99_min_requests`, where a p99 is the few slowest requests)…
    pub amber_latency_ratio: f64,
    /// …and at least this many milliseconds above it.
    pub amber_latency_increase_ms: f64,
    /// Amber also when a node's self time (or an edge's network gap) is
    /// `amber_latency_ratio` times its baseline and at least this many milliseconds above
    /// it: own time is small, so it gets a smaller floor than whole requests.
    pub amber_own_increase_ms: f64,
    /// A service that served none of the requests its baseline rate predicts for the
    /// short window — at least this many — has gone silent (down, or cut off): red.
    pub silent_expected_requests: f64,
    /// Requests a window needs before its p99 is trusted.
    pub p99_min_requests: u64,
    /// Amber also when a node's self time p90 is this many times its baseline and
    /// `amber_own_increase_ms` above it, in windows (now and baseline) of at least
    /// `p90_min_requests`: a fast service hogged or starved is several times slower on
    /// many of its requests, and only milliseconds slower in absolute terms.
    pub amber_own_p90_ratio: f64,
    /// Requests both windows need for `amber_own_p90_ratio`, and calls an outgoing edge
    /// whose gap did not rise needs to speak against its caller's slow wire: with fewer,
    /// the p90 is the slowest one or two.
    pub p90_min_requests: u64,
    /// Fewer requests than this in the short window judge nothing: gray (or unknown at 0).
    pub min_requests: u64,
    /// Amber also when at least this share of an edge's calls (the lower bound of its 95%
    /// Wilson interval) waited on the wire longer than its baseline p99 by the latency
    /// ratio and `amber_latency_increase_ms`, with `min_requests` calls in both windows:
    /// lost packets delay a tenth of the calls by a retransmission timeout, which thirty
    /// calls a minute show as their three slowest, and a p90 only by chance.
    pub amber_tail_share: f64,
    /// A node already red or amber keeps that state until it is this fraction below the
    /// thresholds, so a rate hovering at a threshold does not flap between map versions.
    pub hysteresis: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 0.2,
            amber_error_increase: 0.02,
            amber_error_ratio: 2.0,
            amber_latency_ratio: 1.5,
            amber_latency_increase_ms: 20.0,
            amber_own_increase_ms: 2.0,
            silent_expected_requests: 10.0,
            p99_min_requests: 100,
            amber_own_p90_ratio: 3.0,
            p90_min_requests: 20,
            min_requests: 5,
            amber_tail_share: 0.02,
            hysteresis: 0.2,
        }
    }
}

impl HealthConfig {
    /// Rejects settings that parse but cannot work (the message names the key).
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("failure_threshold", self.failure_threshold),
            ("amber_error_increase", self.amber_error_increase),
            ("amber_tail_share", self.amber_tail_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        for (name, v) in [
            ("amber_error_ratio", self.amber_error_ratio),
            ("amber_latency_ratio", self.amber_latency_ratio),
            ("amber_own_p90_ratio", self.amber_own_p90_ratio),
        ] {
            if !(v.is_finite() && v >= 1.0) {
                return Err(format!("{name} must be a finite ratio of at least 1, got {v}"));
            }
        }
        for (name, v) in [
            ("amber_latency_increase_ms", self.amber_latency_increase_ms),
            ("amber_own_increase_ms", self.amber_own_increase_ms),
            ("silent_expected_requests", self.silent_expected_requests),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} must be a finite number of milliseconds, at least 0, got {v}"));
            }
        }
        if !(0.0..1.0).contains(&self.hysteresis) {
            return Err(format!("hysteresis must be at least 0 and below 1, got {}", self.hysteresis));
        }
        Ok(())
    }
}

impl HealthConfig {
    /// Red, amber, gray or unknown, from traffic alone (alerts are overlaid elsewhere).
    /// `previous` is the state at the last evaluation (for hysteresis).
    pub fn classify(
        &self,
        now: &WindowSummary,
        baseline: &WindowSummary,
        previous: HealthState,
    ) -> HealthState {
        if now.requests == 0 {
            return HealthState::Unknown;
        }
        if now.requests < self.min_requests {
            return HealthState::Gray;
        }
        let relax = |held: bool| relaxed(self.hysteresis, held);
        let rate = now.error_rate();
        if rate >= self.failure_threshold * relax(previous == HealthState::Red) {
            return HealthState::Red;
        }
        let r = relax(matches!(previous, HealthState::Red | HealthState::Amber));
        let base_rate = baseline.error_rate();
        // Amber needs confidence, not a noisy point estimate: the lower bound of the
        // 95% Wilson interval of the error rate must clear the thresholds.
        let rate = wilson_lower_bound(now.failures, now.requests);
        let errors_up = rate >= base_rate + self.amber_error_increase * r
            && rate >= base_rate * (1.0 + (self.amber_error_ratio - 1.0) * r);
        let latency_up = self.slower(now, baseline, self.amber_latency_increase_ms * r, r);
        if errors_up || latency_up { HealthState::Amber } else { HealthState::Gray }
    }

    /// Whether a node with no requests in a short window of `window_s` seconds went
    /// silent: its baseline rate predicted at least `silent_expected_requests`.
    pub fn silent(&self, now: &WindowSummary, baseline: &WindowSummary, window_s: f64) -> bool {
        now.requests == 0
            && baseline.requests > 0
            && baseline.per_second * window_s >= self.silent_expected_requests.max(1.0)
    }

    /// Whether the self time (a node) or network gap (an edge) rose enough to make a
    /// state that is otherwise gray amber; `held` when it was red or amber already. Its
    /// median by `amber_latency_ratio` and `amber_own_increase_ms`, or its slowest tenth
    /// (the p90 against the baseline p90) by the ratio and `amber_latency_increase_ms`: a
    /// process hogging a core slows a third to two thirds of the requests, lost packets
    /// delay a tenth to a third of the calls, and the median need not move. Not the p99:
    /// own time is a short span's remainder, and its slowest hundredth is mostly noise.
    pub fn own_time_up(&self, now: &WindowSummary, baseline: &WindowSummary, held: bool) -> bool {
        let r = relaxed(self.hysteresis, held);
        let up = |now_ms: f64, base_ms: f64, increase_ms: f64| {
            self.risen(now_ms, baseline, base_ms, self.amber_latency_ratio, increase_ms * r, r)
        };
        now.requests >= self.min_requests.max(1)
            && (up(now.p50_ms, baseline.p50_ms, self.amber_own_increase_ms)
                || up(now.p90_ms, baseline.p90_ms, self.amber_latency_increase_ms))
    }

    /// [`Self::own_time_up`] for an edge's network gap, which has also risen when its
    /// tail thickened: `amber_tail_share` of the calls, at the lower bound of the Wilson
    /// interval, slower than the baseline p99 by the latency ratio and
    /// `amber_latency_increase_ms`. `above(ms)` counts the short window's calls slower
    /// than `ms`; it is asked only when the median and the p90 did not rise.
    pub fn gap_up(
        &self,
        now: &WindowSummary,
        baseline: &WindowSummary,
        held: bool,
        above: impl FnOnce(f64) -> u64,
    ) -> bool {
        if self.own_time_up(now, baseline, held) {
            return true;
        }
        let r = relaxed(self.hysteresis, held);
        let enough = now.requests.min(baseline.requests) >= self.min_requests.max(1);
        let slow_ms = (baseline.p99_ms * (1.0 + (self.amber_latency_ratio - 1.0) * r))
            .max(baseline.p99_ms + self.amber_latency_increase_ms * r);
        enough && wilson_lower_bound(above(slow_ms), now.requests) >= self.amber_tail_share * r
    }

    /// [`Self::own_time_up`] for a node's self time, which also rises when its p90 is
    /// `amber_own_p90_ratio` times the baseline's and `amber_own_increase_ms` above it,
    /// with `p90_min_requests` in both windows: a fast service hogged is several times
    /// slower on a third of its requests, yet only milliseconds. Not for network gaps: a
    /// gap of a millisecond or less gains a few in its tail from jitter alone.
    pub fn self_time_up(&self, now: &WindowSummary, baseline: &WindowSummary, held: bool) -> bool {
        let r = relaxed(self.hysteresis, held);
        let counted = now.requests.min(baseline.requests) >= self.p90_min_requests.max(1);
        let (ratio, floor_ms) = (self.amber_own_p90_ratio, self.amber_own_increase_ms * r);
        self.own_time_up(now, baseline, held)
            || (counted && self.risen(now.p90_ms, baseline, baseline.p90_ms, ratio, floor_ms, r))
    }

    /// Latency at least `amber_latency_ratio` (relaxed by `r`) times the baseline and
    /// `increase_ms` above it: p99 against p99 with enough requests, else the medians.
    fn slower(&self, now: &WindowSummary, baseline: &WindowSummary, increase_ms: f64, r: f64) -> bool {
        if now.requests >= self.p99_min_requests {
            self.risen(now.p99_ms, baseline, baseline.p99_ms, self.amber_latency_ratio, increase_ms, r)
        } else {
            self.risen(now.p50_ms, baseline, baseline.p50_ms, self.amber_latency_ratio, increase_ms, r)
        }
    }

    /// `now_ms` at least `ratio` (relaxed by `r`) times `base_ms`, a statistic of
    /// `baseline`, and `increase_ms` above it.
    fn risen(
        &self,
        now_ms: f64,
        baseline: &WindowSummary,
        base_ms: f64,
        ratio: f64,
        increase_ms: f64,
        r: f64,
    ) -> bool {
        // A baseline is whatever came before the short window, however short the
        // history; it needs as many requests as the window does to be compared with.
        baseline.requests >= self.min_requests.max(1)
            && now_ms >= base_ms * (1.0 + (ratio - 1.0) * r)
            && now_ms >= base_ms + increase_ms
    }
}

/// The factor thresholds are relaxed by for a node or edge already red or amber.
fn relaxed(hysteresis: f64, held: bool) -> f64 {
    if held { 1.0 - hysteresis.clamp(0.0, 1.0) } else { 1.0 }
}

/// Lower bound of the 95% Wilson score interval of `failures / requests`.
pub fn wilson_lower_bound(failures: u64, requests: u64) -> f64 {
    if requests == 0 {
        return 0.0;
    }
    const Z2: f64 = 1.96 * 1.96;
    let n = requests as f64;
    let p = failures as f64 / n;
    let centre = p + Z2 / (2.0 * n);
    let margin = 1.96 * (p * (1.0 - p) / n + Z2 / (4.0 * n * n)).sqrt();
    ((centre - margin) / (1.0 + Z2 / n)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(requests: u64, failures: u64, p99_ms: f64) -> WindowSummary {
        WindowSummary {
            requests,
            failures,
            p50_ms: p99_ms / 2.0,
            p90_ms: p99_ms / 1.5,
            p99_ms,
            ..WindowSummary::default()
        }
    }

    /// Self times or gaps: `requests`, their median and p90 (the p99 stays put).
    fn own_time(requests: u64, p50_ms: f64, p90_ms: f64) -> WindowSummary {
        WindowSummary { requests, failures: 0, p50_ms, p90_ms, p99_ms: 250.0, ..WindowSummary::default() }
    }

    #[test]
    fn states_against_baseline() {
        let h = HealthConfig::default();
        let base = w(1000, 10, 50.0);
        let gray = HealthState::Gray;
        assert_eq!(h.classify(&w(0, 0, 0.0), &base, gray), HealthState::Unknown);
        assert_eq!(h.classify(&w(3, 3, 900.0), &base, gray), HealthState::Gray, "too few to judge");
        assert_eq!(h.classify(&w(100, 1, 55.0), &base, gray), HealthState::Gray);
        assert_eq!(h.classify(&w(100, 25, 55.0), &base, gray), HealthState::Red);
        assert_eq!(h.classify(&w(500, 25, 55.0), &base, gray), HealthState::Amber, "5% against 1%");
        assert_eq!(h.classify(&w(90, 3, 55.0), &base, gray), HealthState::Gray, "3 of 90 is noise");
        assert_eq!(h.classify(&w(100, 1, 80.0), &base, gray), HealthState::Amber, "p99 +60%, +30 ms");
        assert_eq!(h.classify(&w(100, 1, 66.0), &base, gray), HealthState::Gray, "p99 +32%: within noise");
        let spiky = WindowSummary {
            requests: 90,
            failures: 0,
            p50_ms: 26.0,
            p90_ms: 40.0,
            p99_ms: 300.0,
            per_second: 1.5,
            seconds: 60.0,
        };
        assert_eq!(h.classify(&spiky, &base, gray), HealthState::Gray, "few requests: the median judges");
        let slow = WindowSummary { p50_ms: 200.0, ..spiky };
        assert_eq!(h.classify(&slow, &base, gray), HealthState::Amber);
        // No baseline yet: only absolute error levels count.
        assert_eq!(h.classify(&w(1000, 30, 500.0), &w(0, 0, 0.0), gray), HealthState::Amber);
        assert_eq!(h.classify(&w(100, 1, 500.0), &w(0, 0, 0.0), gray), HealthState::Gray);
    }

    #[test]
    fn own_time_rises_in_its_median_or_in_its_slowest_tenth() {
        let h = HealthConfig::default();
        let gaps = own_time;
        let base = gaps(1000, 1.0, 2.0);
        assert!(h.own_time_up(&gaps(600, 40.0, 45.0), &base, false), "a slower wire: the median");
        assert!(h.own_time_up(&gaps(30, 1.0, 200.0), &base, false), "lost packets: a tenth of the calls");
        assert!(!h.own_time_up(&gaps(600, 1.0, 15.0), &base, false), "a few ms of jitter in the tail");
        assert!(!h.own_time_up(&gaps(600, 1.0, 1.0), &base, false), "the p99 alone does not count");
        assert!(!h.own_time_up(&gaps(3, 1.0, 200.0), &base, false), "too few calls to judge");
    }

    #[test]
    fn a_gap_rises_too_when_a_few_calls_wait_a_retransmission() {
        let h = HealthConfig::default();
        let gaps = |requests| WindowSummary { p99_ms: 1.5, ..own_time(requests, 0.6, 0.9) };
        let (now, base) = (gaps(40), gaps(400));
        let asked = &std::cell::Cell::new(None);
        let above = |slow: u64| {
            move |ms: f64| {
                asked.set(Some(ms));
                slow
            }
        };
        // Four of forty calls waited 200 ms: the median and the p90 hold.
        assert!(!h.own_time_up(&now, &base, false));
        assert!(h.gap_up(&now, &base, false, above(4)));
        assert_eq!(asked.get(), Some(21.5), "slower than the baseline p99 by 20 ms (and by half)");
        assert!(!h.gap_up(&now, &base, false, above(2)), "two of forty: within chance");
        assert!(!h.gap_up(&gaps(60), &base, false, above(3)), "three of sixty: 1.7% at the lower bound");
        assert!(h.gap_up(&gaps(60), &base, true, above(3)), "held amber, the share relaxes to 1.6%");
        assert!(!h.gap_up(&gaps(4), &base, false, above(4)), "too few calls to judge");
        assert!(!h.gap_up(&now, &gaps(4), false, above(4)), "nor a baseline of four");
        let slow_wire = WindowSummary { p50_ms: 40.0, ..now };
        asked.set(None);
        assert!(h.gap_up(&slow_wire, &base, false, above(0)));
        assert_eq!(asked.get(), None, "a risen median needs no count");
    }

    #[test]
    fn a_fast_services_self_time_rises_when_its_slowest_tenth_is_several_times_slower() {
        let h = HealthConfig::default();
        let own = own_time;
        let base = own(300, 1.0, 1.7);
        // A 1 ms service hogged on a third of its requests: p90 6x, 8 ms above.
        assert!(!h.own_time_up(&own(100, 1.2, 10.0), &base, false), "under the 20 ms floor");
        assert!(h.self_time_up(&own(100, 1.2, 10.0), &base, false), "six times slower");
        assert!(!h.self_time_up(&own(100, 1.2, 4.5), &base, false), "2.6x: within the tail's noise");
        assert!(!h.self_time_up(&own(12, 1.2, 10.0), &base, false), "a p90 of 12 requests");
        assert!(!h.self_time_up(&own(100, 1.2, 10.0), &own(12, 1.0, 1.7), false), "nor of a baseline's 12");
        assert!(h.self_time_up(&own(100, 1.2, 4.6), &base, true), "held amber, the ratio relaxes to 2.6");
        let gaps = own(100, 0.6, 0.9);
        assert!(!h.own_time_up(&own(100, 0.6, 4.0), &gaps, false), "a gap's tail gains ms from jitter");
    }

    #[test]
    fn wilson_bound() {
        assert_eq!(wilson_lower_bound(0, 0), 0.0);
        assert!((wilson_lower_bound(50, 100) - 0.4038).abs() < 1e-3);
        assert!(wilson_lower_bound(3, 90) < 0.012);
    }

    #[test]
    fn hysteresis_holds_a_state_near_its_threshold() {
        let h = HealthConfig::default();
        let base = w(1000, 10, 50.0);
        // 18% failures: not red from gray, still red from red; 2.8%: amber only if amber.
        assert_eq!(h.classify(&w(100, 18, 50.0), &base, HealthState::Gray), HealthState::Amber);
        assert_eq!(h.classify(&w(100, 18, 50.0), &base, HealthState::Red), HealthState::Red);
        assert_eq!(h.classify(&w(10_000, 300, 50.0), &base, HealthState::Gray), HealthState::Gray);
        assert_eq!(h.classify(&w(10_000, 300, 50.0), &base, HealthState::Amber), HealthState::Amber);
        assert_eq!(h.classify(&w(10_000, 150, 50.0), &base, HealthState::Amber), HealthState::Gray);
    }
}
