//! Remediation planner: for every candidate that is a change (deploy, config change,
//! rollback), the inverse action, the command its tool's users would run, and exactly
//! what it would change — per file, current → after the remediation. Re-planned when
//! the candidates are re-scored; versioned per incident. Devloom never runs anything.
//!
//! What it never does: invent a diff. A change event without its previous spec gets a
//! remediation that says so and shows the revision change only.

mod kubernetes;
mod spec;
mod text_diff;

use std::collections::BTreeMap;

use devloom_schemas::{
    Candidate, CandidateKind, CandidateList, ChangeKind, ChangeRef, Deploy, Manifest,
    REMEDIATION_SCHEMA_VERSION, Remediation, RemediationAction, RemediationPlan, RolloutTool, TimestampNs,
};
use serde::{Deserialize, Serialize};

use self::kubernetes::{ObjectsPlan, Reverts};
use self::spec::{Parsed, key_changes, parse};
use self::text_diff::{Limits, file_diff};
use crate::candidates::CandidateScorer;
use crate::operator::Operator;

/// What the planner shows; `[engine.remediation]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemediationConfig {
    /// Unchanged lines shown around each change.
    pub context_lines: usize,
    /// Diff lines kept per file; longer diffs are cut and marked `truncated`.
    pub max_diff_lines: usize,
    /// Specs larger than this are not diffed (the remediation says so), bytes.
    pub max_spec_bytes: usize,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        Self { context_lines: 3, max_diff_lines: 2_000, max_spec_bytes: 4 << 20 }
    }
}

impl RemediationConfig {
    /// Rejects settings that parse but cannot work (the message names the key).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_diff_lines == 0 {
            return Err("max_diff_lines must be above 0".into());
        }
        if self.max_spec_bytes == 0 {
            return Err("max_spec_bytes must be above 0".into());
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
        Limits { context_lines: self.context_lines, max_lines: self.max_diff_lines }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Planned {
    version: u32,
    /// `(candidate key, rank, confidence × 10)` of the change candidates last planned.
    signature: Vec<(String, u32, i64)>,
}

/// Serializable state of [`RemediationPlanner`]: per open incident, the last version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RemediationSnapshot {
    planned: BTreeMap<String, Planned>,
}

/// Changes planned at most once each while this many are cached (then the cache starts
/// over): a re-scored incident re-plans without parsing its specs again.
const CACHED_PLANS: usize = 256;

/// Plans remediations from candidate lists, reading the changes the candidate operator
/// remembers.
#[derive(Clone, Debug)]
pub struct RemediationPlanner {
    config: RemediationConfig,
    state: RemediationSnapshot,
    /// Plans by candidate key and change time, rank and confidence aside. Not state: a
    /// plan is a pure function of its change, so a restored planner plans the same.
    cache: BTreeMap<(String, TimestampNs), Remediation>,
}

impl RemediationPlanner {
    /// An empty planner.
    pub fn new(config: RemediationConfig) -> Self {
        Self { config, state: RemediationSnapshot::default(), cache: BTreeMap::new() }
    }

    fn plan(&mut self, rank: u32, candidate: &Candidate, change: &Deploy) -> Remediation {
        let key = (candidate.key.clone(), change.time_ns);
        if !self.cache.contains_key(&key) {
            if self.cache.len() >= CACHED_PLANS {
                self.cache.clear();
            }
            self.cache.insert(key.clone(), plan(&self.config, rank, candidate, change));
        }
        Remediation { rank, confidence: candidate.confidence, ..self.cache[&key].clone() }
    }
}

impl Operator for RemediationPlanner {
    type In = CandidateList;
    type Out = RemediationPlan;
    type Ctx = CandidateScorer;
    type Snapshot = RemediationSnapshot;

    fn on_event(&mut self, changes: &CandidateScorer, list: &CandidateList, out: &mut Vec<RemediationPlan>) {
        let ranked: Vec<(u32, &Candidate, &Deploy)> = list
            .candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c.kind, CandidateKind::Deploy | CandidateKind::ConfigChange))
            .filter_map(|(i, c)| Some((i as u32 + 1, c, changes.change(&c.key)?)))
            .collect();
        let signature: Vec<(String, u32, i64)> = ranked
            .iter()
            .map(|(rank, c, _)| (c.key.clone(), *rank, (c.confidence * 10.0).round() as i64))
            .collect();
        let closed = list.status.is_closed();
        let planned = self.state.planned.get(&list.incident_id);
        let unchanged = planned.map_or(signature.is_empty(), |p| p.signature == signature);
        if unchanged && !(closed && planned.is_some()) {
            return;
        }
        let planned = self.state.planned.entry(list.incident_id.clone()).or_default();
        planned.version += 1;
        planned.signature = signature;
        let version = planned.version;
        if closed {
            self.state.planned.remove(&list.incident_id);
        }
        out.push(RemediationPlan {
            schema_version: REMEDIATION_SCHEMA_VERSION,
            incident_id: list.incident_id.clone(),
            version,
            candidates_version: list.version,
            status: list.status,
            event_time_ns: list.event_time_ns,
            low_confidence: list.low_confidence,
            remediations: ranked.into_iter().map(|(rank, c, d)| self.plan(rank, c, d)).collect(),
            published_at: None,
        });
    }

    fn on_watermark(&mut self, _: &CandidateScorer, _: TimestampNs, _: &mut Vec<RemediationPlan>) {}

    fn snapshot(&self) -> RemediationSnapshot {
        self.state.clone()
    }

    fn restore(&mut self, snapshot: RemediationSnapshot) {
        self.state = snapshot;
    }
}

