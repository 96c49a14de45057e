//! What the HTTP API answers from: the outputs published so far (kept per incident,
//! bounded), the stream's replay buffer, the graph view and the pipeline's progress. The
//! pipeline writes it through [`ApiTap`] and [`ApiWatcher`]; handlers only read it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use devloom_operators::Engine;
use devloom_schemas::CatalogReport;
use devloom_schemas::{
    CandidateList, Deploy, Event, HealthState, ImpactMap, IncidentStatus, PostmortemDraft, RemediationPlan,
    RolloutDecision, RolloutVerdict, TimestampNs,
};
use tokio::sync::broadcast;

use super::HttpConfig;
use super::views::{
    GraphView, IncidentDetail, IncidentHistory, IncidentSummary, Probe, RolloutList, RolloutStatus,
    TopCandidate, Versions,
};
use crate::core::{Output, Progress, Sink, Watcher};
use crate::gate::{self, GateConfig, GateDecision, GateFacts};
use crate::telemetry::kind_label;

/// One output as the stream sends it: its id (1, 2, … in publish order), its kind as
/// the SSE event name, and its JSON document.
#[derive(Debug)]
pub struct StreamEvent {
    /// The SSE `id`.
    pub id: u64,
    /// The SSE `event`: impact, candidates, remediation, postmortem or deadletter.
    pub event: &'static str,
    /// The SSE `data`: the output's JSON, as the other sinks write it.
    pub data: String,
}

#[derive(Default)]
struct Incident {
    impact: VecDeque<ImpactMap>,
    candidates: VecDeque<CandidateList>,
    remediation: VecDeque<RemediationPlan>,
    postmortem: VecDeque<PostmortemDraft>,
    dropped: u64,
    updated_at: Option<String>,
    touched: u64,
}

impl Incident {
    fn open(&self) -> bool {
        self.impact.back().is_some_and(|m| m.status == IncidentStatus::Open)
    }
}

/// Appends `item`, dropping the oldest beyond `max`; returns how many were dropped.
fn keep<T>(versions: &mut VecDeque<T>, item: T, max: usize) -> u64 {
    versions.push_back(item);
    let over = versions.len().saturating_sub(max.max(1));
    versions.drain(..over);
    over as u64
}

/// Recent changes the gate remembers (for failed deploys).
const MAX_CHANGES: usize = 1024;

#[derive(Default)]
struct Store {
    incidents: HashMap<String, Incident>,
    /// The latest decision per (service, environment).
    rollouts: BTreeMap<(String, Option<String>), RolloutDecision>,
    changes: VecDeque<Deploy>,
    log: VecDeque<Arc<StreamEvent>>,
    next_id: u64,
    clock: u64,
}

/// The API's state, shared by the pipeline thread and the server.
pub struct ApiState {
    config: HttpConfig,
    gate: GateConfig,
    watermark_ns: Mutex<TimestampNs>,
    store: Mutex<Store>,
    graph: RwLock<Arc<GraphView>>,
    catalog: RwLock<Arc<CatalogReport>>,
    progress: Mutex<Option<Progress>>,
    checkpoint_max_age: Mutex<Option<Duration>>,
    events: broadcast::Sender<Arc<StreamEvent>>,
}

