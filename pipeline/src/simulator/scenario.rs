//! Scenarios: faults, changes and alert rules on the shop topology, in seconds of event
//! time from the start of the run.

use devloom_schemas::ChangeKind;

/// A fault on one node for a while.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// Node name.
    pub target: String,
    /// Start, seconds.
    pub from_s: u64,
    /// End, seconds (exclusive).
    pub until_s: u64,
    /// Failure probability while active (replaces the node's own), if any.
    pub error_rate: Option<f64>,
    /// Multiplies the node's own latency (its work, not its calls) while active.
    pub latency_factor: f64,
    /// Share of its requests `latency_factor` hits (a CPU hog starves some, not all).
    pub affected: f64,
    /// Grow `latency_factor` from 1 at the start to its value at the end (a leak).
    pub ramp: bool,
    /// Extra time on the wire of calls into and out of the node, milliseconds.
    pub network_delay_ms: f64,
    /// Share of those calls that pay it (1: delay; below 1: packet loss, retransmits).
    pub network_share: f64,
    /// Share of the calls to it whose caller fails on the answer (a wrong return).
    pub caller_error_rate: f64,
    /// Down: it emits no spans, and calls to it fail at once.
    pub down: bool,
}

impl Default for Fault {
    /// No effect at all, on no node.
    fn default() -> Self {
        Self {
            target: String::new(),
            from_s: 0,
            until_s: 0,
            error_rate: None,
            latency_factor: 1.0,
            affected: 1.0,
            ramp: false,
            network_delay_ms: 0.0,
            network_share: 1.0,
            caller_error_rate: 0.0,
            down: false,
        }
    }
}

/// What the faults active on a node at one moment do to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Effect {
    /// Failure probability (replaces the node's own), if any.
    pub error_rate: Option<f64>,
    /// Multiplies its own latency…
    pub latency_factor: f64,
    /// …for this share of its requests.
    pub affected: f64,
    /// Extra wire time of calls into and out of it, milliseconds…
    pub network_delay_ms: f64,
    /// …for this share of them.
    pub network_share: f64,
    /// Its callers fail on this share of its answers.
    pub caller_error_rate: f64,
    /// It is down.
    pub down: bool,
}

/// What an alert rule watches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Condition {
    /// Failure ratio of the watched service's requests over a window.
    ErrorRateAbove(f64),
    /// p99 latency of the watched service's requests over a window, milliseconds.
    P99AboveMs(f64),
}

/// An SLO rule evaluated like Prometheus + Alertmanager: over 30 s windows, firing after
/// two breaching windows, resolving after two clean ones.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRule {
    /// `alertname`.
    pub name: &'static str,
    /// The `service` label of the alert.
    pub service: &'static str,
    /// The service whose requests are measured.
    pub watch: &'static str,
    /// The condition.
    pub condition: Condition,
    /// Extra labels.
    pub labels: &'static [(&'static str, &'static str)],
    /// `severity` label.
    pub severity: &'static str,
    /// Summary annotation.
    pub summary: &'static str,
}

/// A change published on the deploys topic.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// When, seconds.
    pub at_s: u64,
    /// Service changed.
    pub service: &'static str,
    /// Kind of change.
    pub kind: ChangeKind,
    /// Revision after.
    pub revision: &'static str,
    /// Revision before.
    pub previous: &'static str,
    /// Who.
    pub author: &'static str,
}

/// A staged rollout: from `from_s`, a `share` of one service's requests is served by a
/// new version that fails `extra_error_rate` more often and is `latency_factor` slower.
#[derive(Clone, Debug, PartialEq)]
pub struct Canary {
    /// Node name.
    pub target: &'static str,
    /// Start, seconds.
    pub from_s: u64,
    /// Share of the node's requests the canary serves.
    pub share: f64,
    /// Added to the node's own failure probability on the canary.
    pub extra_error_rate: f64,
    /// Multiplies the canary's own latency.
    pub latency_factor: f64,
    /// `service.version` of the canary.
    pub version: &'static str,
}

