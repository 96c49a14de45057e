//! Simulated incident history with known root causes, for training and evaluating the
//! scorer: thousands of labelled incidents in seconds, written in the archive format
//! (alerts, deploys, candidate lists with their features, confirmed causes).
//!
//! The world it simulates is the one the scorer must not be fooled by:
//! - business-hours deploy windows (weekdays 09–17): most incidents are bad deploys or
//!   config changes, and harmless deploys and hourly jobs are everywhere;
//! - overnight batch jobs that saturate a database (00:30–05:00): the database's
//!   callers fail — including the service the nightly release just deployed, which
//!   looks exactly like a bad deploy unless you know what time it is;
//! - dependency failures and traffic spikes at any time.
//!
//! Each incident's candidates are described by [`Evidence`] and turned into features
//! by the same code as the streaming scorer.

use std::collections::BTreeMap;

use devloom_operators::evidence::{Evidence, FEATURES, features};
use devloom_operators::past_key;
use devloom_schemas::ids::stable_digest;
use devloom_schemas::{
    Alert, AlertSource, AlertStatus, CANDIDATES_SCHEMA_VERSION, Candidate, CandidateKind, CandidateList,
    ChangeKind, ConfirmedCause, Deploy, DeploySource, IncidentStatus, Severity, TimestampNs,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Why a simulated incident happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum CauseType {
    /// A bad deploy in the business-day window.
    Deploy,
    /// A bad configuration change.
    ConfigChange,
    /// An overnight batch job saturating a database.
    NightlyJob,
    /// A dependency failing on its own.
    Dependency,
    /// A traffic spike at an entry point.
    TrafficSpike,
}

/// One labelled incident.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledIncident {
    /// The alert (firing) and its resolution.
    pub alerts: [Alert; 2],
    /// Changes in the window: deploys, config changes, job starts.
    pub changes: Vec<Deploy>,
    /// The candidates with their features (unscored).
    pub candidates: CandidateList,
    /// The confirmed cause.
    pub cause: ConfirmedCause,
}

/// Settings of the generator.
#[derive(Clone, Debug, PartialEq)]
pub struct HistorySimConfig {
    /// Incidents to generate.
    pub incidents: usize,
    /// RNG seed.
    pub seed: u64,
    /// First day (ns, midnight UTC).
    pub start_ns: TimestampNs,
    /// Days the incidents spread over.
    pub days: u64,
}

impl Default for HistorySimConfig {
    fn default() -> Self {
        // 2026-06-01T00:00:00Z, 180 days.
        Self { incidents: 5000, seed: 7, start_ns: 1_780_272_000_000_000_000, days: 180 }
    }
}

const ROOTS: [&str; 8] =
    ["checkout", "payments", "cart", "search", "catalog", "accounts", "shipping", "frontend"];
const DATABASES: [&str; 4] = ["postgres", "redis", "search-index", "orders"];
const ENTRY_POINTS: [&str; 2] = ["gateway", "frontend"];
const JOBS: [&str; 4] = ["reports-nightly", "reindex-catalog", "billing-batch", "cache-warmer"];
const NS_PER_S: u64 = 1_000_000_000;
const HOUR: u64 = 3600 * NS_PER_S;

/// Generates the incidents in onset order.
pub fn generate(config: &HistorySimConfig) -> Vec<LabelledIncident> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut plans: Vec<(TimestampNs, CauseType)> = (0..config.incidents)
        .map(|_| {
            let cause = match rng.random_range(0..100) {
                0..38 => CauseType::Deploy,
                38..50 => CauseType::ConfigChange,
                50..68 => CauseType::NightlyJob,
                68..85 => CauseType::Dependency,
                _ => CauseType::TrafficSpike,
            };
            (onset(&mut rng, config, cause), cause)
        })
        .collect();
    plans.sort();
    let mut past: BTreeMap<String, u32> = BTreeMap::new();
    plans
        .into_iter()
        .enumerate()
        .map(|(i, (onset_ns, cause))| {
            let incident = build(&mut rng, i, onset_ns, cause, &past);
            let c = incident.candidates.candidates.iter().find(|c| c.key == incident.cause.candidate);
            if let Some(c) = c {
                *past
                    .entry(past_key(&incident.candidates.root_services[0], c.kind, &c.service))
                    .or_default() += 1;
            }
            incident
        })
        .collect()
}