impl ApiState {
    /// Empty, with the bounds of `config` and the gate's settings.
    pub fn new(config: HttpConfig, gate: GateConfig) -> Self {
        let (events, _) = broadcast::channel(config.stream_buffer.max(1));
        Self {
            config,
            gate,
            watermark_ns: Mutex::default(),
            store: Mutex::default(),
            graph: RwLock::default(),
            catalog: RwLock::default(),
            progress: Mutex::default(),
            checkpoint_max_age: Mutex::default(),
            events,
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Kafka runtime checkpoints: ready only while its last checkpoint is younger
    /// than `max_age`.
    pub fn require_checkpoints(&self, max_age: Duration) {
        *self.checkpoint_max_age.lock().unwrap_or_else(PoisonError::into_inner) = Some(max_age);
    }

    fn record(&self, output: &Output) -> io::Result<()> {
        let data =
            String::from_utf8(output.to_json().map_err(io::Error::other)?).map_err(io::Error::other)?;
        let mut store = self.store();
        store.next_id += 1;
        store.clock += 1;
        let event = Arc::new(StreamEvent { id: store.next_id, event: kind_label(output.kind()), data });
        store.log.push_back(event.clone());
        let over = store.log.len().saturating_sub(self.config.stream_buffer.max(1));
        store.log.drain(..over);
        if let Output::Rollout(d) = output {
            store.rollouts.insert((d.service.clone(), d.environment.clone()), (**d).clone());
            while store.rollouts.len() > self.config.max_incidents.max(1) {
                let oldest =
                    store.rollouts.iter().min_by_key(|(_, d)| d.event_time_ns).map(|(k, _)| k.clone());
                if let Some(key) = oldest {
                    store.rollouts.remove(&key);
                }
            }
        }
        if let Some((id, _)) = output.incident_version() {
            let (clock, max) = (store.clock, self.config.max_versions);
            let incident = store.incidents.entry(id.to_string()).or_default();
            incident.touched = clock;
            incident.updated_at = output.published_at().map(str::to_string);
            incident.dropped += match output {
                Output::Impact(m) => keep(&mut incident.impact, m.clone(), max),
                Output::Candidates(l) => keep(&mut incident.candidates, l.clone(), max),
                Output::Remediation(p) => keep(&mut incident.remediation, p.clone(), max),
                Output::Postmortem(d) => keep(&mut incident.postmortem, (**d).clone(), max),
                Output::Rollout(_) | Output::DeadLetter(_) => 0,
            };
            self.evict(&mut store);
        }
        // Sent under the lock, so a subscriber that read the log under it misses nothing
        // and sees nothing twice. No receiver is not an error.
        let _ = self.events.send(event);
        Ok(())
    }

    /// Drops the least recently updated incidents beyond `max_incidents`, closed ones first.
    fn evict(&self, store: &mut Store) {
        while store.incidents.len() > self.config.max_incidents.max(1) {
            let victim =
                store.incidents.iter().min_by_key(|(_, i)| (i.open(), i.touched)).map(|(id, _)| id.clone());
            match victim {
                Some(id) => store.incidents.remove(&id),
                None => break,
            };
        }
    }

    /// Open incidents first, then the most recently updated.
    pub fn incidents(&self) -> Vec<IncidentSummary> {
        let store = self.store();
        let mut all: Vec<(&String, &Incident)> =
            store.incidents.iter().filter(|(_, i)| !i.impact.is_empty()).collect();
        all.sort_by_key(|(_, i)| (!i.open(), std::cmp::Reverse(i.touched)));
        all.into_iter()
            .filter_map(|(id, i)| {
                let map = i.impact.back()?;
                let count = |s: HealthState| map.nodes.iter().filter(|n| n.state == s).count() as u32;
                let top = i.candidates.back().and_then(|l| l.candidates.first());
                Some(IncidentSummary {
                    incident_id: id.clone(),
                    status: map.status,
                    verdict: map.verdict,
                    root_services: map.root_services.clone(),
                    red: count(HealthState::Red),
                    amber: count(HealthState::Amber),
                    top_candidate: top
                        .map(|c| TopCandidate { service: c.service.clone(), confidence: c.confidence }),
                    versions: Versions {
                        impact: i.impact.back().map(|m| m.version),
                        candidates: i.candidates.back().map(|l| l.version),
                        remediation: i.remediation.back().map(|p| p.version),
                        postmortem: i.postmortem.back().map(|d| d.version),
                    },
                    updated_at: i.updated_at.clone(),
                })
            })
            .collect()
    }

    /// The latest of every output of incident `id`.
    pub fn incident(&self, id: &str) -> Option<IncidentDetail> {
        let store = self.store();
        let i = store.incidents.get(id)?;
        Some(IncidentDetail {
            incident_id: id.to_string(),
            impact: i.impact.back().cloned(),
            candidates: i.candidates.back().cloned(),
            remediation: i.remediation.back().cloned(),
            postmortem: i.postmortem.back().cloned().map(Box::new),
        })
    }

    /// Every version kept of incident `id`.
    pub fn history(&self, id: &str) -> Option<IncidentHistory> {
        let store = self.store();
        let i = store.incidents.get(id)?;
        Some(IncidentHistory {
            incident_id: id.to_string(),
            impact: i.impact.iter().cloned().collect(),
            candidates: i.candidates.iter().cloned().collect(),
            remediation: i.remediation.iter().cloned().collect(),
            postmortem: i.postmortem.iter().cloned().collect(),
            dropped: i.dropped,
        })
    }

    /// Incidents whose latest map shows `service`.
    pub fn incidents_showing(&self, service: &str) -> Vec<String> {
        let store = self.store();
        let mut ids: Vec<String> = store
            .incidents
            .iter()
            .filter(|(_, i)| i.impact.back().is_some_and(|m| m.nodes.iter().any(|n| n.service == service)))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The latest rollout decision of every (service, environment), by service.
    pub fn rollouts(&self) -> RolloutList {
        RolloutList { rollouts: self.store().rollouts.values().cloned().collect() }
    }

    /// The rollout of `service` (every environment, or only `environment`): its latest
    /// decisions and the worst verdict over them; `None` when none was ever made.
    pub fn rollout(&self, service: &str, environment: Option<&str>) -> Option<RolloutStatus> {
        let store = self.store();
        let decisions: Vec<RolloutDecision> = store
            .rollouts
            .iter()
            .filter(|((s, e), _)| s == service && environment.is_none_or(|want| e.as_deref() == Some(want)))
            .map(|(_, d)| d.clone())
            .collect();
        let verdict = decisions.iter().map(|d| d.verdict).max_by_key(|v| match v {
            RolloutVerdict::Halt => 2,
            RolloutVerdict::Inconclusive => 1,
            RolloutVerdict::Continue => 0,
        })?;
        Some(RolloutStatus {
            service: service.to_string(),
            verdict,
            ok: verdict != RolloutVerdict::Halt,
            decisions,
        })
    }

    /// The gate's decision for `service` (and `revision`) on what is known now.
    pub fn gate(&self, service: &str, revision: Option<&str>) -> GateDecision {
        let graph = self.graph();
        let (open_maps, changes, rollouts) = {
            let store = self.store();
            let open: Vec<ImpactMap> = store
                .incidents
                .values()
                .filter(|i| i.open())
                .filter_map(|i| i.impact.back().cloned())
                .collect();
            let rollouts: Vec<RolloutDecision> = store.rollouts.values().cloned().collect();
            (open, store.changes.clone(), rollouts)
        };
        let now_ns = *self.watermark_ns.lock().unwrap_or_else(PoisonError::into_inner);
        let facts = GateFacts {
            graph: &graph,
            open_maps: &open_maps,
            changes: &changes,
            rollouts: &rollouts,
            now_ns,
        };
        gate::decide(&facts, &self.gate, service, revision)
    }

    /// `[gate]`.
    pub fn gate_config(&self) -> &GateConfig {
        &self.gate
    }

    /// The catalog held against the graph, as of the last look.
    pub fn catalog(&self) -> Arc<CatalogReport> {
        self.catalog.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The graph as of the last look.
    pub fn graph(&self) -> Arc<GraphView> {
        self.graph.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Stream events after `last_id` still in the buffer, and a receiver for the ones
    /// after them; `Err(oldest)` when events after `last_id` were already dropped from
    /// the buffer (`oldest` is the first one still there).
    pub fn subscribe(
        &self,
        last_id: Option<u64>,
    ) -> (Vec<Arc<StreamEvent>>, Option<u64>, broadcast::Receiver<Arc<StreamEvent>>) {
        let store = self.store();
        let receiver = self.events.subscribe();
        let Some(last) = last_id else {
            return (Vec::new(), None, receiver);
        };
        let backlog: Vec<Arc<StreamEvent>> = store.log.iter().filter(|e| e.id > last).cloned().collect();
        let gap = store.log.front().filter(|first| first.id > last + 1).map(|first| first.id);
        (backlog, gap, receiver)
    }

    /// `/healthz`: the process answers.
    pub fn health(&self) -> Probe {
        let progress = *self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        Probe {
            ok: true,
            reasons: Vec::new(),
            records: progress.map_or(0, |p| p.records),
            caught_up_ms_ago: progress.and_then(|p| p.caught_up_at).map(ms_ago),
            checkpoint_ms_ago: progress.and_then(|p| p.committed_at).map(ms_ago),
            stream_clients: self.events.receiver_count() as u64,
        }
    }

    /// `/readyz`: caught up with the input within `[http] ready_max_lag_ms` (or at its
    /// end), and, where the runtime checkpoints, nothing read longer ago than the
    /// checkpoint's allowance still waiting for one (an idle pipeline has nothing to
    /// checkpoint and stays ready).
    pub fn readiness(&self) -> Probe {
        let mut probe = self.health();
        let progress = *self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        let max_lag = self.config.ready_max_lag_ms;
        match progress {
            None => probe.reasons.push("the pipeline has not started".into()),
            Some(p) if p.ended => {}
            Some(_) => match probe.caught_up_ms_ago {
                None => probe.reasons.push("still reading the input's backlog".into()),
                Some(ms) if ms > max_lag => probe
                    .reasons
                    .push(format!("input not drained for {ms} ms (over http.ready_max_lag_ms = {max_lag})")),
                Some(_) => {}
            },
        }
        if let Some(max_age) = *self.checkpoint_max_age.lock().unwrap_or_else(PoisonError::into_inner) {
            let max_ms = max_age.as_millis() as u64;
            if let Some(ms) = progress.and_then(|p| p.uncommitted_since).map(ms_ago).filter(|ms| *ms > max_ms)
            {
                probe
                    .reasons
                    .push(format!("input read {ms} ms ago is not checkpointed yet (allowed: {max_ms} ms)"));
            }
        }
        probe.ok = probe.reasons.is_empty();
        probe
    }
}

fn ms_ago(at: Instant) -> u64 {
    at.elapsed().as_millis() as u64
}

/// Keeps every output in the API's state and sends it to the stream.
pub struct ApiTap(pub Arc<ApiState>);

impl Sink for ApiTap {
    /// Remembers changes, for the gate's failed-deploy check.
    fn input(&mut self, event: &Event) -> io::Result<()> {
        if let Event::Deploy(d) = event {
            let mut store = self.0.store();
            store.changes.push_back(d.clone());
            if store.changes.len() > MAX_CHANGES {
                store.changes.pop_front();
            }
        }
        Ok(())
    }

    fn publish(&mut self, output: &Output) -> io::Result<()> {
        self.0.record(output)
    }
}

/// Refreshes the API's graph view and progress.
pub struct ApiWatcher(pub Arc<ApiState>);

impl Watcher for ApiWatcher {
    fn interval(&self) -> Duration {
        Duration::from_millis(self.0.config.refresh_ms)
    }

    fn watch(&mut self, engine: &Engine, progress: &Progress) {
        let view = Arc::new(GraphView::of(engine));
        *self.0.graph.write().unwrap_or_else(PoisonError::into_inner) = view;
        *self.0.catalog.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(engine.catalog_report());
        *self.0.watermark_ns.lock().unwrap_or_else(PoisonError::into_inner) = engine.watermark_ns();
        *self.0.progress.lock().unwrap_or_else(PoisonError::into_inner) = Some(*progress);
    }
}
