//! Staged-rollout decisions: while two versions of a service serve traffic, the newer
//! one (the canary) is compared with the older one (stable) over the same window, and a
//! verdict says whether the rollout should go on.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::time::TimestampNs;

/// Version of the [`RolloutDecision`] JSON contract.
pub const ROLLOUT_SCHEMA_VERSION: u32 = 1;

/// What the comparison says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutVerdict {
    /// Enough requests on both sides and the canary is no worse: go on.
    Continue,
    /// The canary fails significantly more often, or is much slower: stop and roll back.
    Halt,
    /// Too few requests on one side for a verdict yet.
    Inconclusive,
}

impl RolloutVerdict {
    /// `continue`, `halt`, `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Halt => "halt",
            Self::Inconclusive => "inconclusive",
        }
    }
}

/// One version's requests over the compared window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VersionHealth {
    /// `service.version`.
    pub version: String,
    /// Requests it served in the window.
    pub requests: u64,
    /// …of which failed.
    pub failures: u64,
    /// failures / requests (0 without requests).
    pub error_rate: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Event time it first served a request (RFC 3339).
    pub first_seen: String,
}

/// The numbers behind a verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RolloutComparison {
    /// Canary error rate minus stable error rate.
    pub error_rate_delta: f64,
    /// Two-proportion z statistic (pooled, continuity-corrected) of "the canary fails
    /// more often"; 0 when either side has no requests.
    pub z: f64,
    /// One-sided p-value of that statistic (normal approximation).
    pub p_value: f64,
    /// Canary p99 / stable p99 (absent without latency on both sides).
    pub p99_ratio: Option<f64>,
    /// Canary median / stable median.
    pub median_ratio: Option<f64>,
}

/// The verdict on one staged rollout, published on `devloom.rollouts` whenever it
/// changes (or the pair of versions does).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RolloutDecision {
    /// [`ROLLOUT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The service being rolled out (`service.name`).
    pub service: String,
    /// `deployment.environment.name` of its spans, when they carry one.
    pub environment: Option<String>,
    /// 1, 2, … per service and environment: consumers keep the highest.
    pub sequence: u32,
    /// The verdict.
    pub verdict: RolloutVerdict,
    /// `verdict != halt`: the boolean a `web` metric's `jsonPath` reads.
    pub ok: bool,
    /// Why, one line per reason, with the numbers.
    pub reasons: Vec<String>,
    /// The older version still serving traffic.
    pub stable: VersionHealth,
    /// The newest version.
    pub canary: VersionHealth,
    /// The comparison.
    pub comparison: RolloutComparison,
    /// Start of the compared window (RFC 3339): the later of the canary's first request
    /// and `window_ms` before the decision.
    pub window_start: String,
    /// Event time of the decision, ns since epoch.
    pub event_time_ns: TimestampNs,
    /// Event time as RFC 3339.
    pub event_time: String,
    /// Wall clock when the runtime published it (RFC 3339).
    #[serde(default)]
    pub published_at: Option<String>,
}
