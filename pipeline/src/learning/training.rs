//! Training the root-cause scorer on incident history with confirmed causes:
//! logistic regression (`linfa-logistic`) on the candidates of the training incidents,
//! Platt scaling fitted on held-out calibration incidents, metrics on a third, untouched
//! split. Seeded: same history and seed, same model file.

use std::collections::BTreeMap;
use std::path::Path;

use devloom_operators::evidence::{FEATURES, is_time_feature};
use devloom_operators::health::wilson_lower_bound;
use devloom_operators::scorer::{
    Calibration, Interval, LowConfidence, MODEL_FORMAT_VERSION, Metrics, Model, Provenance, Scorer, logit,
};
use devloom_schemas::ids::stable_digest;
use devloom_schemas::{CandidateKind, CandidateList, ConfirmedCause};
use linfa::Dataset;
use linfa::traits::Fit;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::history::HistoryError;
use crate::history::query::records;
use crate::history::tables::Kind;

/// One incident as the scorer sees it: its candidates' features and, when confirmed,
/// which one was the cause.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The incident.
    pub incident_id: String,
    /// Onset, ns since the epoch.
    pub onset_ns: u64,
    /// Candidate keys.
    pub keys: Vec<String>,
    /// Candidate kinds.
    pub kinds: Vec<CandidateKind>,
    /// Feature vectors in [`FEATURES`] order.
    pub rows: Vec<[f64; FEATURES.len()]>,
    /// Index of the confirmed cause; none when the cause was not among the candidates.
    pub label: Option<usize>,
}

impl Sample {
    /// The incident `list` describes, named `incident_id`, its cause the candidate at
    /// `label`; features missing from a candidate (an older list) are 0.
    pub fn of(incident_id: String, list: &CandidateList, label: Option<usize>) -> Self {
        let rows = list
            .candidates
            .iter()
            .map(|c| {
                let mut row = [0.0; FEATURES.len()];
                for (i, name) in FEATURES.iter().enumerate() {
                    row[i] = c.features.get(*name).copied().unwrap_or(0.0);
                }
                row
            })
            .collect();
        Self {
            incident_id,
            onset_ns: list.onset_ns,
            keys: list.candidates.iter().map(|c| c.key.clone()).collect(),
            kinds: list.candidates.iter().map(|c| c.kind).collect(),
            rows,
            label,
        }
    }
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Reading the archive failed.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// Not enough labelled incidents.
    #[error("{0}")]
    Data(String),
    /// The optimizer failed.
    #[error("fitting the model: {0}")]
    Fit(String),
}

/// Reads the labelled incidents of the archive at `dir`: the last candidate-list version
/// of every incident with a confirmed cause, sorted by incident id.
pub fn load(dir: &Path) -> Result<Vec<Sample>, TrainError> {
    let lists: Vec<CandidateList> = records(dir, Kind::Candidates)?;
    let causes: Vec<ConfirmedCause> = records(dir, Kind::Causes)?;
    let causes: BTreeMap<String, String> = causes.into_iter().map(|c| (c.incident_id, c.candidate)).collect();
    let mut latest: BTreeMap<String, CandidateList> = BTreeMap::new();
    for list in lists {
        if causes.contains_key(&list.incident_id) {
            latest.insert(list.incident_id.clone(), list);
        }
    }
    let samples: Vec<Sample> = latest
        .into_values()
        .map(|list| {
            let cause = &causes[&list.incident_id];
            let label = list.candidates.iter().position(|c| &c.key == cause);
            Sample::of(list.incident_id.clone(), &list, label)
        })
        .collect();
    if samples.len() < 50 {
        return Err(TrainError::Data(format!(
            "{}: {} incidents with a confirmed cause; at least 50 are needed (simulate some with `devloom history simulate`)",
            dir.display(),
            samples.len()
        )));
    }
    Ok(samples)
}

