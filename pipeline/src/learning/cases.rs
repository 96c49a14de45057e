//! Labelled cases: folders of input files plus `truth.json`, run through the real
//! pipeline (files source, engine, scorer) to measure detection and ranking, and to
//! give the scorer training incidents whose features the pipeline itself extracted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use devloom_schemas::{CandidateKind, CandidateList, HealthState};
use serde::Serialize;

use devloom_operators::scorer::Metrics;

use super::training::{Prediction, Sample, metrics};
use crate::build::{self, ArchiveCommits};
use crate::config::Config;
use crate::core::{RawRecord, Source};
use crate::simulator::faults::{DEFAULT_RATE_PER_S, Truth, fault_case};
use crate::sinks::Collected;
use crate::sources::Decoding;
use crate::sources::file::Files;

/// Why a case could not be run.
#[derive(Debug, thiserror::Error)]
#[error("case {case}: {reason}")]
pub struct CaseError {
    /// The case folder.
    pub case: String,
    /// Why.
    pub reason: String,
}

/// What the pipeline made of one case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseOutcome {
    /// Folder name.
    pub case: String,
    /// What was injected.
    pub truth: Truth,
    /// The faulty service is red or amber on the last impact map.
    pub detected: bool,
    /// 1-based rank of the faulty service's first candidate in the last list.
    pub rank: Option<usize>,
    /// Services of the last list's top three candidates.
    pub top: Vec<String>,
    /// Confidence of the top candidate (0–100).
    pub top_confidence: f64,
    /// The last list, scored (for metrics).
    #[serde(skip)]
    pub prediction: Option<Prediction>,
    /// The first list, at the alert, unscored: a training incident.
    #[serde(skip)]
    pub first: Option<Sample>,
}

/// The case folders under `dir` (every sub-folder holding a `truth.json`), sorted.
pub fn case_folders(dir: &Path) -> Result<Vec<PathBuf>, CaseError> {
    let bad = |reason: String| CaseError { case: dir.display().to_string(), reason };
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| bad(e.to_string()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("truth.json").is_file())
        .collect();
    folders.sort();
    if folders.is_empty() {
        return Err(bad("no case folders (sub-folders with a truth.json)".into()));
    }
    Ok(folders)
}

/// Runs the pipeline `config` describes (its history archive left out) over the input
/// files of the case in `folder`.
pub fn run_case(config: &Config, folder: &Path) -> Result<CaseOutcome, CaseError> {
    let name =
        folder.file_name().map_or_else(|| folder.display().to_string(), |n| n.to_string_lossy().into());
    let bad = |reason: String| CaseError { case: name.clone(), reason };
    let truth: Truth = std::fs::read_to_string(folder.join("truth.json"))
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| bad(format!("truth.json: {e}")))?;
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| bad(e.to_string()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "truth.json"))
        .collect();
    inputs.sort();
    let mut source = Files::open(&inputs, &config.decode.options()).map_err(|e| bad(e.to_string()))?;
    run_source(config, &name, truth, &mut source)
}

/// Generates simulated fault case `index` of `seed` and runs it through the pipeline in
/// memory, as [`run_case`] would from its folder.
pub fn run_fault_case(config: &Config, seed: u64, index: u64) -> Result<CaseOutcome, CaseError> {
    let case = fault_case(seed, index, DEFAULT_RATE_PER_S);
    let records = case.records.into_iter().map(|r| Ok(RawRecord::from(r)));
    let mut source = Decoding::start(records, config.decode.options());
    run_source(config, &case.name, case.truth, &mut source)
}

fn run_source(
    config: &Config,
    name: &str,
    truth: Truth,
    source: &mut dyn Source,
) -> Result<CaseOutcome, CaseError> {
    let bad = |reason: String| CaseError { case: name.to_string(), reason };
    let mut config = config.clone();
    config.history.dir = None;
    let mut pipeline = build::pipeline(&config, Collected::default(), ArchiveCommits::OnRoll)
        .map_err(|e| bad(e.to_string()))?;
    pipeline.run(source).map_err(|e| bad(e.to_string()))?;
    let (out, _) = pipeline.finish().map_err(|e| bad(e.to_string()))?;
    let faulty = truth.faulty_service.as_str();
    let detected = out.maps.last().is_some_and(|m| {
        m.nodes
            .iter()
            .any(|n| n.service == faulty && matches!(n.state, HealthState::Red | HealthState::Amber))
    });
    let last = out.candidates.last();
    let rank = last.and_then(|l| l.candidates.iter().position(|c| c.service == faulty)).map(|i| i + 1);
    Ok(CaseOutcome {
        case: name.to_string(),
        detected,
        rank,
        top: last
            .map(|l| l.candidates.iter().take(3).map(|c| c.service.clone()).collect())
            .unwrap_or_default(),
        top_confidence: last.and_then(|l| l.candidates.first()).map_or(0.0, |c| c.confidence),
        prediction: last.map(|l| prediction(l, faulty)),
        first: out.candidates.first().map(|l| sample(name, l, faulty)),
        truth,
    })
}

/// The index of the candidate that names the faulty service: its own (service or
/// dependency) candidate first, else any candidate on it.
fn label(list: &CandidateList, faulty: &str) -> Option<usize> {
    let on = |i: &usize| list.candidates[*i].service == faulty;
    let own =
        |i: &usize| matches!(list.candidates[*i].kind, CandidateKind::Service | CandidateKind::Dependency);
    let indices = 0..list.candidates.len();
    indices.clone().find(|i| on(i) && own(i)).or_else(|| indices.clone().find(on))
}

