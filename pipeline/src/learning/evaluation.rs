//! `devloom evaluate`: a model's metrics on held-out incidents with bootstrap intervals,
//! side by side with the same model trained without time features, on all incidents
//! and on the overnight scheduled-job ones; per-feature weights; a reliability diagram.

use std::fmt::Write as _;

use devloom_operators::scorer::{Metrics, Model, Scorer};
use devloom_schemas::CandidateKind;

use crate::learning::training::{
    Bin, FeatureSet, Prediction, Sample, TrainError, metrics, predict, split, train,
};

/// One model's results.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    /// On every evaluated incident.
    pub metrics: Metrics,
    /// Reliability bins.
    pub bins: [Bin; 10],
    /// On the overnight (00:00–06:00 UTC) scheduled-job incidents.
    pub overnight: Overnight,
}

/// Results on the overnight scheduled-job incidents.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Overnight {
    /// Incidents.
    pub incidents: u64,
    /// Fraction whose cause was ranked first.
    pub ac_at_1: f64,
    /// Fraction ranked wrong with a top confidence of 50 or more.
    pub confidently_wrong: f64,
    /// Mean top confidence on the ones ranked wrong.
    pub wrong_confidence: f64,
}

/// What `devloom evaluate` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Incidents evaluated (the test split of the history).
    pub incidents: usize,
    /// Whether the history is the model's own training history (then the test split
    /// is held out from training and calibration).
    pub same_history: bool,
    /// The model.
    pub full: Scores,
    /// The same training without time features.
    pub without_time: Scores,
    /// The model's weights, largest magnitude first.
    pub weights: Vec<(String, f64)>,
}

/// Evaluates `model` on the test split of `samples` (split with the model's seed), and
/// trains the ablation on the same split.
pub fn evaluate(model: &Model, samples: &[Sample]) -> Result<Evaluation, TrainError> {
    let seed = model.provenance.seed;
    let test: Vec<&Sample> = split(samples, seed)[2].iter().map(|&i| &samples[i]).collect();
    let scorer = Scorer::new(model.clone()).map_err(|e| TrainError::Fit(e.to_string()))?;
    let ablation = Scorer::new(train(samples, seed, FeatureSet::WithoutTime)?)
        .map_err(|e| TrainError::Fit(e.to_string()))?;
    let mut weights: Vec<(String, f64)> =
        model.feature_names.iter().cloned().zip(model.weights.iter().copied()).collect();
    weights.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then_with(|| a.0.cmp(&b.0)));
    Ok(Evaluation {
        incidents: test.len(),
        same_history: {
            let hash = crate::learning::training::data_hash(samples);
            model.provenance.data_hash == hash || model.provenance.history_hash.as_ref() == Some(&hash)
        },
        full: scores(&scorer, &test, seed),
        without_time: scores(&ablation, &test, seed),
        weights,
    })
}

fn scores(scorer: &Scorer, test: &[&Sample], seed: u64) -> Scores {
    let predictions = predict(scorer, test);
    let (metrics, bins) = metrics(&predictions, seed);
    let overnight: Vec<&Prediction> = test
        .iter()
        .zip(&predictions)
        .filter(|(s, _)| {
            (s.onset_ns / 3_600_000_000_000) % 24 < 6
                && s.label.is_some_and(|l| s.kinds[l] == CandidateKind::ScheduledJob)
        })
        .map(|(_, p)| p)
        .collect();
    let n = overnight.len().max(1) as f64;
    let wrong: Vec<f64> =
        overnight.iter().filter(|p| !p.hit_at(1)).map(|p| p.confidences[p.ranking()[0]]).collect();
    Scores {
        metrics,
        bins,
        overnight: Overnight {
            incidents: overnight.len() as u64,
            ac_at_1: overnight.iter().filter(|p| p.hit_at(1)).count() as f64 / n,
            confidently_wrong: wrong.iter().filter(|c| **c >= 50.0).count() as f64 / n,
            wrong_confidence: if wrong.is_empty() {
                0.0
            } else {
                wrong.iter().sum::<f64>() / wrong.len() as f64
            },
        },
    }
}