fn is_business_hours(onset_ns: TimestampNs) -> bool {
    let hour = (onset_ns / HOUR) % 24;
    let weekday = ((onset_ns / (24 * HOUR)) + 3) % 7;
    weekday < 5 && (9..17).contains(&hour)
}

fn is_night(onset_ns: TimestampNs) -> bool {
    (onset_ns / HOUR) % 24 < 6
}

/// An onset time fitting the cause: deploys in the weekday window, jobs overnight.
fn onset(rng: &mut ChaCha8Rng, config: &HistorySimConfig, cause: CauseType) -> TimestampNs {
    loop {
        let day = rng.random_range(0..config.days);
        let midnight = config.start_ns + day * 24 * HOUR;
        let second_of_day: u64 = match cause {
            CauseType::Deploy | CauseType::ConfigChange if rng.random_bool(0.9) => {
                rng.random_range(9 * 3600..17 * 3600)
            }
            CauseType::NightlyJob => rng.random_range(1800..5 * 3600),
            CauseType::TrafficSpike => rng.random_range(11 * 3600..22 * 3600),
            _ => rng.random_range(0..24 * 3600),
        };
        let t = midnight + second_of_day * NS_PER_S;
        let weekday = ((t / (24 * HOUR)) + 3) % 7;
        let needs_weekday =
            matches!(cause, CauseType::Deploy | CauseType::ConfigChange) && rng.random_bool(0.9);
        if !needs_weekday || weekday < 5 {
            return t;
        }
    }
}

struct Draft {
    key: String,
    service: String,
    summary: String,
    evidence: Evidence,
    change: Option<Deploy>,
}

fn change(service: &str, kind: ChangeKind, revision: String, time_ns: TimestampNs, author: &str) -> Deploy {
    Deploy {
        service: service.into(),
        environment: Some("production".into()),
        revision,
        previous_revision: None,
        time_ns,
        author: Some(author.into()),
        kind,
        source: DeploySource::Devloom,
        ..Deploy::default()
    }
}

/// A deploy or config-change candidate on `service`, `age_s` before the onset.
fn change_draft(
    rng: &mut ChaCha8Rng,
    kind: CandidateKind,
    service: &str,
    age_s: f64,
    onset_ns: TimestampNs,
) -> Draft {
    let (change_kind, prefix) = match kind {
        CandidateKind::ConfigChange => (ChangeKind::ConfigChange, "config_change"),
        _ => (ChangeKind::Deploy, "deploy"),
    };
    let revision =
        format!("v{}.{}.{}", rng.random_range(1..5), rng.random_range(0..30), rng.random_range(0..10));
    let time = onset_ns.saturating_sub((age_s * 1e9) as u64);
    let mut evidence = Evidence::new(kind, onset_ns);
    evidence.change_age_s = Some(age_s);
    Draft {
        key: format!("{prefix}:{service}@{revision}"),
        service: service.into(),
        summary: format!("{prefix} of {service} {revision}, {:.0} min before onset", age_s / 60.0),
        change: Some(change(service, change_kind, revision, time, "ci")),
        evidence,
    }
}

fn job_draft(service: &str, gap_s: f64, onset_ns: TimestampNs) -> Draft {
    let mut evidence = Evidence::new(CandidateKind::ScheduledJob, onset_ns);
    evidence.change_age_s = Some(gap_s);
    evidence.job_gap_s = Some(gap_s.abs());
    let time = onset_ns.saturating_sub((gap_s * 1e9) as u64);
    Draft {
        key: format!("scheduled_job:{service}@run"),
        service: service.into(),
        summary: format!("scheduled job {service} started {:.0} min before onset", gap_s / 60.0),
        change: Some(change(service, ChangeKind::ScheduledJob, "run".into(), time, "cron")),
        evidence,
    }
}

fn dependency_draft(service: &str, onset_ns: TimestampNs) -> Draft {
    let mut evidence = Evidence::new(CandidateKind::Dependency, onset_ns);
    evidence.virtual_node = DATABASES.contains(&service);
    evidence.hops = 1;
    degraded_draft("dependency", service, evidence)
}

