//! Incidents: alerts that fire within a window on services connected within a few hops
//! are one incident. Ids are deterministic (a digest of the first alert's fingerprint
//! and start). An incident resolves when all its alerts have resolved, and goes stale
//! when none of its alerts fired or changed for `stale_after_ms` (so incidents whose
//! resolves never come do not pile up).

use std::collections::{BTreeMap, BTreeSet};

use devloom_schemas::ids::stable_digest;
use devloom_schemas::{Alert, AlertStatus, TimestampNs};
use serde::{Deserialize, Serialize};

use crate::operator::Operator;
use crate::service_graph::ServiceGraph;

/// Grouping settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentConfig {
    /// An alert joins an open incident whose last alert fired at most this long before,
    /// milliseconds.
    pub group_window_ms: u64,
    /// …and whose alerted services are within this many hops in the service graph.
    pub group_max_hops: u32,
    /// An incident none of whose alerts fired or changed for this long (event time,
    /// milliseconds) is closed as stale; 0: never. Longer than Alertmanager's default
    /// `repeat_interval` (4 h), so a firing alert keeps its incident open.
    pub stale_after_ms: u64,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        Self { group_window_ms: 5 * 60_000, group_max_hops: 2, stale_after_ms: 24 * 3_600_000 }
    }
}

/// What happened to an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateKind {
    /// First alert.
    Opened,
    /// Another alert joined, or an alert changed state without resolving the incident.
    Changed,
    /// All alerts resolved.
    Resolved,
    /// No alert fired or changed for `stale_after_ms`.
    Stale,
}

/// An incident changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentUpdate {
    /// Deterministic id.
    pub incident_id: String,
    /// What happened.
    pub kind: UpdateKind,
    /// Every service alerted in this incident, sorted.
    pub root_services: Vec<String>,
    /// Services with an alert still firing, sorted.
    pub firing_services: Vec<String>,
    /// Event time of the alert that caused the update.
    pub time_ns: TimestampNs,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct AlertEntry {
    service: String,
    active: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Incident {
    alerts: BTreeMap<String, AlertEntry>,
    last_alert_ns: TimestampNs,
}

impl Incident {
    fn update(&self, id: &str, kind: UpdateKind, time_ns: TimestampNs) -> IncidentUpdate {
        let mut roots: Vec<String> = self.alerts.values().map(|a| a.service.clone()).collect();
        roots.sort();
        roots.dedup();
        let mut firing: Vec<String> =
            self.alerts.values().filter(|a| a.active).map(|a| a.service.clone()).collect();
        firing.sort();
        firing.dedup();
        IncidentUpdate {
            incident_id: id.to_string(),
            kind,
            root_services: roots,
            firing_services: firing,
            time_ns,
        }
    }
}

/// Serializable state of an [`IncidentTracker`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentSnapshot {
    open: BTreeMap<String, Incident>,
    watermark_ns: TimestampNs,
}

/// The incident-grouping operator. Reads the service graph for distances.
#[derive(Debug, Default)]
pub struct IncidentTracker {
    config: IncidentConfig,
    open: BTreeMap<String, Incident>,
    watermark_ns: TimestampNs,
    /// Derived from `open` (rebuilt on restore): the incident holding each alert, and
    /// the incidents with an alert on each service, so an alert costs lookups, not a
    /// scan of every open incident.
    by_fingerprint: BTreeMap<String, String>,
    by_service: BTreeMap<String, BTreeSet<String>>,
    by_last_alert: BTreeSet<(TimestampNs, String)>,
}

impl IncidentTracker {
    /// A tracker with `config`.
    pub fn new(config: IncidentConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// Open incidents.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    fn index(&mut self, id: &str, fingerprint: &str, service: &str) {
        self.by_fingerprint.insert(fingerprint.to_string(), id.to_string());
        self.by_service.entry(service.to_string()).or_default().insert(id.to_string());
    }

    /// Sets the incident's last alert time, keeping the staleness index in step.
    fn touch(&mut self, id: &str, time: TimestampNs) {
        let Some(inc) = self.open.get_mut(id) else { return };
        self.by_last_alert.remove(&(inc.last_alert_ns, id.to_string()));
        inc.last_alert_ns = inc.last_alert_ns.max(time);
        self.by_last_alert.insert((inc.last_alert_ns, id.to_string()));
    }

    fn close(&mut self, id: &str) -> Option<Incident> {
        let inc = self.open.remove(id)?;
        self.by_last_alert.remove(&(inc.last_alert_ns, id.to_string()));
        for (fingerprint, alert) in &inc.alerts {
            self.by_fingerprint.remove(fingerprint);
            if let Some(ids) = self.by_service.get_mut(&alert.service) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_service.remove(&alert.service);
                }
            }
        }
        Some(inc)
    }

    /// The event time the stream has reached elsewhere (a graph stage's newest span
    /// time, less the allowed lateness): updates are stamped no earlier, as they are
    /// when that time comes through [`Operator::on_watermark`], but no timer fires.
    pub fn reached(&mut self, event_time: TimestampNs) {
        self.watermark_ns = self.watermark_ns.max(event_time);
    }
}

