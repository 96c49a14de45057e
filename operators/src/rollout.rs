//! Staged rollouts: per-version health, and the canary compared with the stable version.
//!
//! Every request a service serves comes with its span's `service.version` (a server or
//! consumer span directly, a kind-less one through pairing), summed per release and
//! event-time bucket ([`crate::call_aggregates`]). One version per (service,
//! environment) keeps only its newest bucket; from the moment a second version serves
//! traffic, both keep their buckets (requests, failures, a DDSketch of latency), so the
//! two are compared over the same window: from the canary's first request, at most
//! `window_ms` back. On every bucket boundary the newest version (the canary) is
//! compared with the oldest still serving (stable) over the closed buckets of that
//! window:
//!
//! - fewer than `min_requests` on either side → `inconclusive`;
//! - the canary fails more often, by a one-sided two-proportion z-test (pooled,
//!   continuity-corrected) with p ≤ `max_p_value`, **and** by at least
//!   `min_error_rate_increase` → `halt`;
//! - with `min_latency_requests` on both sides, canary p99 ≥ `max_p99_ratio` × stable
//!   p99, or canary median ≥ `max_median_ratio` × stable median → `halt`;
//! - otherwise `continue`.
//!
//! A decision is emitted whenever the verdict or the pair of versions changes. A
//! version idle for `version_idle_ms` no longer serves; with one version left the
//! buckets are dropped.

use std::collections::VecDeque;
use std::sync::Arc;

use devloom_schemas::time::format_rfc3339;
use devloom_schemas::{
    ROLLOUT_SCHEMA_VERSION, RolloutComparison, RolloutDecision, RolloutVerdict, TimestampNs, VersionHealth,
};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config as SketchConfig, DDSketch};

use crate::call_aggregates::{CallAggregate, Subject};
use crate::operator::Operator;

/// Rollout-analysis settings: the `[engine.rollouts]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutConfig {
    /// Bucket width, milliseconds; a decision is considered on every boundary.
    pub bucket_ms: u64,
    /// The longest window compared, milliseconds.
    pub window_ms: u64,
    /// A version with no request for this long no longer serves, milliseconds.
    pub version_idle_ms: u64,
    /// Requests each side needs before any verdict but `inconclusive`.
    pub min_requests: u64,
    /// Largest one-sided p-value of "the canary fails more often" that halts. Decisions
    /// are looked at every bucket, so this is kept well below the usual 0.05.
    pub max_p_value: f64,
    /// Smallest error-rate increase (canary − stable) that halts: a significant but
    /// negligible difference does not.
    pub min_error_rate_increase: f64,
    /// Requests each side needs before latency can halt (a p99 of a few requests is noise).
    pub min_latency_requests: u64,
    /// Canary p99 / stable p99 at or above which the rollout halts.
    pub max_p99_ratio: f64,
    /// Canary median / stable median at or above which the rollout halts.
    pub max_median_ratio: f64,
    /// Most (service, environment) pairs tracked; beyond it the least recently seen
    /// tenth is forgotten (counted).
    pub max_services: usize,
    /// Most versions of one service tracked at once; a new one beyond it replaces the
    /// least recently seen.
    pub max_versions: usize,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        Self {
            bucket_ms: 10_000,
            window_ms: 300_000,
            version_idle_ms: 60_000,
            min_requests: 100,
            max_p_value: 0.001,
            min_error_rate_increase: 0.01,
            min_latency_requests: 200,
            max_p99_ratio: 2.0,
            max_median_ratio: 1.5,
            max_services: 100_000,
            max_versions: 8,
        }
    }
}

impl RolloutConfig {
    /// Rejects settings that parse but cannot work (the message names the key).
    pub fn validate(&self) -> Result<(), String> {
        if self.bucket_ms == 0 {
            return Err("bucket_ms must be above 0".into());
        }
        if self.window_ms < self.bucket_ms {
            return Err("window_ms must be at least bucket_ms".into());
        }
        if !(self.max_p_value > 0.0 && self.max_p_value < 0.5) {
            return Err("max_p_value must be between 0 and 0.5".into());
        }
        if self.max_p99_ratio <= 1.0 || self.max_median_ratio <= 1.0 {
            return Err("max_p99_ratio and max_median_ratio must be above 1".into());
        }
        if self.max_services == 0 || self.max_versions < 2 {
            return Err("max_services must be above 0 and max_versions at least 2".into());
        }
        Ok(())
    }

