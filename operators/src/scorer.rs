//! The root-cause scorer: a logistic model over [`crate::evidence::features`], scores
//! normalized within the incident, then calibrated (Platt scaling fitted on held-out
//! incidents) so a confidence of 80 means right about 80% of the time.
//!
//! The model is data (a JSON file written by `devloom train`); this module only applies
//! it, so scoring is pure and deterministic.

use serde::{Deserialize, Serialize};

use crate::evidence::{Evidence, FEATURES, features};

/// Version of the model file format.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// How normalized scores become confidences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Calibration {
    /// Platt scaling: `confidence = σ(a · logit(share) + b)`.
    Platt {
        /// Slope.
        a: f64,
        /// Offset.
        b: f64,
    },
}

/// When a list is flagged "low confidence — investigate before acting".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LowConfidence {
    /// The top candidate's confidence is below this (0–100).
    pub min_top: f64,
    /// Or the top two are closer than this (confidence points).
    pub min_gap: f64,
}

impl Default for LowConfidence {
    fn default() -> Self {
        Self { min_top: 50.0, min_gap: 15.0 }
    }
}

/// Metrics of a model on a set of incidents, with bootstrap 95% intervals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Incidents evaluated.
    pub incidents: u64,
    /// Fraction whose cause was the top candidate.
    pub ac_at_1: Interval,
    /// Fraction whose cause was among the top three.
    pub ac_at_3: Interval,
    /// Mean squared error of confidence/100 against "was the cause", over candidates.
    pub brier: Interval,
    /// Expected calibration error, 10 equal-width bins, over candidates.
    pub ece: Interval,
}

/// A point estimate and its bootstrap 95% interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The estimate on the whole set.
    pub value: f64,
    /// 2.5th percentile of the bootstrap.
    pub low: f64,
    /// 97.5th percentile of the bootstrap.
    pub high: f64,
}

/// Where the model came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Hash of the training data (every candidate's features and label, in order).
    pub data_hash: String,
    /// With labelled cases trained beside a history archive: the hash of the archive's
    /// incidents alone, so `evaluate --history` knows its held-out split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_hash: Option<String>,
    /// Seed of the split.
    pub seed: u64,
    /// Incidents used to fit the weights.
    pub train_incidents: u64,
    /// Incidents used to fit the calibration.
    pub calibration_incidents: u64,
    /// Incidents held out for the metrics below.
    pub test_incidents: u64,
    /// Metrics on the held-out incidents.
    pub test_metrics: Metrics,
}

/// A trained, calibrated scorer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// [`MODEL_FORMAT_VERSION`].
    pub format_version: u32,
    /// Names of the features the weights apply to (a subset of [`FEATURES`]).
    pub feature_names: Vec<String>,
    /// One weight per feature name.
    pub weights: Vec<f64>,
    /// Bias term.
    pub intercept: f64,
    /// Score → confidence.
    pub calibration: Calibration,
    /// The "investigate before acting" flag.
    pub low_confidence: LowConfidence,
    /// Training data and held-out metrics.
    pub provenance: Provenance,
    /// No confidence is shown above this (0–100): the lower bound of the 95% interval of
    /// how often the calibration incidents' most confident top candidates were right.
    #[serde(default = "no_ceiling")]
    pub max_confidence: f64,
    /// Each feature's range over the training candidates (`[min, max]`, in
    /// `feature_names` order): a candidate outside them is unfamiliar.
    #[serde(default)]
    pub feature_ranges: Vec<[f64; 2]>,
}

fn no_ceiling() -> f64 {
    100.0
}

/// A model file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Format version or shape is wrong.
    #[error("model: {0}")]
    Invalid(String),
}

/// One candidate's result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    /// Some feature lies outside what the model was trained on: its confidence is a
    /// guess.
    pub unfamiliar: bool,
    /// Share within the incident (0–1, sums to 1).
    pub share: f64,
    /// Calibrated confidence, 0–100.
    pub confidence: f64,
}

/// Scoring with a validated model: feature positions resolved once.
#[derive(Clone, Debug, PartialEq)]
pub struct Scorer {
    model: Model,
    columns: Vec<usize>,
}