/// The text report.
pub fn report(e: &Evaluation) -> String {
    let mut out = String::new();
    let scope = if e.same_history {
        "held-out test split of its training history (not used for fitting or calibration)"
    } else {
        "test split of a history the model was not trained on"
    };
    let _ = writeln!(out, "{} incidents: {scope}\n", e.incidents);
    let _ = writeln!(out, "{:<28}{:<28}without time features", "", "model");
    let row = |name: &str, f: fn(&Metrics) -> devloom_operators::scorer::Interval| {
        let (a, b) = (f(&e.full.metrics), f(&e.without_time.metrics));
        let interval =
            |i: devloom_operators::scorer::Interval| format!("{:.3} [{:.3}, {:.3}]", i.value, i.low, i.high);
        format!("{name:<28}{:<28}{}", interval(a), interval(b))
    };
    let _ = writeln!(out, "{}", row("AC@1", |m| m.ac_at_1));
    let _ = writeln!(out, "{}", row("AC@3", |m| m.ac_at_3));
    let _ = writeln!(out, "{}", row("Brier", |m| m.brier));
    let _ = writeln!(out, "{}", row("ECE (10 bins)", |m| m.ece));
    let (f, w) = (&e.full.overnight, &e.without_time.overnight);
    let _ = writeln!(out, "\novernight scheduled-job incidents ({}):", f.incidents);
    let _ = writeln!(out, "{:<28}{:<28.3}{:.3}", "AC@1", f.ac_at_1, w.ac_at_1);
    let _ = writeln!(
        out,
        "{:<28}{:<28.3}{:.3}",
        "wrong with confidence ≥ 50", f.confidently_wrong, w.confidently_wrong
    );
    let _ =
        writeln!(out, "{:<28}{:<28.1}{:.1}", "confidence when wrong", f.wrong_confidence, w.wrong_confidence);
    let _ = writeln!(out, "\nweights (largest first):");
    for (name, weight) in &e.weights {
        let _ = writeln!(out, "  {name:<24}{weight:>+8.3}");
    }
    out
}

/// A reliability diagram (observed frequency against confidence, per bin) of both
/// models, as SVG.
pub fn reliability_svg(e: &Evaluation) -> String {
    let (size, pad) = (400.0, 50.0);
    let x = |v: f64| pad + v * size;
    let y = |v: f64| pad + (1.0 - v) * size;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{w}" viewBox="0 0 {w} {w}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{cx}" y="24" text-anchor="middle" font-size="14">Reliability ({n} held-out incidents)</text>
<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#999"/>
<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#999" stroke-dasharray="4 4"/>
<text x="{cx}" y="{bottom}" text-anchor="middle">confidence</text>
<text x="14" y="{cx}" text-anchor="middle" transform="rotate(-90 14 {cx})">observed frequency of the cause</text>
"##,
        w = size + 2.0 * pad,
        cx = pad + size / 2.0,
        n = e.incidents,
        x0 = x(0.0),
        y0 = y(0.0),
        x1 = x(1.0),
        y1 = y(1.0),
        bottom = size + 2.0 * pad - 12.0,
    );
    for tick in 0..=10 {
        let v = f64::from(tick) / 10.0;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="10">{v:.1}</text>"#,
            x(v),
            y(0.0) + 14.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end" font-size="10">{v:.1}</text>"#,
            x(0.0) - 4.0,
            y(v) + 3.0
        );
    }
    for (scores, color, label, offset) in
        [(&e.full, "#1f77b4", "model", 0.0), (&e.without_time, "#d62728", "without time features", 18.0)]
    {
        let points: Vec<String> = scores
            .bins
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| format!("{:.1},{:.1}", x(b.confidence), y(b.observed)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            points.join(" ")
        );
        for b in scores.bins.iter().filter(|b| b.count > 0) {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="{:.1}" fill="{color}"><title>{} candidates, confidence {:.3}, observed {:.3}</title></circle>"#,
                x(b.confidence),
                y(b.observed),
                2.0 + (b.count as f64).log10(),
                b.count,
                b.confidence,
                b.observed
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" fill="{color}">● {label}: ECE {:.3}</text>"#,
            x(0.05),
            y(0.95) + offset,
            scores.metrics.ece.value
        );
    }
    svg.push_str("</svg>\n");
    svg
}