    fn bucket_ns(&self) -> u64 {
        self.bucket_ms.saturating_mul(1_000_000)
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Bucket {
    start_ns: TimestampNs,
    requests: u64,
    failures: u64,
    latency_ms: DDSketch,
}

/// One version of a service.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Track {
    version: Arc<str>,
    first_seen_ns: TimestampNs,
    last_seen_ns: TimestampNs,
    /// Only while another version serves too, oldest first.
    buckets: VecDeque<Bucket>,
}

impl Track {
    fn new(version: Arc<str>, time_ns: TimestampNs) -> Self {
        Self { version, first_seen_ns: time_ns, last_seen_ns: time_ns, buckets: VecDeque::new() }
    }

    /// Adds an aggregate's requests to its bucket. With `alone` (no other version
    /// serves) only the newest bucket is kept: the one a canary starting now is compared
    /// over.
    fn merge(&mut self, a: &CallAggregate, alone: bool) {
        let start_ns = a.bucket_ns;
        let i = match self.buckets.iter().rposition(|b| b.start_ns <= start_ns) {
            Some(i) if self.buckets[i].start_ns == start_ns => i,
            Some(i) => {
                self.buckets.insert(i + 1, Bucket::new(start_ns));
                i + 1
            }
            // Older than every bucket: before this comparison began, or expired.
            None if !self.buckets.is_empty() => return,
            None => {
                self.buckets.push_back(Bucket::new(start_ns));
                0
            }
        };
        let b = &mut self.buckets[i];
        b.requests += a.count;
        b.failures += a.failures;
        // Both sketches use the default config, so merging cannot fail.
        let _ = b.latency_ms.merge(&a.latency_ms);
        if alone {
            let keep = self.buckets.len() - 1;
            self.buckets.drain(..keep);
        }
    }

    /// Totals over the closed buckets in `[from_ns, until_ns)`.
    fn health(&self, from_ns: TimestampNs, until_ns: TimestampNs) -> (VersionHealth, Option<DDSketch>) {
        let mut sketch: Option<DDSketch> = None;
        let (mut requests, mut failures) = (0, 0);
        for b in self.buckets.iter().filter(|b| b.start_ns >= from_ns && b.start_ns < until_ns) {
            requests += b.requests;
            failures += b.failures;
            match &mut sketch {
                Some(s) => {
                    let _ = s.merge(&b.latency_ms);
                }
                None => sketch = Some(b.latency_ms.clone()),
            }
        }
        let q = |p: f64| sketch.as_ref().and_then(|s| s.quantile(p).ok().flatten()).unwrap_or(0.0);
        let health = VersionHealth {
            version: self.version.to_string(),
            requests,
            failures,
            error_rate: if requests == 0 { 0.0 } else { failures as f64 / requests as f64 },
            p50_ms: q(0.5),
            p99_ms: q(0.99),
            first_seen: format_rfc3339(self.first_seen_ns),
        };
        (health, sketch)
    }
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("start_ns", &self.start_ns)
            .field("requests", &self.requests)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl Bucket {
    fn new(start_ns: TimestampNs) -> Self {
        Self { start_ns, requests: 0, failures: 0, latency_ms: DDSketch::new(SketchConfig::defaults()) }
    }
}

/// The versions of one (service, environment).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Rollout {
    service: Arc<str>,
    environment: Option<Arc<str>>,
    versions: Vec<Track>,
    sequence: u32,
    /// (stable, canary, verdict) of the last decision emitted.
    last: Option<(Arc<str>, Arc<str>, RolloutVerdict)>,
    last_seen_ns: TimestampNs,
}

/// Serializable state of a [`RolloutAnalyzer`], sorted by service.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RolloutSnapshot {
    rollouts: Vec<Rollout>,
    next_bucket_ns: TimestampNs,
    forgotten: u64,
}

/// The rollout-analysis operator.
#[derive(Debug, Default)]
pub struct RolloutAnalyzer {
    config: RolloutConfig,
    /// By service, then environment.
    rollouts: FxHashMap<Arc<str>, Vec<Rollout>>,
    /// Evaluate when the watermark reaches this bucket boundary.
    next_bucket_ns: TimestampNs,
    forgotten: u64,
}

impl RolloutAnalyzer {
    /// An analyzer with `config`.
    pub fn new(config: RolloutConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// Services forgotten at `max_services`.
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }

    /// The versions of `service` in each environment where two or more serve, with
    /// their health over the comparison window; empty for a service with one version
    /// (which costs nothing to ask).
    pub fn versions(&self, service: &str) -> Vec<(Option<Arc<str>>, VersionHealth)> {
        let mut out = Vec::new();
        for r in self.rollouts.get(service).into_iter().flatten().filter(|r| r.versions.len() >= 2) {
            // The last boundary evaluated.
            let now_ns = self.next_bucket_ns.saturating_sub(self.config.bucket_ns());
            let from = self.window_start(r, now_ns);
            for t in &r.versions {
                out.push((r.environment.clone(), t.health(from, TimestampNs::MAX).0));
            }
        }
        out
    }

    /// Where the comparison at `now_ns` starts: the bucket of the newest version's first
    /// request, or `window_ms` before `now_ns` if that is later.
    fn window_start(&self, r: &Rollout, now_ns: TimestampNs) -> TimestampNs {
        let newest = r.versions.iter().map(|t| t.first_seen_ns).max().unwrap_or(0);
        let floor = now_ns.saturating_sub(self.config.window_ms.saturating_mul(1_000_000));
        let bucket_ns = self.config.bucket_ns().max(1);
        (newest - newest % bucket_ns).max(floor)
    }

    fn record(&mut self, a: &CallAggregate) {
        let Subject::Release { service, environment, version } = &a.subject else { return };
        if !self.rollouts.contains_key(&**service) {
            if self.rollouts.len() >= self.config.max_services {
                self.forget();
            }
            self.rollouts.insert(service.clone(), Vec::new());
        }
        let Some(envs) = self.rollouts.get_mut(&**service) else { return };
        let r = match envs.iter().position(|r| r.environment == *environment) {
            Some(i) => &mut envs[i],
            None => {
                envs.push(Rollout {
                    service: service.clone(),
                    environment: environment.clone(),
                    versions: Vec::new(),
                    sequence: 0,
                    last: None,
                    last_seen_ns: a.last_ns,
                });
                envs.sort_by(|a, b| a.environment.cmp(&b.environment));
                let i = envs.iter().position(|r| r.environment == *environment).unwrap_or(0);
                &mut envs[i]
            }
        };
        r.last_seen_ns = r.last_seen_ns.max(a.last_ns);
        let i =
            match r.versions.iter().position(|t| Arc::ptr_eq(&t.version, version) || t.version == *version) {
                Some(i) => i,
                None => {
                    if r.versions.len() >= self.config.max_versions {
                        let oldest =
                            (0..r.versions.len()).min_by_key(|&i| r.versions[i].last_seen_ns).unwrap_or(0);
                        r.versions.remove(oldest);
                    }
                    r.versions.push(Track::new(version.clone(), a.first_ns));
                    r.versions.len() - 1
                }
            };
        let alone = r.versions.len() < 2;
        let track = &mut r.versions[i];
        track.last_seen_ns = track.last_seen_ns.max(a.last_ns);
        track.first_seen_ns = track.first_seen_ns.min(a.first_ns);
        track.merge(a, alone);
    }

    /// Drops the least recently seen tenth of the services.
    fn forget(&mut self) {
        let mut seen: Vec<(TimestampNs, Arc<str>)> = self
            .rollouts
            .iter()
            .map(|(k, envs)| (envs.iter().map(|r| r.last_seen_ns).max().unwrap_or(0), k.clone()))
            .collect();
        seen.sort();
        let n = (seen.len() / 10).max(1);
        for (_, key) in seen.into_iter().take(n) {
            self.rollouts.remove(&key);
            self.forgotten += 1;
        }
    }

