//! What the scorer knows about a candidate cause, and the feature vector the model
//! reads. The streaming candidate operator and the simulated incident history both build
//! [`Evidence`], so training and scoring share one feature definition.
//!
//! Time features are interactions with the candidate's kind: scores are normalized
//! within an incident, so a feature every candidate shares (the hour) would cancel out.
//! What the hour changes is *which kind* of cause is likely: deploys in the business-day
//! deploy window, batch jobs overnight.

use devloom_schemas::{CandidateKind, TimestampNs};
use serde::{Deserialize, Serialize};

/// Observable facts about one candidate of one incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// What kind of cause.
    pub kind: CandidateKind,
    /// A deploy that rolled back to an earlier revision.
    pub rollback: bool,
    /// Seconds from the change (deploy, config change, job start) to the onset; negative
    /// when it came after. None for candidates that are not changes.
    pub change_age_s: Option<f64>,
    /// Error rate now minus baseline of the candidate's service.
    pub error_delta: f64,
    /// ln(p99 now / p99 baseline) of the candidate's service.
    pub latency_log_ratio: f64,
    /// Largest error-rate increase among the candidate's direct callers.
    pub caller_error_delta: f64,
    /// Seconds the candidate's service was degraded before the onset (0: not before).
    pub onset_lead_s: f64,
    /// Hops from the nearest alerted service.
    pub hops: u32,
    /// Criticality of the edge into the candidate: 1 critical, 0.5 unknown, 0 optional.
    pub criticality: f64,
    /// An uninstrumented database or queue.
    pub virtual_node: bool,
    /// ln(requests/s now / baseline) of the candidate's service.
    pub traffic_log_ratio: f64,
    /// Past incidents on the same alerted service whose confirmed cause was this kind on
    /// this service.
    pub past_incidents: u32,
    /// Seconds between the onset and the nearest scheduled job start (the job itself
    /// for job candidates; any job for dependencies, which jobs saturate).
    pub job_gap_s: Option<f64>,
    /// Onset of the incident, ns since the epoch (UTC).
    pub onset_ns: TimestampNs,
    /// ln(now / baseline) of the candidate's median self time, or of its p90 when that
    /// rose more: its own work.
    #[serde(default)]
    pub self_log_ratio: f64,
    /// Largest gap rise over the edges into the candidate: ln(now / baseline) of the
    /// median network gap, or of its p90 when that rose more.
    #[serde(default)]
    pub gap_log_ratio: f64,
    /// Largest gap rise (as `gap_log_ratio`) over the edges out of the candidate.
    #[serde(default)]
    pub gap_out_log_ratio: f64,
    /// Callers fail on its answers: over the edges into the candidate, the largest rise
    /// of the share of calls their caller's request failed right after, times the share
    /// of that caller's failures they are (a caller failing on its own spreads its
    /// failures over its calls).
    #[serde(default)]
    pub blame: f64,
    /// The candidate calls the alerted service (transitively): a victim's position.
    #[serde(default)]
    pub upstream: bool,
    /// ln(calls/s now / baseline) of the candidate's outgoing edge that changed most,
    /// signed: a service that stops calling its dependencies (or floods them).
    #[serde(default)]
    pub out_rate_log_ratio: f64,
    /// Some callee of the candidate in the map is red or amber.
    #[serde(default)]
    pub callees_degraded: bool,
    /// Some degraded callee's part of the calls (its own work, or the wire into it)
    /// rose at least as much as the candidate's own work, give or take the noise of a
    /// median (0.2 in log terms): the callee explains it. A
    /// neighbour slowing a little beside the fault, or a passing slow spell below it,
    /// leaves `callees_degraded` set but does not explain a service whose own work rose
    /// more.
    #[serde(default)]
    pub callee_explains: bool,
    /// The candidate's service is an alerted one.
    #[serde(default)]
    pub alerted: bool,
    /// Every wire of the candidate slowed: the smallest gap rise (log ratio, at least 0)
    /// over its edges in and out that say something of their wire (red or amber, or
    /// with 20 calls in both windows); 0 without any. A service with a slow network
    /// slows every call it makes and every answer it gives.
    #[serde(default)]
    pub gap_mine: f64,
    /// The slow wire is the peer's: over the candidate's edge (in or out) whose gap rose
    /// most, the smallest gap rise on the peer's other edges that say something of their
    /// wire; 0 when none rose, or the peer has no such edge.
    #[serde(default)]
    pub gap_peer: f64,
    /// Largest error-rate rise (now minus baseline) over the calls the candidate makes:
    /// a service whose failures are its callees' failures passed on is their victim.
    #[serde(default)]
    pub out_error_delta: f64,
}