/// Hash of the samples (ids, keys, features, labels), in order.
pub fn data_hash(samples: &[Sample]) -> String {
    let parts: Vec<String> = samples
        .iter()
        .map(|s| {
            let mut part = format!("{}|{:?}", s.incident_id, s.label);
            for (key, row) in s.keys.iter().zip(&s.rows) {
                part.push('|');
                part.push_str(key);
                for v in row {
                    part.push_str(&format!(",{:x}", v.to_bits()));
                }
            }
            part
        })
        .collect();
    stable_digest(parts.iter().map(String::as_str))
}

/// Train / calibration / test incident indices (about 60 / 20 / 20), each incident's
/// part fixed by a digest of `seed` and its id: an incident is held out or not whatever
/// else is trained with it, so a model trained on a history plus labelled cases is
/// measured on the history's held-out incidents alone.
pub fn split(samples: &[Sample], seed: u64) -> [Vec<usize>; 3] {
    let seed = seed.to_string();
    let mut parts: [Vec<usize>; 3] = Default::default();
    for (i, s) in samples.iter().enumerate() {
        let digest = stable_digest([seed.as_str(), s.incident_id.as_str()]);
        let fifth = u64::from_str_radix(&digest, 16).unwrap_or(0) % 5;
        parts[match fifth {
            0..=2 => 0,
            3 => 1,
            _ => 2,
        }]
        .push(i);
    }
    parts
}

/// Which features a model uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureSet {
    /// Every feature.
    Full,
    /// Without time-of-day and day-of-week features (the ablation).
    WithoutTime,
}

impl FeatureSet {
    fn names(self) -> Vec<String> {
        FEATURES
            .iter()
            .filter(|f| self == FeatureSet::Full || !is_time_feature(f))
            .map(|f| f.to_string())
            .collect()
    }
}

const L2: f64 = 0.05;

/// Trains and calibrates a model on `samples` (split with `seed`), and measures it on
/// the held-out test incidents.
pub fn train(samples: &[Sample], seed: u64, features: FeatureSet) -> Result<Model, TrainError> {
    let [train_idx, calibration_idx, test_idx] = split(samples, seed);
    let names = features.names();
    let columns: Vec<usize> =
        names.iter().map(|n| FEATURES.iter().position(|f| f == n).expect("known")).collect();
    let columns = &columns;
    let (weights, intercept) = fit(
        train_idx.iter().flat_map(|&i| {
            let s = &samples[i];
            s.rows
                .iter()
                .enumerate()
                .map(move |(j, row)| (columns.iter().map(|&c| row[c]).collect(), s.label == Some(j)))
        }),
        names.len(),
        L2,
    )?;
    let mut model = Model {
        format_version: MODEL_FORMAT_VERSION,
        feature_names: names,
        weights,
        intercept,
        calibration: Calibration::Platt { a: 1.0, b: 0.0 },
        low_confidence: LowConfidence::default(),
        provenance: Provenance {
            data_hash: data_hash(samples),
            history_hash: None,
            seed,
            train_incidents: train_idx.len() as u64,
            calibration_incidents: calibration_idx.len() as u64,
            test_incidents: test_idx.len() as u64,
            test_metrics: Metrics::default(),
        },
        max_confidence: 100.0,
        feature_ranges: ranges(train_idx.iter().flat_map(|&i| &samples[i].rows), columns),
    };
    // Platt scaling on the calibration incidents' normalized shares.
    let uncalibrated = Scorer::new(model.clone()).map_err(|e| TrainError::Fit(e.to_string()))?;
    let (a, b) = fit(
        calibration_idx.iter().flat_map(|&i| {
            let s = &samples[i];
            let logits: Vec<f64> = s.rows.iter().map(|r| uncalibrated.logit(r)).collect();
            uncalibrated
                .calibrate(&logits)
                .into_iter()
                .enumerate()
                .map(move |(j, scored)| (vec![logit(scored.share)], s.label == Some(j)))
                .collect::<Vec<_>>()
        }),
        1,
        1e-3,
    )?;
    model.calibration = Calibration::Platt { a: a[0], b };
    let calibration: Vec<&Sample> = calibration_idx.iter().map(|&i| &samples[i]).collect();
    let calibrated = Scorer::new(model.clone()).map_err(|e| TrainError::Fit(e.to_string()))?;
    model.max_confidence = ceiling(&predict(&calibrated, &calibration));
    let scorer = Scorer::new(model.clone()).map_err(|e| TrainError::Fit(e.to_string()))?;
    let test: Vec<&Sample> = test_idx.iter().map(|&i| &samples[i]).collect();
    model.provenance.test_metrics = metrics(&predict(&scorer, &test), seed).0;
    Ok(model)
}