/// `service.version` every simulated service reports (the canary aside).
pub const STABLE_VERSION: &str = "1.0.0";

/// A whole scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Name used on the command line.
    pub name: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// Length, seconds.
    pub duration_s: u64,
    /// Faults.
    pub faults: Vec<Fault>,
    /// Alert rules.
    pub rules: Vec<AlertRule>,
    /// Deploys and other changes.
    pub changes: Vec<Change>,
    /// A staged rollout, if any.
    pub canary: Option<Canary>,
}

/// Names accepted by [`Scenario::named`].
pub const SCENARIOS: [&str; 5] = ["regression", "db-latency", "async-consumer", "canary", "steady"];

const MIN: u64 = 60;

impl Scenario {
    /// The scenario called `name`, if any.
    pub fn named(name: &str) -> Option<Self> {
        Some(match name {
            "regression" => Self::regression(),
            "db-latency" => Self::db_latency(),
            "async-consumer" => Self::async_consumer(),
            "canary" => Self::canary("frontend", 0.1, 0.08),
            "steady" => Self::steady(12 * MIN),
            _ => return None,
        })
    }

    /// Normal traffic, no faults, no alerts.
    pub fn steady(duration_s: u64) -> Self {
        Self {
            name: "steady",
            description: "normal traffic, no faults",
            duration_s,
            faults: vec![],
            rules: vec![],
            changes: vec![],
            canary: None,
        }
    }

    /// A bad deploy raises one service's errors; its callers degrade, nothing else breaks.
    pub fn regression() -> Self {
        Self {
            name: "regression",
            description: "payments v1.9.0 fails 10% of requests; rolled back four minutes later (contained)",
            duration_s: 12 * MIN,
            faults: vec![Fault {
                target: "payments".into(),
                from_s: 6 * MIN,
                until_s: 10 * MIN,
                error_rate: Some(0.1),
                latency_factor: 1.0,
                ..Fault::default()
            }],
            rules: vec![AlertRule {
                name: "HighErrorRate",
                service: "payments",
                watch: "payments",
                condition: Condition::ErrorRateAbove(0.05),
                labels: &[("team", "payments")],
                severity: "critical",
                summary: "payments 5xx ratio above 5% (SLO 99.5%)",
            }],
            changes: vec![
                Change {
                    at_s: 6 * MIN,
                    service: "payments",
                    kind: ChangeKind::Deploy,
                    revision: "v1.9.0",
                    previous: "v1.8.2",
                    author: "ana",
                },
                Change {
                    at_s: 10 * MIN,
                    service: "payments",
                    kind: ChangeKind::Rollback,
                    revision: "v1.8.2",
                    previous: "v1.9.0",
                    author: "oncall-bot",
                },
            ],
            canary: None,
        }
    }

    /// The database slows down (callers turn amber before anything alerts on them), then
    /// starts timing out: its callers go red (spreading).
    pub fn db_latency() -> Self {
        Self {
            name: "db-latency",
            description: "postgres slows 40x after a reindex job, then times out: its callers go red (spreading)",
            duration_s: 12 * MIN,
            faults: vec![
                Fault {
                    target: "postgres".into(),
                    from_s: 6 * MIN,
                    until_s: 10 * MIN,
                    error_rate: None,
                    latency_factor: 40.0,
                    ..Fault::default()
                },
                Fault {
                    target: "postgres".into(),
                    from_s: 8 * MIN,
                    until_s: 10 * MIN,
                    error_rate: Some(0.5),
                    latency_factor: 1.0,
                    ..Fault::default()
                },
            ],
            rules: vec![AlertRule {
                name: "HighLatency",
                service: "checkout",
                watch: "checkout",
                condition: Condition::P99AboveMs(300.0),
                labels: &[("team", "checkout")],
                severity: "critical",
                summary: "checkout p99 above 300 ms",
            }],
            changes: vec![Change {
                at_s: 6 * MIN - 10,
                service: "postgres",
                kind: ChangeKind::ScheduledJob,
                revision: "reindex-2026-11-27",
                previous: "",
                author: "cron",
            }],
            canary: None,
        }
    }