impl Operator for IncidentTracker {
    type In = Alert;
    type Out = IncidentUpdate;
    type Ctx = ServiceGraph;
    type Snapshot = IncidentSnapshot;

    fn on_event(&mut self, graph: &ServiceGraph, alert: &Alert, out: &mut Vec<IncidentUpdate>) {
        // Alertmanager's startsAt predates the notification (the rule's `for`): an update
        // happens no earlier than the event time already reached.
        let time = alert.event_time_ns().max(self.watermark_ns);
        if let Some(id) = self.by_fingerprint.get(&alert.fingerprint).cloned() {
            let inc = self.open.get_mut(&id).expect("indexed incidents are open");
            let entry = inc.alerts.get_mut(&alert.fingerprint).expect("found above");
            let was_active = entry.active;
            entry.active = alert.status.is_active();
            let changed = was_active != entry.active;
            let all_resolved = inc.alerts.values().all(|a| !a.active);
            if alert.status.is_active() {
                self.touch(&id, time);
            }
            if all_resolved {
                let inc = self.close(&id).expect("present");
                out.push(inc.update(&id, UpdateKind::Resolved, time));
            } else if changed {
                out.push(self.open[&id].update(&id, UpdateKind::Changed, time));
            }
            return;
        }
        if alert.status == AlertStatus::Resolved || alert.service.is_empty() {
            return; // A resolve for an alert we never saw firing: nothing to close.
        }
        let entry = AlertEntry { service: alert.service.clone(), active: true };
        let window = self.config.group_window_ms.saturating_mul(1_000_000);
        let nearby = graph.names_within(&alert.service, self.config.group_max_hops);
        // The incidents with an alert on a nearby service, in id order (the order a scan
        // of every open incident would find them in).
        let candidates: BTreeSet<&String> =
            nearby.iter().filter_map(|s| self.by_service.get(s)).flatten().collect();
        let joined = candidates
            .into_iter()
            .find(|id| time.saturating_sub(self.open[*id].last_alert_ns) <= window)
            .cloned();
        if let Some(id) = joined {
            let inc = self.open.get_mut(&id).expect("indexed incidents are open");
            inc.alerts.insert(alert.fingerprint.clone(), entry);
            self.touch(&id, time);
            out.push(self.open[&id].update(&id, UpdateKind::Changed, time));
            self.index(&id, &alert.fingerprint, &alert.service);
            return;
        }
        let id =
            format!("inc-{}", stable_digest([alert.fingerprint.as_str(), &alert.starts_at_ns.to_string()]));
        let inc =
            Incident { alerts: BTreeMap::from([(alert.fingerprint.clone(), entry)]), last_alert_ns: time };
        out.push(inc.update(&id, UpdateKind::Opened, time));
        self.index(&id, &alert.fingerprint, &alert.service);
        self.by_last_alert.insert((time, id.clone()));
        self.open.insert(id, inc);
    }

    fn on_watermark(&mut self, _: &ServiceGraph, event_time: TimestampNs, out: &mut Vec<IncidentUpdate>) {
        self.watermark_ns = self.watermark_ns.max(event_time);
        let stale_after = self.config.stale_after_ms.saturating_mul(1_000_000);
        if stale_after == 0 {
            return;
        }
        while let Some((last, id)) = self.by_last_alert.first().cloned() {
            if last.saturating_add(stale_after) > self.watermark_ns {
                break;
            }
            let inc = self.close(&id).expect("indexed incidents are open");
            out.push(inc.update(&id, UpdateKind::Stale, self.watermark_ns));
        }
    }

    fn snapshot(&self) -> IncidentSnapshot {
        IncidentSnapshot { open: self.open.clone(), watermark_ns: self.watermark_ns }
    }