    /// Expires idle versions and old buckets, and decides on every rollout in progress,
    /// in service order.
    fn evaluate(&mut self, now_ns: TimestampNs, out: &mut Vec<RolloutDecision>) {
        let idle_ns = self.config.version_idle_ms.saturating_mul(1_000_000);
        let oldest_bucket = now_ns.saturating_sub(self.config.window_ms.saturating_mul(1_000_000));
        let mut live: Vec<Arc<str>> = Vec::new();
        for (service, envs) in &mut self.rollouts {
            for r in envs.iter_mut() {
                r.versions.retain(|t| t.last_seen_ns.saturating_add(idle_ns) >= now_ns);
                if r.versions.len() < 2 {
                    for t in &mut r.versions {
                        t.buckets.clear();
                    }
                    r.last = None;
                    continue;
                }
                for t in &mut r.versions {
                    while t.buckets.front().is_some_and(|b| b.start_ns < oldest_bucket) {
                        t.buckets.pop_front();
                    }
                }
                if live.last() != Some(service) {
                    live.push(service.clone());
                }
            }
        }
        live.sort();
        for service in live {
            let decisions: Vec<RolloutDecision> = self.rollouts[&service]
                .iter()
                .filter(|r| r.versions.len() >= 2)
                .map(|r| self.decide(r, now_ns))
                .collect();
            let Some(envs) = self.rollouts.get_mut(&service) else { continue };
            for (r, decision) in envs.iter_mut().filter(|r| r.versions.len() >= 2).zip(decisions) {
                let (stable, canary) = r.versions_pair();
                let changed = r
                    .last
                    .as_ref()
                    .is_none_or(|(s, c, v)| (s, c, *v) != (&stable, &canary, decision.verdict));
                if changed {
                    r.sequence += 1;
                    r.last = Some((stable, canary, decision.verdict));
                    out.push(RolloutDecision { sequence: r.sequence, ..decision });
                }
            }
        }
    }

    /// The verdict on `r` over the closed buckets before `now_ns`.
    fn decide(&self, r: &Rollout, now_ns: TimestampNs) -> RolloutDecision {
        let c = &self.config;
        let (stable, canary) = r.stable_and_canary();
        let from = self.window_start(r, now_ns);
        let (s, s_sketch) = stable.health(from, now_ns);
        let (k, k_sketch) = canary.health(from, now_ns);
        let comparison = compare(&s, &k, s_sketch.is_some() && k_sketch.is_some());
        let mut reasons = Vec::new();
        let verdict = if s.requests < c.min_requests || k.requests < c.min_requests {
            reasons.push(format!(
                "too few requests for a verdict: stable {} served {}, canary {} served {} (need {} each)",
                s.version, s.requests, k.version, k.requests, c.min_requests
            ));
            RolloutVerdict::Inconclusive
        } else {
            let errors = comparison.p_value <= c.max_p_value
                && comparison.error_rate_delta >= c.min_error_rate_increase;
            let latency_ok = s.requests >= c.min_latency_requests && k.requests >= c.min_latency_requests;
            let p99 = latency_ok && comparison.p99_ratio.is_some_and(|r| r >= c.max_p99_ratio);
            let median = latency_ok && comparison.median_ratio.is_some_and(|r| r >= c.max_median_ratio);
            if errors {
                reasons.push(format!(
                    "canary {} fails {:.2}% of {} requests vs stable {} {:.2}% of {}: +{:.2} points, z = {:.2}, p = {:.2e} (halts at p ≤ {} and +{:.2} points)",
                    k.version,
                    100.0 * k.error_rate,
                    k.requests,
                    s.version,
                    100.0 * s.error_rate,
                    s.requests,
                    100.0 * comparison.error_rate_delta,
                    comparison.z,
                    comparison.p_value,
                    c.max_p_value,
                    100.0 * c.min_error_rate_increase
                ));
            }
            let slower = [
                (p99, "p99", k.p99_ms, comparison.p99_ratio, s.p99_ms, c.max_p99_ratio),
                (median, "median", k.p50_ms, comparison.median_ratio, s.p50_ms, c.max_median_ratio),
            ];
            for (_, what, canary_ms, ratio, stable_ms, max) in slower.into_iter().filter(|l| l.0) {
                reasons.push(format!(
                    "canary {what} {canary_ms:.1} ms is {:.2}× stable's {stable_ms:.1} ms (halts at {max}×)",
                    ratio.unwrap_or(0.0)
                ));
            }
            if errors || p99 || median {
                RolloutVerdict::Halt
            } else {
                reasons.push(format!(
                    "canary {} fails {:.2}% vs stable {:.2}% (p = {:.2}), p99 {:.1} vs {:.1} ms: no significant regression",
                    k.version,
                    100.0 * k.error_rate,
                    100.0 * s.error_rate,
                    comparison.p_value,
                    k.p99_ms,
                    s.p99_ms
                ));
                RolloutVerdict::Continue
            }
        };
        RolloutDecision {
            schema_version: ROLLOUT_SCHEMA_VERSION,
            service: r.service.to_string(),
            environment: r.environment.as_deref().map(str::to_string),
            sequence: 0,
            verdict,
            ok: verdict != RolloutVerdict::Halt,
            reasons,
            stable: s,
            canary: k,
            comparison,
            window_start: format_rfc3339(from),
            event_time_ns: now_ns,
            event_time: format_rfc3339(now_ns),
            published_at: None,
        }
    }
}