/// `[min, max]` of each of `columns` over `rows`.
fn ranges<'a>(rows: impl Iterator<Item = &'a [f64; FEATURES.len()]>, columns: &[usize]) -> Vec<[f64; 2]> {
    let mut ranges = vec![[f64::INFINITY, f64::NEG_INFINITY]; columns.len()];
    for row in rows {
        for (r, &c) in ranges.iter_mut().zip(columns) {
            *r = [r[0].min(row[c]), r[1].max(row[c])];
        }
    }
    ranges.into_iter().map(|[lo, hi]| if lo <= hi { [lo, hi] } else { [0.0, 0.0] }).collect()
}

/// The highest confidence the data supports: of the incidents whose top candidate got
/// 90 or more (all of them, when fewer than 30 did), how often it was the cause — the
/// lower bound of its 95% Wilson interval, as a percentage.
fn ceiling(predictions: &[Prediction]) -> f64 {
    let tops: Vec<(f64, bool)> = predictions
        .iter()
        .filter(|p| !p.confidences.is_empty())
        .map(|p| (p.confidences[p.ranking()[0]], p.hit_at(1)))
        .collect();
    let confident: Vec<&(f64, bool)> = tops.iter().filter(|(c, _)| *c >= 90.0).collect();
    let pool: Vec<&(f64, bool)> = if confident.len() >= 30 { confident } else { tops.iter().collect() };
    let hits = pool.iter().filter(|(_, hit)| *hit).count() as u64;
    let bound = 100.0 * wilson_lower_bound(hits, pool.len() as u64);
    (bound * 10.0).round() / 10.0
}

/// Logistic regression on `(features, is_cause)` rows; returns weights and intercept.
fn fit(
    rows: impl Iterator<Item = (Vec<f64>, bool)>,
    width: usize,
    alpha: f64,
) -> Result<(Vec<f64>, f64), TrainError> {
    let (mut flat, mut labels) = (Vec::new(), Vec::new());
    for (x, y) in rows {
        flat.extend(x);
        labels.push(usize::from(y));
    }
    if !labels.contains(&1) || !labels.contains(&0) {
        return Err(TrainError::Data("the training split needs both causes and non-causes".into()));
    }
    let x =
        Array2::from_shape_vec((labels.len(), width), flat).map_err(|e| TrainError::Fit(e.to_string()))?;
    let dataset = Dataset::new(x, Array1::from(labels));
    let fitted = LogisticRegression::default()
        .alpha(alpha)
        .max_iterations(500)
        .fit(&dataset)
        .map_err(|e| TrainError::Fit(e.to_string()))?;
    // linfa's parameters give the log-odds of its "positive" class, which is the more
    // frequent label (here: not the cause); turn them into the log-odds of the cause.
    let sign = if fitted.labels().pos.class == 1 { 1.0 } else { -1.0 };
    Ok((fitted.params().iter().map(|w| sign * w).collect(), sign * fitted.intercept()))
}

/// A scored incident: confidences in candidate order, and the label.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Calibrated confidence (0–100) per candidate.
    pub confidences: Vec<f64>,
    /// Candidate keys (ties break by key, as in the published lists).
    pub keys: Vec<String>,
    /// The cause's index.
    pub label: Option<usize>,
}