    fn restore(&mut self, s: IncidentSnapshot) {
        self.open = s.open;
        self.watermark_ns = s.watermark_ns;
        self.by_fingerprint.clear();
        self.by_service.clear();
        let alerts: Vec<(String, String, String)> = self
            .open
            .iter()
            .flat_map(|(id, inc)| {
                inc.alerts.iter().map(|(fp, a)| (id.clone(), fp.clone(), a.service.clone()))
            })
            .collect();
        for (id, fingerprint, service) in alerts {
            self.index(&id, &fingerprint, &service);
        }
        self.by_last_alert = self.open.iter().map(|(id, inc)| (inc.last_alert_ns, id.clone())).collect();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use devloom_schemas::{AlertSource, Severity};

    use super::*;
    use crate::service_id::ServiceId;
    use crate::span_pairing::Observation;

    fn alert(fp: &str, service: &str, status: AlertStatus, at_s: u64) -> Alert {
        Alert {
            fingerprint: fp.into(),
            service: service.into(),
            severity: Severity::Critical,
            status,
            starts_at_ns: at_s * 1_000_000_000,
            ends_at_ns: (status == AlertStatus::Resolved).then_some(at_s * 1_000_000_000),
            labels: Default::default(),
            summary: String::new(),
            source: AlertSource::Devloom,
        }
    }

    fn graph() -> ServiceGraph {
        let mut g = ServiceGraph::default();
        let id = |n: &str| ServiceId::service(Arc::from(n), None);
        for (a, b) in [("frontend", "checkout"), ("checkout", "payments"), ("search", "index")] {
            let obs = Observation::Call {
                caller: id(a),
                callee: id(b),
                time_ns: 1,
                latency_ns: 1,
                server_ns: 1,
                failed: false,
                asynchronous: false,
            };
            g.observe(&obs);
        }
        g
    }

    fn feed(t: &mut IncidentTracker, g: &ServiceGraph, alerts: &[Alert]) -> Vec<IncidentUpdate> {
        let mut out = Vec::new();
        for a in alerts {
            t.on_event(g, a, &mut out);
        }
        out
    }

    #[test]
    fn groups_by_window_and_distance_resolves_when_all_resolve() {
        let g = graph();
        let mut t = IncidentTracker::default();
        let out = feed(
            &mut t,
            &g,
            &[
                alert("a", "payments", AlertStatus::Firing, 100),
                alert("b", "frontend", AlertStatus::Firing, 160), // 2 hops: joins
                alert("c", "search", AlertStatus::Firing, 170),   // unconnected: new incident
                alert("d", "checkout", AlertStatus::Firing, 1000), // outside the window: new
                alert("a", "payments", AlertStatus::Resolved, 1100),
                alert("b", "", AlertStatus::Resolved, 1200), // PagerDuty-style resolve, no service
            ],
        );
        let ids: Vec<&str> = out.iter().map(|u| u.incident_id.as_str()).collect();
        assert_eq!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2]);
        assert_ne!(ids[0], ids[3]);
        assert_eq!(out[1].root_services, vec!["frontend", "payments"]);
        assert_eq!(out[4].kind, UpdateKind::Changed);
        assert_eq!(out[4].firing_services, vec!["frontend"]);
        assert_eq!(out[5].kind, UpdateKind::Resolved);
        assert_eq!(out[5].incident_id, ids[0]);
        assert_eq!(t.open_count(), 2);
        assert!(ids[0].starts_with("inc-") && ids[0].len() == 20);
    }

    #[test]
    fn snapshot_restore_round_trip_and_determinism() {
        let g = graph();
        let alerts = [
            alert("a", "payments", AlertStatus::Firing, 100),
            alert("b", "frontend", AlertStatus::Firing, 160),
            alert("a", "payments", AlertStatus::Resolved, 200),
            alert("b", "frontend", AlertStatus::Resolved, 300),
        ];
        let mut whole = IncidentTracker::default();
        let expected = feed(&mut whole, &g, &alerts);
        let mut first = IncidentTracker::default();
        let mut got = feed(&mut first, &g, &alerts[..2]);
        let json = serde_json::to_string(&first.snapshot()).unwrap();
        let mut second = IncidentTracker::default();
        second.restore(serde_json::from_str(&json).unwrap());
        got.extend(feed(&mut second, &g, &alerts[2..]));
        assert_eq!(got, expected);
        assert_eq!(feed(&mut IncidentTracker::default(), &g, &alerts), expected);
    }

    #[test]
    fn an_incident_whose_alerts_fall_silent_goes_stale() {
        let g = graph();
        let config = IncidentConfig { stale_after_ms: 3_600_000, ..IncidentConfig::default() };
        let mut t = IncidentTracker::new(config);
        let hour = 3_600_000_000_000u64;
        let mut out = feed(&mut t, &g, &[alert("a", "payments", AlertStatus::Firing, 100)]);
        // Re-notified within the hour: still open an hour after the first notification.
        out.extend(feed(&mut t, &g, &[alert("a", "payments", AlertStatus::Firing, 100 + 3000)]));
        t.on_watermark(&g, 100 * 1_000_000_000 + hour + 1, &mut out);
        assert_eq!(t.open_count(), 1, "{out:?}");
        t.on_watermark(&g, 3100 * 1_000_000_000 + hour, &mut out);
        assert_eq!(out.last().map(|u| u.kind), Some(UpdateKind::Stale));
        assert_eq!(t.open_count(), 0);
        // Its alert firing again later opens a new incident.
        let again = feed(&mut t, &g, &[alert("a", "payments", AlertStatus::Firing, 9000)]);
        assert_eq!(again[0].kind, UpdateKind::Opened);
    }
}
