//! Remediations: for every candidate cause that is a change, the inverse action, the
//! command a human would run for it, and exactly what it would change.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::deploy::{ChangeKind, DeploySource, RolloutTool};
use crate::impact::IncidentStatus;
use crate::time::TimestampNs;

/// Version of the [`RemediationPlan`] JSON contract.
pub const REMEDIATION_SCHEMA_VERSION: u32 = 1;

/// A versioned plan for one incident: one remediation per change candidate, ordered
/// like the candidates. Re-planned when the candidates are re-scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RemediationPlan {
    /// [`REMEDIATION_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The incident (same id as its impact maps and candidate lists).
    pub incident_id: String,
    /// 1, 2, … per incident.
    pub version: u32,
    /// The candidate-list version it was planned from.
    pub candidates_version: u32,
    /// Open, resolved or stale.
    pub status: IncidentStatus,
    /// Event time of this version, ns since epoch.
    pub event_time_ns: TimestampNs,
    /// The candidate list was flagged low-confidence: investigate before acting.
    pub low_confidence: bool,
    /// One per change candidate, most likely first.
    pub remediations: Vec<Remediation>,
    /// Wall clock when the runtime published this version (RFC 3339).
    #[serde(default)]
    pub published_at: Option<String>,
}

impl RemediationPlan {
    /// The plan with the wall-clock stamp removed: what determinism is defined on.
    pub fn without_wall_clock(&self) -> Self {
        Self { published_at: None, ..self.clone() }
    }
}

/// What a remediation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RemediationAction {
    /// Return a deploy to the revision before it.
    Rollback,
    /// Restore the configuration before a config change.
    RevertConfig,
    /// The change was itself a rollback: return to the revision it replaced.
    RollForward,
}

/// The inverse of one change candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Remediation {
    /// The candidate's key (`deploy:payments@v42`).
    pub candidate: String,
    /// The candidate's place in its list, 1 = most likely.
    pub rank: u32,
    /// The candidate's calibrated confidence, 0–100.
    pub confidence: f64,
    /// The changed service.
    pub service: String,
    /// Rollback, config revert or roll-forward.
    pub action: RemediationAction,
    /// One line a human reads: what would happen.
    pub summary: String,
    /// The change being undone.
    pub change: ChangeRef,
    /// The revision it returns to, when known.
    #[serde(default)]
    pub target_revision: Option<String>,
    /// What to run, as the tool's users write it. Devloom never runs it.
    pub commands: Vec<String>,
    /// Files the commands apply (`kubectl apply -f FILE`): objects as they were before
    /// the change.
    pub manifests: Vec<Manifest>,
    /// Exactly what would change: current → after the remediation, per file or object.
    pub files: Vec<FileDiff>,
    /// What changed in the same deploy and the command does NOT revert.
    pub not_reverted: Vec<ObjectChange>,
    /// What Devloom cannot show, said plainly (no previous spec, unknown revision).
    pub gaps: Vec<String>,
    /// Things to check before running it.
    pub warnings: Vec<String>,
}

/// A file a command applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Manifest {
    /// The file name the command names.
    pub file: String,
    /// Its content (YAML).
    pub content: String,
}

/// The change a remediation undoes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeRef {
    /// Deploy, config change or rollback.
    pub kind: ChangeKind,
    /// The producing system.
    pub source: DeploySource,
    /// The tool that rolled it out, when known.
    #[serde(default)]
    pub tool: Option<RolloutTool>,
    /// Revision it brought.
    pub revision: String,
    /// Revision before it, when known.
    #[serde(default)]
    pub previous_revision: Option<String>,
    /// When it took effect, ns since epoch.
    pub time_ns: TimestampNs,
    /// Who made it.
    #[serde(default)]
    pub author: Option<String>,
}

/// The format of a spec, which decides how its keys are summarized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpecFormat {
    /// Kubernetes objects (YAML or JSON, one or many documents).
    Kubernetes,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
    /// TOML.
    Toml,
    /// `.env` or Java `.properties` (`KEY=value` lines).
    Properties,
    /// Anything else: a line diff only.
    Text,
}

/// The diff of one file (or one Kubernetes object, or a workload's pod template).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileDiff {
    /// What it is: a file name, or `Deployment/payments spec.template`.
    pub path: String,
    /// Its format.
    pub format: SpecFormat,
    /// Lines the remediation removes.
    pub removed: u32,
    /// Lines the remediation adds.
    pub added: u32,
    /// Key-level summary for structured formats, in key order.
    pub keys: Vec<KeyChange>,
    /// The unified diff (`---`/`+++` headers, `@@` hunks with line numbers, context).
    pub unified: String,
    /// The same hunks, line by line, for renderers.
    pub hunks: Vec<Hunk>,
    /// Set when the diff was cut at the configured size: the rest is not shown.
    #[serde(default)]
    pub truncated: bool,
}

/// One hunk of a diff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Hunk {
    /// First line of the hunk in the current file, 1-based.
    pub old_start: u32,
    /// Lines of the current file in the hunk.
    pub old_lines: u32,
    /// First line of the hunk after the remediation, 1-based.
    pub new_start: u32,
    /// Lines after the remediation in the hunk.
    pub new_lines: u32,
    /// Its lines.
    pub lines: Vec<DiffLine>,
}

/// Whether a diff line stays, goes or comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineTag {
    /// Context: unchanged.
    Context,
    /// Removed by the remediation (`-`).
    Removed,
    /// Added by the remediation (`+`).
    Added,
}

/// One line of a hunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiffLine {
    /// Context, removed or added.
    pub tag: LineTag,
    /// Its line number in the current file (none for added lines).
    #[serde(default)]
    pub old_line: Option<u32>,
    /// Its line number after the remediation (none for removed lines).
    #[serde(default)]
    pub new_line: Option<u32>,
    /// The line, without its line break.
    pub text: String,
}

/// One key whose value the remediation changes: `replicas: 5 → 3`,
/// `FEATURE_X: removed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeyChange {
    /// Dotted path; list items named by their `name` (`containers[payments].image`).
    pub key: String,
    /// Value now (none: the remediation adds the key).
    #[serde(default)]
    pub before: Option<String>,
    /// Value after the remediation (none: the remediation removes the key).
    #[serde(default)]
    pub after: Option<String>,
}

impl std::fmt::Display for KeyChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.before, &self.after) {
            (Some(b), Some(a)) => write!(f, "{}: {b} → {a}", self.key),
            (Some(_), None) => write!(f, "{}: removed", self.key),
            (None, Some(a)) => write!(f, "{}: added ({a})", self.key),
            (None, None) => write!(f, "{}", self.key),
        }
    }
}

/// A Kubernetes object that changed in the same deploy and the command does not
/// revert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ObjectChange {
    /// `ConfigMap`, `Secret`, `Service`, …
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, when set.
    #[serde(default)]
    pub namespace: Option<String>,
    /// What a full revert would change, now → before the deploy (Secret values as
    /// digests).
    pub keys: Vec<KeyChange>,
    /// The sentence a human reads.
    pub note: String,
}