impl Rollout {
    /// The oldest and the newest version serving (first seen, then name, for ties).
    fn stable_and_canary(&self) -> (&Track, &Track) {
        let key = |t: &&Track| (t.first_seen_ns, t.version.clone());
        let stable = self.versions.iter().min_by_key(key).unwrap_or(&self.versions[0]);
        let canary = self.versions.iter().max_by_key(key).unwrap_or(&self.versions[0]);
        (stable, canary)
    }

    fn versions_pair(&self) -> (Arc<str>, Arc<str>) {
        let (s, c) = self.stable_and_canary();
        (s.version.clone(), c.version.clone())
    }
}

/// Error-rate test and latency ratios of canary `k` against stable `s`.
fn compare(s: &VersionHealth, k: &VersionHealth, latency: bool) -> RolloutComparison {
    let delta = k.error_rate - s.error_rate;
    let (z, p_value) = two_proportion_z(k.failures, k.requests, s.failures, s.requests);
    let ratio = |a: f64, b: f64| (latency && b > 0.0).then(|| a / b);
    RolloutComparison {
        error_rate_delta: delta,
        z,
        p_value,
        p99_ratio: ratio(k.p99_ms, s.p99_ms),
        median_ratio: ratio(k.p50_ms, s.p50_ms),
    }
}

