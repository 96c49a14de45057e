//! Seeded staged rollouts for measuring the rollout analysis: healthy canaries (the
//! same failure rate as stable, on 2–30% of one service's traffic, so merely noisier)
//! must never halt, and failing ones (10% of frontend, failing 8% more) must halt
//! within a minute of starting. Each runs seven minutes of the shop through the whole
//! pipeline, in memory.

use devloom_schemas::codec::DecodeOptions;
use devloom_schemas::{RolloutDecision, RolloutVerdict};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::scenario::Scenario;
use super::topology::Topology;
use super::{SimConfig, Simulator};
use crate::core::{Pipeline, RawRecord};
use crate::sinks::Collected;
use crate::sources::Decoding;
use devloom_operators::{Engine, EngineConfig};

/// Services a healthy canary may roll out on: every shop service that serves requests.
const TARGETS: [&str; 12] = [
    "frontend",
    "auth",
    "catalog",
    "search",
    "recommendations",
    "cart",
    "checkout",
    "payments",
    "inventory",
    "shipping",
    "ads",
    "currency",
];

/// One seeded rollout: target, share of its traffic, extra failure rate, gateway rate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CanaryCase {
    /// The service rolled out.
    pub target: &'static str,
    /// Share of its requests on the canary.
    pub share: f64,
    /// Failure rate the canary adds.
    pub extra_error_rate: f64,
    /// Requests per second at the gateway.
    pub rate_per_s: f64,
    /// The simulator's seed.
    pub seed: u64,
}

impl CanaryCase {
    /// Healthy case `index` of `seed`.
    pub fn healthy(seed: u64, index: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(index));
        Self {
            target: TARGETS[rng.random_range(0..TARGETS.len())],
            share: rng.random_range(0.02..0.3),
            extra_error_rate: 0.0,
            rate_per_s: rng.random_range(20.0..80.0),
            seed: rng.random(),
        }
    }

    /// Failing case `index` of `seed`: the `canary` scenario with another seed.
    pub fn failing(seed: u64, index: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(7_919).wrapping_add(index));
        Self { target: "frontend", share: 0.1, extra_error_rate: 0.08, rate_per_s: 50.0, seed: rng.random() }
    }

    /// Every rollout decision of the case, run through the whole pipeline.
    pub fn run(&self) -> std::io::Result<Vec<RolloutDecision>> {
        let scenario = Scenario::canary(self.target, self.share, self.extra_error_rate);
        let config = SimConfig { seed: self.seed, rate_per_s: self.rate_per_s, ..SimConfig::default() };
        let records = Simulator::new(Topology::shop(), scenario, config).map(RawRecord::from);
        let mut pipeline = Pipeline::new(Engine::new(EngineConfig::default()), Collected::default());
        pipeline.run(&mut Decoding::start(records.map(Ok), DecodeOptions::default()))?;
        Ok(pipeline.finish()?.0.rollouts)
    }
}

/// Seconds from the canary's start (minute 2) to its first `halt`, if it halted.
pub fn seconds_to_halt(decisions: &[RolloutDecision]) -> Option<f64> {
    let start_ns = super::DEFAULT_START_NS + 120_000_000_000;
    decisions
        .iter()
        .find(|d| d.verdict == RolloutVerdict::Halt)
        .map(|d| d.event_time_ns.saturating_sub(start_ns) as f64 / 1e9)
}

/// What the canaries measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CanaryReport {
    /// Healthy canaries run.
    pub healthy: u64,
    /// …that halted (false halts).
    pub false_halts: u64,
    /// The healthy cases that halted.
    pub false_halt_cases: Vec<CanaryCase>,
    /// Failing canaries run.
    pub failing: u64,
    /// …that halted within 60 s of event time.
    pub halted_within_60s: u64,
    /// Seconds to halt of each failing canary that halted, sorted.
    pub seconds_to_halt: Vec<f64>,
}

impl CanaryReport {
    /// The report as a table.
    pub fn render(&self) -> String {
        let pct = |n: u64, of: u64| if of == 0 { 0.0 } else { 100.0 * n as f64 / of as f64 };
        let q = |p: f64| {
            let s = &self.seconds_to_halt;
            if s.is_empty() { f64::NAN } else { s[((s.len() - 1) as f64 * p).round() as usize] }
        };
        format!(
            "| canaries | runs | halted | rate |\n|---|---:|---:|---:|\n\
             | healthy (same failure rate, 2–30% of traffic) | {} | {} | {:.1}% false halts |\n\
             | failing (10% of frontend, +8% failures) | {} | {} within 60 s | {:.1}% |\n\
             \ntime to halt: p50 {:.0} s, max {:.0} s after the canary started\n",
            self.healthy,
            self.false_halts,
            pct(self.false_halts, self.healthy),
            self.failing,
            self.halted_within_60s,
            pct(self.halted_within_60s, self.failing),
            q(0.5),
            q(1.0),
        )
    }
}

/// Runs `healthy` healthy and `failing` failing canaries of `seed` on two threads.
pub fn evaluate(healthy: u64, failing: u64, seed: u64) -> std::io::Result<CanaryReport> {
    let cases: Vec<CanaryCase> = (0..healthy)
        .map(|i| CanaryCase::healthy(seed, i))
        .chain((0..failing).map(|i| CanaryCase::failing(seed, i)))
        .collect();
    let results = std::thread::scope(|scope| {
        let halves: Vec<_> = cases
            .chunks(cases.len().div_ceil(2).max(1))
            .map(|chunk| {
                scope.spawn(move || chunk.iter().map(CanaryCase::run).collect::<Result<Vec<_>, _>>())
            })
            .collect();
        let mut all = Vec::with_capacity(cases.len());
        for half in halves {
            all.extend(half.join().map_err(|_| std::io::Error::other("a canary run panicked"))??);
        }
        Ok::<_, std::io::Error>(all)
    })?;
    let mut report = CanaryReport { healthy, failing, ..CanaryReport::default() };
    for (case, decisions) in cases.iter().zip(results) {
        let halt = seconds_to_halt(&decisions);
        if case.extra_error_rate == 0.0 {
            if halt.is_some() {
                report.false_halts += 1;
                report.false_halt_cases.push(case.clone());
            }
        } else if let Some(s) = halt {
            report.halted_within_60s += u64::from(s <= 60.0);
            report.seconds_to_halt.push(s);
        }
    }
    report.seconds_to_halt.sort_by(f64::total_cmp);
    Ok(report)
}