fn prediction(list: &CandidateList, faulty: &str) -> Prediction {
    Prediction {
        confidences: list.candidates.iter().map(|c| c.confidence).collect(),
        keys: list.candidates.iter().map(|c| c.key.clone()).collect(),
        label: label(list, faulty),
    }
}

/// The list as a training incident, candidates in key order: what the model that
/// scored the list thought must not change what the next model learns from.
fn sample(case: &str, list: &CandidateList, faulty: &str) -> Sample {
    let mut list = list.clone();
    list.candidates.sort_by(|a, b| a.key.cmp(&b.key));
    Sample::of(format!("{case}/{}", list.incident_id), &list, label(&list, faulty))
}

/// Detection, AC@1, AC@3 and ECE of a group of cases.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupScores {
    /// Cases in the group.
    pub cases: usize,
    /// Share detected, with its 95% Wilson interval.
    pub detection: [f64; 3],
    /// AC@1, AC@3, Brier and ECE with bootstrap 95% intervals.
    pub metrics: Metrics,
}

/// Scores of every case, per fault, per trace style and overall.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseReport {
    /// All cases.
    pub overall: GroupScores,
    /// By the `fault` of `truth.json`.
    pub by_fault: BTreeMap<String, GroupScores>,
    /// By trace style (simulated cases).
    pub by_style: BTreeMap<String, GroupScores>,
    /// Every case.
    pub cases: Vec<CaseOutcome>,
}

/// Lower and upper bound of the 95% Wilson interval of `k / n`.
fn wilson(k: usize, n: usize) -> [f64; 2] {
    if n == 0 {
        return [0.0, 0.0];
    }
    const Z: f64 = 1.96;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let centre = p + Z * Z / (2.0 * n);
    let margin = Z * (p * (1.0 - p) / n + Z * Z / (4.0 * n * n)).sqrt();
    let d = 1.0 + Z * Z / n;
    [((centre - margin) / d).max(0.0), ((centre + margin) / d).min(1.0)]
}

fn group(cases: &[&CaseOutcome]) -> GroupScores {
    let detected = cases.iter().filter(|c| c.detected).count();
    let n = cases.len();
    let predictions: Vec<Prediction> = cases
        .iter()
        .map(|c| {
            c.prediction.clone().unwrap_or(Prediction { confidences: vec![], keys: vec![], label: None })
        })
        .collect();
    let [low, high] = wilson(detected, n);
    GroupScores {
        cases: n,
        detection: [detected as f64 / n.max(1) as f64, low, high],
        metrics: metrics(&predictions, 7).0,
    }
}

/// Groups `outcomes` and scores each group.
pub fn report(outcomes: Vec<CaseOutcome>) -> CaseReport {
    let all: Vec<&CaseOutcome> = outcomes.iter().collect();
    let by = |key: &dyn Fn(&CaseOutcome) -> Option<String>| {
        let mut groups: BTreeMap<String, Vec<&CaseOutcome>> = BTreeMap::new();
        for c in &outcomes {
            if let Some(k) = key(c) {
                groups.entry(k).or_default().push(c);
            }
        }
        groups.into_iter().map(|(k, v)| (k, group(&v))).collect::<BTreeMap<_, _>>()
    };
    let style = |c: &CaseOutcome| {
        c.truth.style.and_then(|s| serde_json::to_value(s).ok()).and_then(|v| v.as_str().map(String::from))
    };
    CaseReport {
        overall: group(&all),
        by_fault: by(&|c| Some(c.truth.fault.clone())),
        by_style: by(&style),
        cases: outcomes,
    }
}

/// The report as a table.
pub fn render(report: &CaseReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>5}  {:<20} {:<20} {:<20} {:<6}",
        "group", "cases", "detection [95% CI]", "AC@1 [95% CI]", "AC@3 [95% CI]", "ECE"
    );
    let row = |out: &mut String, name: &str, g: &GroupScores| {
        let ci = |v: f64, lo: f64, hi: f64| format!("{v:.2} [{lo:.2}, {hi:.2}]");
        let m = &g.metrics;
        let _ = writeln!(
            out,
            "{:<22} {:>5}  {:<20} {:<20} {:<20} {:.3}",
            name,
            g.cases,
            ci(g.detection[0], g.detection[1], g.detection[2]),
            ci(m.ac_at_1.value, m.ac_at_1.low, m.ac_at_1.high),
            ci(m.ac_at_3.value, m.ac_at_3.low, m.ac_at_3.high),
            m.ece.value
        );
    };
    row(&mut out, "all", &report.overall);
    for (name, g) in &report.by_fault {
        row(&mut out, &format!("fault {name}"), g);
    }
    for (name, g) in &report.by_style {
        row(&mut out, &format!("style {name}"), g);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_brackets_the_rate() {
        let [lo, hi] = wilson(8, 10);
        assert!(lo < 0.8 && hi > 0.8 && lo > 0.4 && hi < 0.98, "{lo} {hi}");
        assert_eq!(wilson(0, 0), [0.0, 0.0]);
        assert_eq!(wilson(10, 10)[1], 1.0);
    }
}