impl Prediction {
    /// Candidate indices, most confident first.
    pub fn ranking(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.confidences.len()).collect();
        order.sort_by(|&a, &b| {
            self.confidences[b].total_cmp(&self.confidences[a]).then_with(|| self.keys[a].cmp(&self.keys[b]))
        });
        order
    }

    /// Whether the cause is among the top `k`.
    pub fn hit_at(&self, k: usize) -> bool {
        self.label.is_some_and(|l| self.ranking().iter().take(k).any(|&i| i == l))
    }
}

/// Scores `samples` with `scorer`.
pub fn predict(scorer: &Scorer, samples: &[&Sample]) -> Vec<Prediction> {
    samples
        .iter()
        .map(|s| {
            let logits: Vec<f64> = s.rows.iter().map(|r| scorer.logit(r)).collect();
            Prediction {
                confidences: scorer.calibrate(&logits).into_iter().map(|c| c.confidence).collect(),
                keys: s.keys.clone(),
                label: s.label,
            }
        })
        .collect()
}

/// One bin of a reliability diagram.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bin {
    /// Candidates whose confidence fell in the bin.
    pub count: u64,
    /// Their mean confidence (0–1).
    pub confidence: f64,
    /// The fraction that were the cause.
    pub observed: f64,
}

const BINS: usize = 10;
const BOOTSTRAP: usize = 1000;

fn point(predictions: &[&Prediction]) -> ([f64; 4], [Bin; BINS]) {
    let n = predictions.len().max(1) as f64;
    let ac1 = predictions.iter().filter(|p| p.hit_at(1)).count() as f64 / n;
    let ac3 = predictions.iter().filter(|p| p.hit_at(3)).count() as f64 / n;
    let mut bins = [Bin::default(); BINS];
    let (mut brier, mut total) = (0.0, 0u64);
    for p in predictions {
        for (j, c) in p.confidences.iter().enumerate() {
            let (c, y) = (c / 100.0, f64::from(u8::from(p.label == Some(j))));
            brier += (c - y).powi(2);
            total += 1;
            let bin = &mut bins[((c * BINS as f64) as usize).min(BINS - 1)];
            bin.count += 1;
            bin.confidence += c;
            bin.observed += y;
        }
    }
    let total_f = total.max(1) as f64;
    let mut ece = 0.0;
    for bin in &mut bins {
        if bin.count > 0 {
            bin.confidence /= bin.count as f64;
            bin.observed /= bin.count as f64;
            ece += bin.count as f64 / total_f * (bin.observed - bin.confidence).abs();
        }
    }
    ([ac1, ac3, brier / total_f, ece], bins)
}

/// AC@1, AC@3, Brier and ECE with bootstrap 95% intervals (incidents resampled with
/// `seed`), and the reliability bins.
pub fn metrics(predictions: &[Prediction], seed: u64) -> (Metrics, [Bin; BINS]) {
    let all: Vec<&Prediction> = predictions.iter().collect();
    let (values, bins) = point(&all);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut samples: [Vec<f64>; 4] = Default::default();
    for _ in 0..BOOTSTRAP {
        let resampled: Vec<&Prediction> =
            (0..all.len()).map(|_| all[rand::Rng::random_range(&mut rng, 0..all.len().max(1))]).collect();
        let (v, _) = point(&resampled);
        for (s, x) in samples.iter_mut().zip(v) {
            s.push(x);
        }
    }
    let interval = |value: f64, s: &mut Vec<f64>| {
        s.sort_by(f64::total_cmp);
        let at = |q: f64| s.get(((s.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(value);
        Interval { value, low: at(0.025), high: at(0.975) }
    };
    let [s1, s3, sb, se] = &mut samples;
    (
        Metrics {
            incidents: predictions.len() as u64,
            ac_at_1: interval(values[0], s1),
            ac_at_3: interval(values[1], s3),
            brier: interval(values[2], sb),
            ece: interval(values[3], se),
        },
        bins,
    )
}