impl Evidence {
    /// Neutral evidence of a `kind` candidate for an incident starting at `onset_ns`:
    /// nothing changed, nothing degraded, unknown criticality.
    pub fn new(kind: CandidateKind, onset_ns: TimestampNs) -> Self {
        Self {
            kind,
            rollback: false,
            change_age_s: None,
            error_delta: 0.0,
            latency_log_ratio: 0.0,
            caller_error_delta: 0.0,
            onset_lead_s: 0.0,
            hops: 0,
            criticality: 0.5,
            virtual_node: false,
            traffic_log_ratio: 0.0,
            past_incidents: 0,
            job_gap_s: None,
            onset_ns,
            self_log_ratio: 0.0,
            gap_log_ratio: 0.0,
            gap_out_log_ratio: 0.0,
            blame: 0.0,
            upstream: false,
            out_rate_log_ratio: 0.0,
            callees_degraded: false,
            callee_explains: false,
            alerted: false,
            gap_mine: 0.0,
            gap_peer: 0.0,
            out_error_delta: 0.0,
        }
    }
}

/// Feature names, in the order of [`features`].
pub const FEATURES: [&str; 38] = [
    "kind_deploy",
    "kind_config_change",
    "kind_scheduled_job",
    "kind_dependency",
    "kind_traffic_spike",
    "rollback",
    "change_recency",
    "error_delta",
    "latency_log_ratio",
    "caller_error_delta",
    "onset_lead",
    "hop_distance",
    "edge_criticality",
    "virtual_node",
    "traffic_log_ratio",
    "past_incidents",
    "job_proximity",
    "deploy_hour_sin",
    "deploy_hour_cos",
    "job_hour_sin",
    "job_hour_cos",
    "dependency_hour_sin",
    "dependency_hour_cos",
    "deploy_weekend",
    "job_weekend",
    "kind_service",
    "self_log_ratio",
    "gap_log_ratio",
    "gap_out_log_ratio",
    "blame",
    "upstream",
    "out_rate_log_ratio",
    "callees_degraded",
    "alerted",
    "gap_mine",
    "gap_peer",
    "out_error_delta",
    "callee_explains",
];

/// Whether a feature depends on the time of day or the day of week (the ablation
/// drops these).
pub fn is_time_feature(name: &str) -> bool {
    name.contains("_hour_") || name.ends_with("_weekend")
}

const NS_PER_S: f64 = 1e9;