/// The remediation of one change candidate.
pub fn plan(config: &RemediationConfig, rank: u32, candidate: &Candidate, change: &Deploy) -> Remediation {
    let action = match change.kind {
        ChangeKind::Rollback => RemediationAction::RollForward,
        ChangeKind::ConfigChange => RemediationAction::RevertConfig,
        ChangeKind::Deploy | ChangeKind::ScheduledJob => RemediationAction::Rollback,
    };
    let mut r = Remediation {
        candidate: candidate.key.clone(),
        rank,
        confidence: candidate.confidence,
        service: change.service.clone(),
        action,
        summary: summary(action, change),
        change: ChangeRef {
            kind: change.kind,
            source: change.source,
            tool: change.tool,
            revision: change.revision.clone(),
            previous_revision: change.previous_revision.clone(),
            time_ns: change.time_ns,
            author: change.author.clone(),
        },
        target_revision: change.previous_revision.clone(),
        commands: Vec::new(),
        manifests: Vec::new(),
        files: Vec::new(),
        not_reverted: Vec::new(),
        gaps: Vec::new(),
        warnings: Vec::new(),
    };
    if change.previous_revision.is_none() {
        r.gaps.push(format!("the revision before {} is not in the event stream", change.revision));
    }
    let mut objects = None;
    let mut tool = change.tool;
    match (&change.spec_after, &change.spec_before) {
        (Some(now), Some(before)) if now.len().max(before.len()) > config.max_spec_bytes => r.gaps.push(format!(
            "the spec is {} bytes, over engine.remediation.max_spec_bytes ({}): not diffed; showing the revision change only",
            now.len().max(before.len()),
            config.max_spec_bytes
        )),
        (Some(now), Some(before)) if now == before => {
            r.gaps.push("the spec did not change: the revision change is all there is to revert".into())
        }
        (Some(now), Some(before)) => {
            let path = change.spec_path.as_deref();
            let bundles = spec::changed_objects(now, before).map(|(a, b)| (Parsed::Kubernetes(a), Parsed::Kubernetes(b)));
            match bundles.unwrap_or_else(|| (parse(path, now), parse(path, before))) {
                (Parsed::Kubernetes(now), Parsed::Kubernetes(before)) => {
                    let helm = kubernetes::helm_release(&now).or_else(|| kubernetes::helm_release(&before));
                    tool = tool.or(Some(if helm.is_some() { RolloutTool::Helm } else { RolloutTool::Kubectl }));
                    let reverts = if tool == Some(RolloutTool::Kubectl) { Reverts::Kubectl } else { Reverts::Release };
                    let mut p = kubernetes::plan(&now, &before, reverts, config.limits());
                    r.files = std::mem::take(&mut p.files);
                    r.not_reverted = std::mem::take(&mut p.not_reverted);
                    p.helm = helm;
                    objects = Some(p);
                }
                (now_parsed, before_parsed) => {
                    let format = now_parsed.format();
                    let keys = match (&now_parsed, &before_parsed) {
                        (Parsed::Structured(f, a), Parsed::Structured(g, b)) if f == g => key_changes("", a, b),
                        _ => Vec::new(),
                    };
                    let name = change.spec_path.clone().unwrap_or_else(|| format!("{} spec", change.service));
                    r.files.push(file_diff(&name, format, now, before, keys, config.limits()));
                }
            }
        }
        (_, None) => {
            r.gaps.push("previous manifest not in the event stream: showing the revision change only".into())
        }
        (None, Some(_)) => {
            r.gaps.push("current manifest not in the event stream: showing the revision change only".into())
        }
    }
    commands(&mut r, change, tool, objects);
    if action == RemediationAction::RollForward {
        let back_to = change.previous_revision.as_deref().unwrap_or("the revision it replaced");
        r.warnings.push(format!(
            "this change was itself a rollback: find out why {back_to} was rolled back before rolling forward to it"
        ));
    }
    r
}