/// One-sided two-proportion z-test of "sample 1 fails more often than sample 2", pooled
/// and with Yates' continuity correction (conservative at the small failure counts a
/// canary has): `(z, p)`, `(0, 1)` when it cannot be computed.
pub fn two_proportion_z(f1: u64, n1: u64, f2: u64, n2: u64) -> (f64, f64) {
    if n1 == 0 || n2 == 0 {
        return (0.0, 1.0);
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (f1 + f2) as f64 / (n1f + n2f);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    if se == 0.0 {
        return (0.0, 1.0);
    }
    let delta = f1 as f64 / n1f - f2 as f64 / n2f;
    let correction = 0.5 * (1.0 / n1f + 1.0 / n2f);
    let z = if delta > correction {
        (delta - correction) / se
    } else if delta < -correction {
        (delta + correction) / se
    } else {
        0.0
    };
    (z, 0.5 * libm::erfc(z / std::f64::consts::SQRT_2))
}

impl Operator for RolloutAnalyzer {
    type In = CallAggregate;
    type Out = RolloutDecision;
    type Ctx = ();
    type Snapshot = RolloutSnapshot;

    /// A release's requests in one bucket (from server and consumer spans, and from
    /// kind-less spans pairing found to serve a request).
    fn on_event(&mut self, _ctx: &(), a: &CallAggregate, _out: &mut Vec<RolloutDecision>) {
        self.record(a);
    }

    fn on_watermark(&mut self, _ctx: &(), event_time: TimestampNs, out: &mut Vec<RolloutDecision>) {
        let bucket_ns = self.config.bucket_ns().max(1);
        if self.next_bucket_ns == 0 {
            self.next_bucket_ns = event_time - event_time % bucket_ns + bucket_ns;
            return;
        }
        if event_time < self.next_bucket_ns {
            return;
        }
        let boundary = event_time - event_time % bucket_ns;
        self.next_bucket_ns = boundary + bucket_ns;
        self.evaluate(boundary, out);
    }

    fn snapshot(&self) -> RolloutSnapshot {
        let mut rollouts: Vec<Rollout> = self.rollouts.values().flatten().cloned().collect();
        rollouts.sort_by(|a, b| (&a.service, &a.environment).cmp(&(&b.service, &b.environment)));
        RolloutSnapshot { rollouts, next_bucket_ns: self.next_bucket_ns, forgotten: self.forgotten }
    }

    fn restore(&mut self, snapshot: RolloutSnapshot) {
        self.rollouts.clear();
        for r in snapshot.rollouts {
            self.rollouts.entry(r.service.clone()).or_default().push(r);
        }
        self.next_bucket_ns = snapshot.next_bucket_ns;
        self.forgotten = snapshot.forgotten;
    }
}

#[cfg(test)]
mod tests {
    use devloom_schemas::{PeerAttributes, Span, SpanId, SpanKind, TraceId};

    use super::*;
    use crate::service_id::ServiceId;
    use crate::span_pairing::{Observation, Release};

    const S: u64 = 1_000_000_000;

    /// A server span of frontend `version` ending at `time_ns`.
    fn request(version: &str, time_ns: u64, latency_ms: u64, failed: bool) -> Span {
        Span {
            trace_id: TraceId(1),
            span_id: SpanId(time_ns),
            parent_span_id: None,
            links: vec![],
            service: "frontend".into(),
            region: None,
            version: Some(version.into()),
            environment: Some("production".into()),
            kind: SpanKind::Server,
            name: "GET /".into(),
            start_ns: time_ns - latency_ms * 1_000_000,
            end_ns: time_ns,
            failed,
            peer: PeerAttributes::default(),
        }
    }

    /// A server span's release, handed on alone.
    fn feed_span(op: &mut RolloutAnalyzer, span: &Span) {
        for a in crate::call_aggregates::span_alone(span) {
            op.on_event(&(), &a, &mut Vec::new());
        }
    }

    /// An observation's release, handed on alone.
    fn feed(op: &mut RolloutAnalyzer, obs: &Observation) {
        for a in crate::call_aggregates::alone(obs) {
            op.on_event(&(), &a, &mut Vec::new());
        }
    }

    /// The same request as pairing reports it for a kind-less span.
    fn observed(span: &Span) -> Observation {
        Observation::Request {
            service: ServiceId::service(span.service.clone(), None),
            time_ns: span.end_ns,
            latency_ns: span.duration_ns(),
            failed: span.failed,
            release: Release::of(span),
        }
    }

    /// `seconds` of traffic from t = 100 s: `per_s` requests a second, every `canary_every`-th
    /// to the canary (from `canary_from_s` on), which fails one in `canary_fail_every`.
    fn run(seconds: u64, canary_fail_every: u64, canary_latency_ms: u64) -> Vec<RolloutDecision> {
        let mut op = RolloutAnalyzer::new(RolloutConfig::default());
        let mut out = Vec::new();
        let mut n = 0u64;
        for sec in 100..100 + seconds {
            for i in 0..50u64 {
                n += 1;
                let t = sec * S + i * (S / 50);
                let obs = if sec >= 130 && n.is_multiple_of(10) {
                    request("2.0.0", t, canary_latency_ms, n.is_multiple_of(10 * canary_fail_every))
                } else {
                    request("1.0.0", t, 10, n.is_multiple_of(1000))
                };
                feed_span(&mut op, &obs);
            }
            op.on_watermark(&(), sec * S, &mut out);
        }
        out
    }

    #[test]
    fn a_failing_canary_halts_and_a_healthy_one_continues() {
        let failing = run(120, 10, 10);
        let last = failing.last().unwrap();
        assert_eq!(last.verdict, RolloutVerdict::Halt, "{last:#?}");
        assert!(!last.ok);
        assert_eq!((last.stable.version.as_str(), last.canary.version.as_str()), ("1.0.0", "2.0.0"));
        assert!(last.comparison.p_value < 0.001 && last.comparison.error_rate_delta > 0.05);
        assert_eq!(last.environment.as_deref(), Some("production"));
        let halted_at = failing.iter().find(|d| d.verdict == RolloutVerdict::Halt).unwrap().event_time_ns;
        assert!(halted_at <= 190 * S, "halts within a minute of the canary's start (130 s)");
        assert_eq!(failing[0].verdict, RolloutVerdict::Inconclusive, "a verdict waits for requests");

        let healthy = run(120, 1000, 10);
        assert!(healthy.iter().all(|d| d.verdict != RolloutVerdict::Halt), "{healthy:#?}");
        assert_eq!(healthy.last().unwrap().verdict, RolloutVerdict::Continue);
        let sequences: Vec<u32> = healthy.iter().map(|d| d.sequence).collect();
        assert_eq!(sequences, (1..=healthy.len() as u32).collect::<Vec<_>>(), "one decision per change");
    }

    #[test]
    fn a_slow_canary_halts_on_latency() {
        let slow = run(120, 1000, 40);
        let last = slow.last().unwrap();
        assert_eq!(last.verdict, RolloutVerdict::Halt);
        assert!(last.reasons.iter().any(|r| r.contains("median")), "{:?}", last.reasons);
    }

    #[test]
    fn one_version_is_no_rollout() {
        let mut op = RolloutAnalyzer::new(RolloutConfig::default());
        let mut out = Vec::new();
        for sec in 100..400 {
            feed_span(&mut op, &request("1.0.0", sec * S, 10, sec % 7 == 0));
            op.on_watermark(&(), sec * S, &mut out);
        }
        assert!(out.is_empty());
        let kept: Vec<usize> =
            op.rollouts.values().flatten().flat_map(|r| &r.versions).map(|t| t.buckets.len()).collect();
        assert_eq!(kept, [1], "a lone version keeps only its newest bucket");
    }

    #[test]
    fn kind_less_requests_count_as_server_spans_do() {
        let (mut spans, mut paired) = (RolloutAnalyzer::default(), RolloutAnalyzer::default());
        let (mut from_spans, mut from_pairing) = (Vec::new(), Vec::new());
        for sec in 100..250 {
            for i in 0..20u64 {
                let v = if sec >= 130 && i % 4 == 0 { "2.0.0" } else { "1.0.0" };
                let span = request(v, sec * S + i * 1_000, 10, v == "2.0.0" && i % 8 == 0);
                feed_span(&mut spans, &span);
                feed(&mut paired, &observed(&span));
            }
            spans.on_watermark(&(), sec * S, &mut from_spans);
            paired.on_watermark(&(), sec * S, &mut from_pairing);
        }
        assert_eq!(from_spans.last().map(|d| d.verdict), Some(RolloutVerdict::Halt));
        assert_eq!(from_spans, from_pairing);
    }

    #[test]
    fn services_beyond_max_services_forget_the_least_recently_seen() {
        let config = RolloutConfig { max_services: 10, ..RolloutConfig::default() };
        let mut op = RolloutAnalyzer::new(config);
        for i in 0..11u64 {
            let mut span = request("1.0.0", (100 + i) * S, 10, false);
            span.service = format!("svc-{i}").into();
            feed_span(&mut op, &span);
        }
        assert_eq!(op.forgotten(), 1);
        assert_eq!(op.rollouts.len(), 10);
        assert!(!op.rollouts.contains_key("svc-0"), "the least recently seen went");
    }

    #[test]
    fn the_z_test_matches_a_worked_example() {
        // 30/200 vs 20/400, pooled p = 50/600: z = (0.1 − 0.00375) / 0.02394 ≈ 4.02.
        let (z, p) = two_proportion_z(30, 200, 20, 400);
        assert!((z - 4.02).abs() < 0.01, "{z}");
        assert!(p < 1e-4 && p > 1e-5, "{p}");
        assert_eq!(two_proportion_z(0, 100, 0, 100), (0.0, 1.0));
        assert!(two_proportion_z(1, 100, 10, 100).0 < 0.0);
    }

    #[test]
    fn snapshot_and_restore_continue_identically() {
        let mut a = RolloutAnalyzer::new(RolloutConfig::default());
        let mut out_a = Vec::new();
        let feed = |op: &mut RolloutAnalyzer, out: &mut Vec<RolloutDecision>, secs: std::ops::Range<u64>| {
            for sec in secs {
                for i in 0..20u64 {
                    let v = if i % 5 == 0 { "2.0.0" } else { "1.0.0" };
                    let span = request(v, sec * S + i, 10, v == "2.0.0" && i % 10 == 0);
                    // Half as server spans, half as kind-less requests found by pairing.
                    if i % 2 == 0 { feed_span(op, &span) } else { feed(op, &observed(&span)) }
                }
                op.on_watermark(&(), sec * S, out);
            }
        };
        feed(&mut a, &mut out_a, 100..160);
        let mut b = RolloutAnalyzer::new(RolloutConfig::default());
        b.restore(serde_json::from_str(&serde_json::to_string(&a.snapshot()).unwrap()).unwrap());
        let (mut rest_a, mut rest_b) = (Vec::new(), Vec::new());
        feed(&mut a, &mut rest_a, 160..260);
        feed(&mut b, &mut rest_b, 160..260);
        assert_eq!(rest_a, rest_b);
    }
}