impl Scorer {
    /// Validates `model` against this build's features.
    pub fn new(model: Model) -> Result<Self, ModelError> {
        if model.format_version != MODEL_FORMAT_VERSION {
            return Err(ModelError::Invalid(format!(
                "format_version {} is not {MODEL_FORMAT_VERSION}",
                model.format_version
            )));
        }
        if model.weights.len() != model.feature_names.len() {
            return Err(ModelError::Invalid(format!(
                "{} weights for {} features",
                model.weights.len(),
                model.feature_names.len()
            )));
        }
        if !model.feature_ranges.is_empty() && model.feature_ranges.len() != model.feature_names.len() {
            return Err(ModelError::Invalid(format!(
                "{} feature ranges for {} features",
                model.feature_ranges.len(),
                model.feature_names.len()
            )));
        }
        let columns = model
            .feature_names
            .iter()
            .map(|n| {
                FEATURES
                    .iter()
                    .position(|f| f == n)
                    .ok_or_else(|| ModelError::Invalid(format!("unknown feature {n:?}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { model, columns })
    }

    /// Short identity of the model: `model-` + the start of its training-data hash.
    pub fn id(&self) -> String {
        let hash = &self.model.provenance.data_hash;
        format!("model-{}", &hash[..hash.len().min(12)])
    }

    /// The raw linear score of one feature vector.
    pub fn logit(&self, x: &[f64; FEATURES.len()]) -> f64 {
        self.columns.iter().zip(&self.model.weights).map(|(&c, w)| w * x[c]).sum::<f64>()
            + self.model.intercept
    }

    /// Scores the candidates of one incident.
    pub fn score(&self, candidates: &[Evidence]) -> Vec<Scored> {
        let rows: Vec<[f64; FEATURES.len()]> = candidates.iter().map(features).collect();
        let logits: Vec<f64> = rows.iter().map(|x| self.logit(x)).collect();
        let mut scored = self.calibrate(&logits);
        for (s, x) in scored.iter_mut().zip(&rows) {
            s.unfamiliar = self.is_unfamiliar(x);
        }
        scored
    }

    /// Whether a used feature of `x` lies outside its training range (widened by a tenth
    /// of the range, so the edge of the data is not strange).
    pub fn is_unfamiliar(&self, x: &[f64; FEATURES.len()]) -> bool {
        self.columns.iter().zip(&self.model.feature_ranges).any(|(&c, [lo, hi])| {
            let slack = (hi - lo) * 0.1 + 1e-9;
            x[c] < lo - slack || x[c] > hi + slack
        })
    }

    /// Normalizes one incident's logits (softmax) and calibrates the shares.
    pub fn calibrate(&self, logits: &[f64]) -> Vec<Scored> {
        shares(logits)
            .into_iter()
            .map(|share| {
                let Calibration::Platt { a, b } = self.model.calibration;
                let confidence = (100.0 * sigmoid(a * logit(share) + b)).min(self.model.max_confidence);
                Scored { share, confidence, unfamiliar: false }
            })
            .collect()
    }

    /// Whether a list whose confidences are `sorted` (descending) deserves the flag.
    pub fn is_low_confidence(&self, sorted: &[f64]) -> bool {
        let lc = &self.model.low_confidence;
        match sorted {
            [] => true,
            [top] => *top < lc.min_top,
            [top, second, ..] => *top < lc.min_top || top - second < lc.min_gap,
        }
    }
}

/// Softmax: shares within one incident.
pub fn shares(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|z| (z - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The logistic function.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// ln(p / (1 − p)), with p kept inside (0, 1).
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// A small model for tests: `weights` on the features `names`, identity calibration.
#[cfg(test)]
pub(crate) fn test_model(names: &[&str], weights: &[f64]) -> Model {
    Model {
        format_version: MODEL_FORMAT_VERSION,
        feature_names: names.iter().map(|s| s.to_string()).collect(),
        weights: weights.to_vec(),
        intercept: -1.0,
        calibration: Calibration::Platt { a: 1.0, b: 0.0 },
        low_confidence: LowConfidence::default(),
        provenance: Provenance { data_hash: "abcdef0123456789".into(), ..Provenance::default() },
        max_confidence: 100.0,
        feature_ranges: vec![],
    }
}

#[cfg(test)]
mod tests {
    use devloom_schemas::CandidateKind;

    use super::test_model as model;
    use super::*;

    #[test]
    fn confidence_stops_at_the_ceiling_and_unseen_features_are_unfamiliar() {
        let mut m = model(&["kind_deploy", "error_delta"], &[8.0, 1.0]);
        m.max_confidence = 97.5;
        m.feature_ranges = vec![[0.0, 1.0], [0.0, 0.5]];
        let scorer = Scorer::new(m).unwrap();
        let deploy = Evidence { error_delta: 0.3, ..Evidence::new(CandidateKind::Deploy, 0) };
        let strange = Evidence { error_delta: 0.9, ..Evidence::new(CandidateKind::Dependency, 0) };
        let scored = scorer.score(&[deploy, strange]);
        assert_eq!(scored[0].confidence, 97.5, "{scored:?}");
        assert!(!scored[0].unfamiliar);
        assert!(scored[1].unfamiliar, "error_delta 0.9 was never seen (0–0.5, plus a tenth)");
        let mut bad = model(&["kind_deploy"], &[1.0]);
        bad.feature_ranges = vec![[0.0, 1.0], [0.0, 1.0]];
        assert!(Scorer::new(bad).is_err());
    }

    #[test]
    fn shares_sum_to_one_and_identity_calibration_keeps_them() {
        let s = Scorer::new(model(&["kind_deploy"], &[2.0])).unwrap();
        let scored = s.calibrate(&[2.0, 0.0, 0.0]);
        let total: f64 = scored.iter().map(|c| c.share).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!(scored[0].share > scored[1].share && scored[1].share == scored[2].share);
        for c in &scored {
            assert!((c.confidence - 100.0 * c.share).abs() < 1e-6, "a=1, b=0 is the identity");
        }
        assert_eq!(s.id(), "model-abcdef012345");
    }

    #[test]
    fn bad_models_are_refused_with_the_reason() {
        let err = Scorer::new(model(&["kind_deploy", "moon_phase"], &[1.0, 1.0])).unwrap_err().to_string();
        assert!(err.contains("unknown feature \"moon_phase\""), "{err}");
        let err = Scorer::new(model(&["kind_deploy"], &[1.0, 2.0])).unwrap_err().to_string();
        assert!(err.contains("2 weights for 1 features"), "{err}");
    }

    #[test]
    fn low_confidence_when_the_top_is_low_or_the_top_two_are_close() {
        let s = Scorer::new(model(&["kind_deploy"], &[1.0])).unwrap();
        assert!(!s.is_low_confidence(&[85.0, 10.0]));
        assert!(s.is_low_confidence(&[45.0, 10.0]));
        assert!(s.is_low_confidence(&[60.0, 50.0]));
        assert!(s.is_low_confidence(&[]));
    }
}