/// The feature vector of `e`, in the order of [`FEATURES`].
pub fn features(e: &Evidence) -> [f64; FEATURES.len()] {
    let is = |k: CandidateKind| f64::from(u8::from(e.kind == k));
    let seconds_of_day = (e.onset_ns as f64 / NS_PER_S).rem_euclid(86_400.0);
    let angle = std::f64::consts::TAU * seconds_of_day / 86_400.0;
    let (hour_sin, hour_cos) = angle.sin_cos();
    // 1970-01-01 was a Thursday: day 0 → 3 with Monday = 0.
    let weekday = ((e.onset_ns / 86_400_000_000_000) + 3) % 7;
    let weekend = f64::from(u8::from(weekday >= 5));
    let deploy = is(CandidateKind::Deploy);
    let job = is(CandidateKind::ScheduledJob);
    let dependency = is(CandidateKind::Dependency);
    [
        deploy,
        is(CandidateKind::ConfigChange),
        job,
        dependency,
        is(CandidateKind::TrafficSpike),
        f64::from(u8::from(e.rollback)),
        e.change_age_s.map_or(0.0, |age| (-age.max(0.0) / 1800.0).exp()),
        e.error_delta.clamp(-1.0, 1.0),
        e.latency_log_ratio.clamp(-3.0, 3.0),
        e.caller_error_delta.clamp(-1.0, 1.0),
        (e.onset_lead_s / 300.0).tanh(),
        f64::from(e.hops.min(6)) / 6.0,
        e.criticality,
        f64::from(u8::from(e.virtual_node)),
        e.traffic_log_ratio.clamp(-3.0, 3.0),
        f64::from(e.past_incidents).ln_1p(),
        e.job_gap_s.map_or(0.0, |gap| (-gap.abs() / 900.0).exp()),
        deploy * hour_sin,
        deploy * hour_cos,
        job * hour_sin,
        job * hour_cos,
        dependency * hour_sin,
        dependency * hour_cos,
        deploy * weekend,
        job * weekend,
        is(CandidateKind::Service),
        e.self_log_ratio.clamp(-3.0, 3.0),
        e.gap_log_ratio.clamp(-3.0, 3.0),
        e.gap_out_log_ratio.clamp(-3.0, 3.0),
        e.blame.clamp(-1.0, 1.0),
        f64::from(u8::from(e.upstream)),
        e.out_rate_log_ratio.clamp(-3.0, 3.0),
        f64::from(u8::from(e.callees_degraded)),
        f64::from(u8::from(e.alerted)),
        e.gap_mine.clamp(0.0, 3.0),
        e.gap_peer.clamp(0.0, 3.0),
        e.out_error_delta.clamp(-1.0, 1.0),
        f64::from(u8::from(e.callee_explains)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(kind: CandidateKind, onset_ns: u64) -> Evidence {
        Evidence { change_age_s: Some(600.0), error_delta: 0.2, hops: 1, ..Evidence::new(kind, onset_ns) }
    }

    fn value(e: &Evidence, name: &str) -> f64 {
        features(e)[FEATURES.iter().position(|f| *f == name).unwrap()]
    }

    #[test]
    fn time_features_are_cyclic_and_tied_to_the_kind() {
        // 2026-11-27 (a Friday) 03:00 and 15:00 UTC; 2026-11-28 is a Saturday.
        let friday_3am = 1_795_748_400_000_000_000;
        let night = evidence(CandidateKind::ScheduledJob, friday_3am);
        let afternoon = evidence(CandidateKind::ScheduledJob, friday_3am + 12 * 3_600_000_000_000);
        assert!((value(&night, "job_hour_cos") - (std::f64::consts::TAU / 8.0).cos()).abs() < 1e-9);
        assert!(
            (value(&night, "job_hour_sin") + value(&afternoon, "job_hour_sin")).abs() < 1e-9,
            "12 h apart"
        );
        assert_eq!(value(&night, "deploy_hour_sin"), 0.0, "a job has no deploy-hour feature");
        assert_eq!(value(&night, "job_weekend"), 0.0);
        let saturday = evidence(CandidateKind::ScheduledJob, friday_3am + 24 * 3_600_000_000_000);
        assert_eq!(value(&saturday, "job_weekend"), 1.0);
        // Midnight and 24 h later are the same point on the circle.
        let midnight = friday_3am - 3 * 3_600_000_000_000;
        let a = evidence(CandidateKind::Deploy, midnight);
        let b = evidence(CandidateKind::Deploy, midnight + 24 * 3_600_000_000_000);
        assert_eq!(value(&a, "deploy_hour_cos"), value(&b, "deploy_hour_cos"));
        assert!(FEATURES.iter().filter(|f| is_time_feature(f)).count() == 8);
    }

    #[test]
    fn change_recency_decays_and_future_changes_count_as_fresh() {
        let mut e = evidence(CandidateKind::Deploy, 0);
        e.change_age_s = Some(0.0);
        assert_eq!(value(&e, "change_recency"), 1.0);
        e.change_age_s = Some(1800.0);
        assert!((value(&e, "change_recency") - (-1.0f64).exp()).abs() < 1e-12);
        e.change_age_s = None;
        assert_eq!(value(&e, "change_recency"), 0.0);
    }
}