fn summary(action: RemediationAction, change: &Deploy) -> String {
    let (service, rev) = (&change.service, &change.revision);
    let to = change.previous_revision.clone();
    match action {
        RemediationAction::Rollback => format!(
            "Roll back {service} from {rev} to {}",
            to.unwrap_or_else(|| "the revision before it".into())
        ),
        RemediationAction::RevertConfig => match to {
            Some(to) if to != *rev => format!("Revert the config change of {service} ({rev} → {to})"),
            _ => format!("Revert the config change of {service} at {rev}"),
        },
        RemediationAction::RollForward => format!(
            "Roll forward {service} from {rev} back to {}, undoing the rollback",
            to.unwrap_or_else(|| "the revision it replaced".into())
        ),
    }
}

/// The commands of the change's tool, as its users write them.
fn commands(r: &mut Remediation, change: &Deploy, tool: Option<RolloutTool>, objects: Option<ObjectsPlan>) {
    let helm = objects.as_ref().and_then(|p| p.helm.clone());
    match tool {
        Some(RolloutTool::Kubectl) => kubectl(r, objects.unwrap_or_default()),
        Some(RolloutTool::Helm) => {
            let (release, namespace) = match (&change.release, helm) {
                (Some(release), helm) => (Some(release.clone()), helm.and_then(|h| h.namespace)),
                (None, Some(h)) => (Some(h.name), h.namespace),
                (None, None) => (None, None),
            };
            let Some(release) = release else {
                r.gaps.push("the Helm release is not named in the change event (`release`)".into());
                return;
            };
            let rev = change.previous_history_id.map(|n| format!(" {n}")).unwrap_or_default();
            let ns = namespace.map(|n| format!(" --namespace {n}")).unwrap_or_default();
            if change.previous_history_id.is_none() {
                r.gaps.push(
                    "the previous Helm revision is not in the event stream: `helm rollback` without one returns to the release's previous revision (see `helm history`)".into(),
                );
            }
            r.commands.push(format!("helm rollback {release}{rev}{ns}"));
        }
        Some(RolloutTool::ArgoCd) => {
            let app = change.release.clone().unwrap_or_else(|| change.service.clone());
            match change.previous_history_id {
                Some(id) => r.commands.push(format!("argocd app rollback {app} {id}")),
                None => {
                    r.gaps.push(format!(
                        "the previous Argo CD history id is not in the event stream: find it with `argocd app history {app}`"
                    ));
                    r.commands.push(format!("argocd app history {app}"));
                }
            }
            r.warnings.push(format!(
                "argocd app rollback is refused while automated sync is on: disable it first (`argocd app set {app} --sync-policy none`) and fix the source before enabling it again, or the next sync redeploys {}",
                change.revision
            ));
        }
        Some(RolloutTool::Git) => {
            r.commands.push(format!("git revert --no-edit {}", change.revision));
            let repo = change.release.as_deref().unwrap_or("the repository that deployed it");
            r.warnings.push(format!("a hint, not a rollback: revert in {repo} and let your pipeline deploy the revert"));
        }
        None => r.gaps.push(format!(
            "no rollout tool is named for this change (`tool` in the deploy event): redeploy {} with the tool that deployed {}",
            change.previous_revision.as_deref().unwrap_or("the previous revision"),
            change.revision
        )),
    }
}

/// `kubectl rollout undo` per Deployment with a revision to return to, `kubectl apply`
/// of every previous manifest the plan restores otherwise.
fn kubectl(r: &mut Remediation, plan: ObjectsPlan) {
    let ns = |n: &Option<String>| n.as_ref().map(|n| format!(" --namespace {n}")).unwrap_or_default();
    for w in &plan.workloads {
        let resource = format!("{}/{}", w.kind.to_ascii_lowercase(), w.name);
        match &w.revision {
            Some(n) => {
                r.commands.push(format!("kubectl rollout undo {resource}{} --to-revision={n}", ns(&w.namespace)))
            }
            None => r.gaps.push(format!(
                "{} {}: no rollout revision in the previous manifest (deployment.kubernetes.io/revision): applying the previous manifest instead",
                w.kind, w.name
            )),
        }
    }
    for p in plan.previous {
        if p.kind == "Secret" {
            r.gaps.push(format!(
                "Secret {} changed: Devloom keeps only digests of its values; restore it from your secret store",
                p.name
            ));
            continue;
        }
        let file = format!("{}-{}.yaml", p.kind.to_ascii_lowercase(), p.name);
        r.commands.push(format!("kubectl apply{} -f {file}", ns(&p.namespace)));
        r.manifests.push(Manifest { file, content: p.manifest });
    }
}

#[cfg(test)]
mod tests;