/// A `service:` candidate: the service itself, degraded as `evidence` says.
fn service_draft(service: &str, evidence: Evidence) -> Draft {
    degraded_draft("service", service, evidence)
}

/// A candidate that is no change: `service` degraded, its key `prefix:service`.
fn degraded_draft(prefix: &str, service: &str, evidence: Evidence) -> Draft {
    Draft {
        key: format!("{prefix}:{service}"),
        service: service.into(),
        summary: format!("{service} degraded"),
        change: None,
        evidence,
    }
}

/// The error-rate rise of the calls a victim makes, given its own `error_delta`: most of
/// its failures are its callees' failures passed on.
fn passed_on(rng: &mut ChaCha8Rng, error_delta: f64) -> f64 {
    error_delta * rng.random_range(0.3..1.5)
}

fn build(
    rng: &mut ChaCha8Rng,
    index: usize,
    onset_ns: TimestampNs,
    cause: CauseType,
    past: &BTreeMap<String, u32>,
) -> LabelledIncident {
    let root = ROOTS[rng.random_range(0..ROOTS.len())];
    let database = DATABASES[rng.random_range(0..DATABASES.len())];
    let business = is_business_hours(onset_ns);
    let night = is_night(onset_ns);
    let mut drafts: Vec<Draft> = Vec::new();
    let victim = |rng: &mut ChaCha8Rng| rng.random_range(0.04..0.3);
    let quiet = |rng: &mut ChaCha8Rng| rng.random_range(-0.005..0.02);

    // The cause comes first (deduplication below keeps it).
    match cause {
        CauseType::Deploy | CauseType::ConfigChange => {
            let kind =
                if cause == CauseType::Deploy { CandidateKind::Deploy } else { CandidateKind::ConfigChange };
            let service = if rng.random_bool(0.6) { root } else { ROOTS[rng.random_range(0..ROOTS.len())] };
            let age = rng.random_range(60.0..2400.0);
            let mut d = change_draft(rng, kind, service, age, onset_ns);
            d.evidence.error_delta = rng.random_range(0.05..0.45);
            d.evidence.latency_log_ratio = rng.random_range(0.0..1.5);
            d.evidence.hops = u32::from(service != root);
            d.evidence.onset_lead_s = if service == root { 0.0 } else { rng.random_range(0.0..180.0) };
            d.evidence.caller_error_delta = if service == root { 0.0 } else { victim(rng) };
            // Its own code fails: the calls it makes do not. Something below it may be a
            // little off too (a callee amber beside it), without explaining it.
            d.evidence.out_error_delta = quiet(rng);
            d.evidence.callees_degraded = rng.random_bool(0.3);
            drafts.push(d);
        }
        CauseType::NightlyJob => {
            let job = JOBS[rng.random_range(0..3)];
            drafts.push(job_draft(job, rng.random_range(60.0..1500.0), onset_ns));
        }
        CauseType::Dependency => {
            let mut d = dependency_draft(database, onset_ns);
            d.evidence.error_delta = rng.random_range(0.08..0.6);
            d.evidence.latency_log_ratio = rng.random_range(0.3..2.0);
            d.evidence.caller_error_delta = victim(rng);
            d.evidence.onset_lead_s = rng.random_range(20.0..600.0);
            drafts.push(d);
        }
        CauseType::TrafficSpike => {
            let entry = ENTRY_POINTS[rng.random_range(0..2)];
            let mut evidence = Evidence::new(CandidateKind::TrafficSpike, onset_ns);
            evidence.traffic_log_ratio = rng.random_range(0.5..2.0);
            evidence.error_delta = rng.random_range(0.0..0.15);
            evidence.hops = rng.random_range(1..3);
            drafts.push(Draft {
                key: format!("traffic_spike:{entry}"),
                service: entry.into(),
                summary: format!("{entry} traffic spike"),
                change: None,
                evidence,
            });
        }
    }

    // The database the incident touches is always a candidate. A nightly job saturates
    // it: slow first, its callers failing — the same picture as a dependency failure.
    if !drafts.iter().any(|d| d.service == database) {
        let mut d = dependency_draft(database, onset_ns);
        if cause == CauseType::NightlyJob {
            d.evidence.latency_log_ratio = rng.random_range(0.5..2.0);
            d.evidence.error_delta = rng.random_range(0.0..0.08);
            d.evidence.caller_error_delta = victim(rng);
            d.evidence.onset_lead_s = rng.random_range(30.0..600.0);
        } else if cause == CauseType::Deploy && rng.random_bool(0.3) {
            d.evidence.latency_log_ratio = rng.random_range(0.1..0.8); // slow queries from the new code
        } else {
            d.evidence.latency_log_ratio = rng.random_range(-0.1..0.15);
            d.evidence.error_delta = quiet(rng);
        }
        drafts.push(d);
    }

    // Changes that did nothing wrong.
    let harmless_deploys = if business {
        rng.random_range(1..4)
    } else if night {
        // The nightly release lands on a service that calls the database: when the
        // database is saturated it fails like a bad deploy would.
        usize::from(rng.random_bool(0.85))
    } else {
        rng.random_range(0..2)
    };
    for _ in 0..harmless_deploys {
        let service = ROOTS[rng.random_range(0..ROOTS.len())];
        let age = if night { rng.random_range(120.0..2400.0) } else { rng.random_range(60.0..7000.0) };
        let kind = if rng.random_bool(0.2) { CandidateKind::ConfigChange } else { CandidateKind::Deploy };
        let mut d = change_draft(rng, kind, service, age, onset_ns);
        // The nightly release's service calls the saturated database: it fails too.
        let hurt = service == root || cause == CauseType::NightlyJob || rng.random_bool(0.4);
        d.evidence.error_delta =
            if hurt && cause != CauseType::TrafficSpike { victim(rng) } else { quiet(rng) };
        // A hurt service fails because its calls fail.
        d.evidence.out_error_delta = if hurt && cause != CauseType::TrafficSpike {
            passed_on(rng, d.evidence.error_delta)
        } else {
            quiet(rng)
        };
        d.evidence.latency_log_ratio =
            if hurt { rng.random_range(0.0..1.2) } else { rng.random_range(-0.1..0.2) };
        d.evidence.hops = u32::from(service != root);
        if !drafts.iter().any(|x| x.key == d.key) {
            drafts.push(d);
        }
    }
    // Hourly jobs run all day; at night other batch jobs run beside the culprit.
    let harmless_jobs = if night { usize::from(rng.random_bool(0.5)) } else { rng.random_range(0..3) };
    for _ in 0..harmless_jobs {
        let job = JOBS[rng.random_range(0..JOBS.len())];
        let d = job_draft(job, rng.random_range(-60.0..3000.0), onset_ns);
        if !drafts.iter().any(|x| x.key == d.key) {
            drafts.push(d);
        }
    }
    // Another database, quiet, and sometimes a spike that did not matter.
    let other = DATABASES[(DATABASES.iter().position(|d| *d == database).unwrap_or(0) + 1) % DATABASES.len()];
    let mut d = dependency_draft(other, onset_ns);
    d.evidence.latency_log_ratio = rng.random_range(-0.1..0.2);
    d.evidence.error_delta = quiet(rng);
    drafts.push(d);
    if cause != CauseType::TrafficSpike && rng.random_bool(0.15) {
        let mut evidence = Evidence::new(CandidateKind::TrafficSpike, onset_ns);
        evidence.traffic_log_ratio = rng.random_range(0.4..0.9);
        evidence.hops = 1;
        drafts.push(Draft {
            key: "traffic_spike:gateway".into(),
            service: "gateway".into(),
            summary: "gateway traffic spike".into(),
            change: None,
            evidence,
        });
    }

    // The alerted service is a candidate too, as the streaming operator makes it (unless
    // a change of it is one): here always a victim of a cause below it, or of the load.
    let changed = drafts.iter().any(|d| {
        d.service == root && matches!(d.evidence.kind, CandidateKind::Deploy | CandidateKind::ConfigChange)
    });
    if !changed {
        let mut e = Evidence::new(CandidateKind::Service, onset_ns);
        e.error_delta = if cause == CauseType::TrafficSpike { quiet(rng) } else { victim(rng) };
        e.latency_log_ratio = rng.random_range(0.0..1.2);
        e.self_log_ratio = rng.random_range(-0.1..0.3);
        e.callees_degraded = cause != CauseType::TrafficSpike;
        e.callee_explains = e.callees_degraded;
        e.out_error_delta =
            if cause == CauseType::TrafficSpike { quiet(rng) } else { passed_on(rng, e.error_delta) };
        e.alerted = true;
        drafts.push(service_draft(root, e));
    }
    // Callers of the alerted service fail with it: upstream victims.
    if cause != CauseType::TrafficSpike && rng.random_bool(0.5) {
        let mut e = Evidence::new(CandidateKind::Service, onset_ns);
        e.error_delta = victim(rng) / 2.0;
        e.latency_log_ratio = rng.random_range(0.0..0.8);
        e.self_log_ratio = rng.random_range(-0.1..0.2);
        e.callees_degraded = true;
        e.callee_explains = true;
        e.out_error_delta = passed_on(rng, e.error_delta);
        e.upstream = true;
        e.hops = 1;
        drafts.push(service_draft("gateway", e));
    }
    // Between the alerted service and a failing database, the services that query it
    // fail too, often more than the database itself (each request queries it more than
    // once): victims, known by their failing calls.
    if matches!(cause, CauseType::Dependency | CauseType::NightlyJob) {
        for _ in 0..rng.random_range(1..3) {
            let service = ROOTS[rng.random_range(0..ROOTS.len())];
            let mut e = Evidence::new(CandidateKind::Service, onset_ns);
            e.error_delta = (victim(rng) * rng.random_range(1.0..2.5)).min(0.9);
            e.out_error_delta = passed_on(rng, e.error_delta);
            e.latency_log_ratio = rng.random_range(0.3..1.5);
            e.self_log_ratio = rng.random_range(-0.1..0.2);
            e.caller_error_delta = victim(rng);
            e.callees_degraded = true;
            e.callee_explains = true;
            e.hops = 1;
            drafts.push(service_draft(service, e));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    drafts.retain(|d| seen.insert(d.key.clone()));
    let cause_key = drafts[0].key.clone();
    for d in &mut drafts {
        d.evidence.past_incidents =
            past.get(&past_key(root, d.evidence.kind, &d.service)).copied().unwrap_or(0);
    }
    drafts.sort_by(|a, b| a.key.cmp(&b.key));

    let incident_id = format!("sim-{}", stable_digest([index.to_string().as_str(), root]));
    let fingerprint = stable_digest([incident_id.as_str(), "alert"]);
    let resolved_ns = onset_ns + rng.random_range(10..90) * 60 * NS_PER_S;
    let firing = Alert {
        fingerprint,
        service: root.into(),
        severity: Severity::Critical,
        status: AlertStatus::Firing,
        starts_at_ns: onset_ns,
        ends_at_ns: None,
        labels: BTreeMap::from([
            ("alertname".into(), "HighErrorRate".into()),
            ("service".into(), root.into()),
        ]),
        summary: format!("{root} error rate above SLO"),
        source: AlertSource::Devloom,
    };
    let resolved = Alert { status: AlertStatus::Resolved, ends_at_ns: Some(resolved_ns), ..firing.clone() };
    let mut changes: Vec<Deploy> = drafts.iter().filter_map(|d| d.change.clone()).collect();
    changes.sort_by(|a, b| (a.time_ns, &a.service).cmp(&(b.time_ns, &b.service)));
    let candidates = drafts
        .iter()
        .map(|d| Candidate {
            key: d.key.clone(),
            kind: d.evidence.kind,
            service: d.service.clone(),
            summary: d.summary.clone(),
            confidence: 0.0,
            share: 0.0,
            unfamiliar: None,
            features: FEATURES.iter().zip(features(&d.evidence)).map(|(n, v)| (n.to_string(), v)).collect(),
        })
        .collect();
    LabelledIncident {
        alerts: [firing, resolved],
        changes,
        candidates: CandidateList {
            schema_version: CANDIDATES_SCHEMA_VERSION,
            incident_id: incident_id.clone(),
            version: 1,
            status: IncidentStatus::Resolved,
            root_services: vec![root.into()],
            onset_ns,
            event_time_ns: onset_ns,
            low_confidence: false,
            model: "unscored".into(),
            candidates,
            published_at: None,
        },
        cause: ConfirmedCause { incident_id, candidate: cause_key, time_ns: resolved_ns, confirmed_by: None },
    }
}
