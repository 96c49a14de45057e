//! What `devloom demo` sums up after a run: a sink wrapper that remembers incidents,
//! versions, verdicts and the top candidate, and the summary it writes.

use std::collections::BTreeSet;
use std::io::{self, Write};

use devloom_schemas::{IncidentStatus, Verdict};

use crate::core::{Output, RunSummary, Sink};

/// Wraps a sink and remembers what a user would want summarized.
pub struct Recorder<S> {
    inner: S,
    /// Incidents seen.
    pub incidents: BTreeSet<String>,
    /// Versions published.
    pub versions: u64,
    /// Verdict of the last open version.
    pub last_open_verdict: Option<Verdict>,
    /// Whether any version said `spreading`.
    pub ever_spreading: bool,
    /// Candidate-list versions published.
    pub candidate_lists: u64,
    /// The top candidate of the last list, with its confidence.
    pub top_candidate: Option<String>,
    /// Remediation-plan versions published.
    pub remediation_plans: u64,
    /// The last rollout decision per service: `service version verdict`, in order.
    pub rollouts: Vec<String>,
}

impl<S> Recorder<S> {
    /// Records around `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            incidents: BTreeSet::new(),
            versions: 0,
            last_open_verdict: None,
            ever_spreading: false,
            candidate_lists: 0,
            top_candidate: None,
            remediation_plans: 0,
            rollouts: Vec::new(),
        }
    }
}

impl<S: Sink> Sink for Recorder<S> {
    fn publish(&mut self, output: &Output) -> io::Result<()> {
        match output {
            Output::Impact(map) => {
                self.incidents.insert(map.incident_id.clone());
                self.versions += 1;
                if map.status == IncidentStatus::Open {
                    self.last_open_verdict = Some(map.verdict);
                }
                self.ever_spreading |= map.verdict == Verdict::Spreading;
            }
            Output::Candidates(list) => {
                self.candidate_lists += 1;
                self.top_candidate =
                    list.candidates.first().map(|c| format!("{:.1} {}", c.confidence, c.summary));
            }
            Output::Remediation(_) => self.remediation_plans += 1,
            Output::Rollout(d) => self.rollouts.push(format!(
                "{} {} {} (event time {})",
                d.service,
                d.canary.version,
                d.verdict.as_str(),
                d.event_time
            )),
            Output::Postmortem(_) | Output::DeadLetter(_) => {}
        }
        self.inner.publish(output)
    }
}

/// Writes the end-of-run summary.
pub fn write_summary<S>(out: &mut dyn Write, recorder: &Recorder<S>, summary: &RunSummary) -> io::Result<()> {
    let e = &summary.engine;
    let spans_per_s = e.spans as f64 / summary.elapsed.as_secs_f64().max(1e-9);
    writeln!(out, "── summary")?;
    writeln!(
        out,
        "events: {} spans ({:.0}/s), {} alerts, {} deploys; {} calls paired, {} to virtual nodes; {} call aggregates; {} dead letters",
        e.spans,
        spans_per_s,
        e.alerts,
        e.deploys,
        summary.pairing.paired,
        summary.pairing.virtual_calls,
        e.call_aggregates,
        summary.dead_letters
    )?;
    let verdict = match (recorder.last_open_verdict, recorder.ever_spreading) {
        (None, _) => "none",
        (Some(_), true) => "spreading",
        (Some(_), false) => "contained",
    };
    writeln!(
        out,
        "impact maps: {} versions for {} incident(s); verdict: {verdict}",
        recorder.versions,
        recorder.incidents.len()
    )?;
    if let Some(top) = &recorder.top_candidate {
        writeln!(out, "root-cause candidates: {} versions; top: {top}", recorder.candidate_lists)?;
    }
    if recorder.remediation_plans > 0 {
        writeln!(out, "remediation plans: {} versions", recorder.remediation_plans)?;
    }
    if let Some(last) = recorder.rollouts.last() {
        writeln!(out, "rollout decisions: {}; last: {last}", recorder.rollouts.len())?;
    }
    match (summary.first_map_ms, summary.latency) {
        (Some(first), Some(l)) => writeln!(
            out,
            "alert → first map: {first:.2} ms; alert → map latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} maps)",
            l.p50_ms, l.p99_ms, l.max_ms, l.count
        )?,
        _ => writeln!(out, "no alert fired")?,
    }
    writeln!(out, "wall time: {:.2} s", summary.elapsed.as_secs_f64())
}