    /// The async consumer of the `orders` topic fails; producers are unaffected, and only
    /// span links (consumer spans in new traces) connect it to them.
    pub fn async_consumer() -> Self {
        Self {
            name: "async-consumer",
            description: "fulfillment v3.0.0 fails 80% of the orders it consumes; only span links connect it",
            duration_s: 12 * MIN,
            faults: vec![Fault {
                target: "fulfillment".into(),
                from_s: 6 * MIN,
                until_s: 10 * MIN,
                error_rate: Some(0.8),
                latency_factor: 1.0,
                ..Fault::default()
            }],
            rules: vec![AlertRule {
                name: "KafkaConsumerLagHigh",
                service: "checkout",
                watch: "fulfillment",
                condition: Condition::ErrorRateAbove(0.1),
                labels: &[("topic", "orders"), ("consumergroup", "fulfillment")],
                severity: "warning",
                summary: "orders topic lag growing: messages not acknowledged",
            }],
            changes: vec![Change {
                at_s: 6 * MIN,
                service: "fulfillment",
                kind: ChangeKind::Deploy,
                revision: "v3.0.0",
                previous: "v2.7.1",
                author: "lee",
            }],
            canary: None,
        }
    }

    /// A staged rollout of `target` 1.1.0 from minute 2, serving `share` of its requests
    /// and failing `extra_error_rate` more of them; seven minutes, no alerts. The named
    /// scenario `canary` is frontend, 10%, 8% more.
    pub fn canary(target: &'static str, share: f64, extra_error_rate: f64) -> Self {
        Self {
            name: "canary",
            description: "frontend 1.1.0 takes 10% of traffic at minute 2 and fails 8% more requests than 1.0.0: the rollout decision flips to halt",
            duration_s: 7 * MIN,
            faults: vec![],
            rules: vec![],
            changes: vec![Change {
                at_s: 2 * MIN,
                service: target,
                kind: ChangeKind::Deploy,
                revision: "1.1.0",
                previous: STABLE_VERSION,
                author: "flagger",
            }],
            canary: Some(Canary {
                target,
                from_s: 2 * MIN,
                share,
                extra_error_rate,
                latency_factor: 1.0,
                version: "1.1.0",
            }),
        }
    }

    /// The canary serving requests of `node` at `at_s`, if one does.
    pub fn canary_on(&self, node: &str, at_s: f64) -> Option<&Canary> {
        self.canary.as_ref().filter(|c| c.target == node && at_s >= c.from_s as f64)
    }

    /// What the faults on `node` do at `at_s`, overlapping faults combined.
    pub fn fault_on(&self, node: &str, at_s: f64) -> Effect {
        let mut effect = Effect {
            error_rate: None,
            latency_factor: 1.0,
            affected: 1.0,
            network_delay_ms: 0.0,
            network_share: 1.0,
            caller_error_rate: 0.0,
            down: false,
        };
        for f in &self.faults {
            if f.target == node && at_s >= f.from_s as f64 && at_s < f.until_s as f64 {
                effect.error_rate = f.error_rate.or(effect.error_rate);
                let progress = (at_s - f.from_s as f64) / (f.until_s - f.from_s).max(1) as f64;
                let factor =
                    if f.ramp { 1.0 + (f.latency_factor - 1.0) * progress } else { f.latency_factor };
                effect.latency_factor *= factor;
                effect.affected = effect.affected.min(f.affected);
                effect.network_delay_ms += f.network_delay_ms;
                effect.network_share = effect.network_share.min(f.network_share);
                effect.caller_error_rate = effect.caller_error_rate.max(f.caller_error_rate);
                effect.down |= f.down;
            }
        }
        effect
    }
}
