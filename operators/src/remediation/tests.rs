//! The planner on the change events real producers send: Devloom deploy JSON with a
//! Kubernetes bundle, an Argo CD `Application` with two history entries, a TOML config
//! change, a GitHub deployment, a change without its previous spec, a rollback.

use devloom_schemas::codec::{DecodeOptions, Expect, Message, decode};
use devloom_schemas::{
    Candidate, CandidateKind, CandidateList, Deploy, Event, IncidentStatus, LineTag, Remediation,
    RemediationAction, SpecFormat,
};
use serde_json::json;

use super::*;
use crate::candidates::{CandidateInput, CandidateScorer, CandidatesConfig};
use crate::scorer::{Scorer, test_model};

/// Decodes one payload the way the pipeline does (redaction included).
fn change(payload: &str) -> Deploy {
    let mut out = Vec::new();
    decode(&Message::bytes(payload.as_bytes()), Expect::Deploys, &DecodeOptions::default(), &mut out)
        .unwrap();
    match out.pop() {
        Some(Event::Deploy(d)) => d,
        other => panic!("not a deploy: {other:?}"),
    }
}

fn candidate(key: &str, confidence: f64) -> Candidate {
    let kind =
        if key.starts_with("config_change:") { CandidateKind::ConfigChange } else { CandidateKind::Deploy };
    Candidate {
        key: key.into(),
        kind,
        service: key.split([':', '@']).nth(1).unwrap_or_default().into(),
        summary: String::new(),
        confidence,
        share: 0.0,
        unfamiliar: None,
        features: Default::default(),
    }
}

fn plan_of(d: &Deploy) -> Remediation {
    let prefix = match d.kind {
        ChangeKind::ConfigChange => "config_change",
        _ => "deploy",
    };
    plan(
        &RemediationConfig::default(),
        1,
        &candidate(&format!("{prefix}:{}@{}", d.service, d.revision), 80.0),
        d,
    )
}

fn bundle(image: &str, revision: u32, limit: &str, password: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: payments\n  namespace: prod\n  annotations:\n    deployment.kubernetes.io/revision: \"{revision}\"\nspec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n      - name: payments\n        image: registry/payments:{image}\n        env:\n        - name: LIMIT\n          valueFrom:\n            configMapKeyRef: {{name: payments-config, key: limit}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: payments-config\n  namespace: prod\ndata:\n  limit: \"{limit}\"\n  mode: fast\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: payments-db\n  namespace: prod\ntype: Opaque\nstringData:\n  password: {password}\n"
    )
}

fn devloom_deploy(before: Option<String>, after: Option<String>, extra: serde_json::Value) -> String {
    let mut v = json!({
        "service": "payments", "revision": "v42", "previous_revision": "v41",
        "time": "2026-11-27T08:58:00Z", "kind": "deploy", "author": "ana",
        "spec_before": before, "spec_after": after,
    });
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v.to_string()
}

#[test]
fn a_kubectl_rollback_restores_the_pod_template_and_names_what_it_leaves() {
    let d = change(&devloom_deploy(
        Some(bundle("v41", 41, "10", "old-s3cret")),
        Some(bundle("v42", 42, "20", "n3w-s3cret")),
        json!({"tool": "kubectl"}),
    ));
    let r = plan_of(&d);
    assert_eq!(r.action, RemediationAction::Rollback);
    assert_eq!(r.summary, "Roll back payments from v42 to v41");
    assert_eq!(r.commands, ["kubectl rollout undo deployment/payments --namespace prod --to-revision=41"]);
    assert_eq!(r.files.len(), 1, "only the pod template is reverted: {:?}", r.files);
    let template = &r.files[0];
    assert_eq!(template.path, "Deployment/payments spec.template");
    assert_eq!(template.format, SpecFormat::Kubernetes);
    assert_eq!(
        template.keys.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["spec.template.spec.containers[payments].image: registry/payments:v42 → registry/payments:v41"]
    );
    let removed: Vec<&str> =
        template.hunks[0].lines.iter().filter(|l| l.tag == LineTag::Removed).map(|l| l.text.trim()).collect();
    assert_eq!(removed, ["image: registry/payments:v42"]);
    assert!(
        template.unified.contains("-    image: registry/payments:v42\n+    image: registry/payments:v41\n")
    );
    let notes: Vec<&str> = r.not_reverted.iter().map(|o| o.note.as_str()).collect();
    assert_eq!(
        notes,
        [
            "ConfigMap payments-config changed in this deploy (1 key) and will NOT be reverted by the rollback",
            "Secret payments-db changed in this deploy (1 key) and will NOT be reverted by the rollback",
        ]
    );
    assert_eq!(r.not_reverted[0].keys[0].to_string(), "data.limit: 20 → 10");
    let secret = r.not_reverted[1].keys[0].to_string();
    assert!(secret.starts_with("stringData.password: sha256:") && secret.contains(" → sha256:"), "{secret}");
    let all = serde_json::to_string(&r).unwrap();
    assert!(!all.contains("s3cret"), "a Secret value leaked: {all}");
    assert!(r.gaps.is_empty() && r.warnings.is_empty(), "{r:?}");
}

#[test]
fn an_argocd_rollback_names_the_history_id_and_diffs_the_recorded_sources() {
    let app = include_str!("../../../schemas/fixtures/argocd_application.json");
    let r = plan_of(&change(app));
    assert_eq!(r.commands, ["argocd app rollback payments-prod 11"]);
    assert_eq!(r.change.revision, "9f1c2ab");
    assert_eq!(r.target_revision.as_deref(), Some("77aa01c"));
    let file = &r.files[0];
    assert_eq!((file.path.as_str(), file.format), ("Application/payments-prod source", SpecFormat::Yaml));
    assert_eq!(
        file.keys.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["helm.parameters[image.tag].value: v42 → v41"]
    );
    assert!(file.unified.contains("-    value: v42\n+    value: v41\n"), "{}", file.unified);
    assert!(r.warnings[0].contains("automated sync"), "{:?}", r.warnings);

    // History keeps each sync's source, Helm values included: their change is the diff.
    let entry = |id: i64, rev: &str, tag: &str, replicas: u32| {
        json!({"id": id, "revision": rev, "deployedAt": format!("2026-11-27T08:5{id}:00Z"),
               "source": {"repoURL": "https://git.internal/charts.git", "chart": "payments", "targetRevision": "1.4.0",
                          "helm": {"valuesObject": {"image": {"tag": tag}, "replicaCount": replicas}}}})
    };
    let app = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "payments-prod"},
        "spec": {"destination": {"namespace": "production"}},
        "status": {"history": [entry(3, "1.4.0", "v41", 3), entry(4, "1.4.0", "v42", 5)]},
    });
    let r = plan_of(&change(&app.to_string()));
    assert_eq!(r.action, RemediationAction::RevertConfig, "same chart revision, new values");
    assert_eq!(r.commands, ["argocd app rollback payments-prod 3"]);
    let keys: Vec<String> = r.files[0].keys.iter().map(ToString::to_string).collect();
    assert_eq!(keys, ["helm.valuesObject.image.tag: v42 → v41", "helm.valuesObject.replicaCount: 5 → 3"]);
}

#[test]
fn a_toml_config_change_is_reverted_file_by_file_with_a_key_summary() {
    let before = "[pool]\nsize = 10\ntimeout_ms = 2000\n\n[features]\nasync_capture = false\n";
    let after = "[pool]\nsize = 4\ntimeout_ms = 2000\n\n[features]\nasync_capture = true\nfast_path = true\n";
    let d = change(&devloom_deploy(
        Some(before.into()),
        Some(after.into()),
        json!({"kind": "config_change", "revision": "cfg-8", "previous_revision": "cfg-7", "spec_path": "payments/app.toml"}),
    ));
    let r = plan_of(&d);
    assert_eq!(r.action, RemediationAction::RevertConfig);
    assert_eq!(r.summary, "Revert the config change of payments (cfg-8 → cfg-7)");
    let file = &r.files[0];
    assert_eq!(
        (file.path.as_str(), file.format, file.removed, file.added),
        ("payments/app.toml", SpecFormat::Toml, 3, 2)
    );
    let keys: Vec<String> = file.keys.iter().map(ToString::to_string).collect();
    assert_eq!(
        keys,
        ["features.async_capture: true → false", "features.fast_path: removed", "pool.size: 4 → 10"]
    );
    assert!(
        file.unified.starts_with("--- a/payments/app.toml\n+++ b/payments/app.toml\n@@ -1,7 +1,6 @@\n"),
        "{}",
        file.unified
    );
    assert!(
        r.gaps.iter().any(|g| g.contains("no rollout tool")),
        "no tool, no invented command: {:?}",
        r.gaps
    );
    assert!(r.commands.is_empty());
}

#[test]
fn without_the_previous_spec_it_says_so_and_shows_no_diff() {
    let d = change(&devloom_deploy(None, Some(bundle("v42", 42, "20", "x")), json!({"tool": "kubectl"})));
    let r = plan_of(&d);
    assert!(r.files.is_empty() && r.not_reverted.is_empty());
    assert_eq!(r.gaps, ["previous manifest not in the event stream: showing the revision change only"]);
    assert_eq!(r.summary, "Roll back payments from v42 to v41");

    let same = bundle("v42", 42, "20", "x");
    let r = plan_of(&change(&devloom_deploy(Some(same.clone()), Some(same), json!({"tool": "kubectl"}))));
    assert!(r.files.is_empty() && r.commands.is_empty());
    assert_eq!(r.gaps, ["the spec did not change: the revision change is all there is to revert"]);
}

#[test]
fn a_rollback_is_undone_by_rolling_forward_with_the_same_care() {
    let d = change(&devloom_deploy(
        Some(bundle("v42", 42, "20", "x")),
        Some(bundle("v41", 43, "20", "x")),
        json!({"kind": "rollback", "revision": "v41", "previous_revision": "v42", "tool": "kubectl"}),
    ));
    let r = plan_of(&d);
    assert_eq!(r.action, RemediationAction::RollForward);
    assert_eq!(r.summary, "Roll forward payments from v41 back to v42, undoing the rollback");
    assert_eq!(r.commands, ["kubectl rollout undo deployment/payments --namespace prod --to-revision=42"]);
    assert_eq!(
        r.files[0].keys[0].to_string(),
        "spec.template.spec.containers[payments].image: registry/payments:v41 → registry/payments:v42"
    );
    assert!(r.warnings[0].contains("find out why v42 was rolled back"), "{:?}", r.warnings);
}

#[test]
fn helm_releases_and_github_deployments_get_their_own_commands() {
    let with_helm = |image: &str, limit: &str| {
        bundle(image, 1, limit, "x").replace(
            "  namespace: prod\n  annotations:\n",
            "  namespace: prod\n  annotations:\n    meta.helm.sh/release-name: payments\n    meta.helm.sh/release-namespace: prod\n",
        )
    };
    let d = change(&devloom_deploy(
        Some(with_helm("v41", "1")),
        Some(with_helm("v42", "2")),
        json!({"previous_history_id": 7}),
    ));
    let r = plan_of(&d);
    assert_eq!(r.commands, ["helm rollback payments 7 --namespace prod"]);
    assert!(r.not_reverted.is_empty(), "helm rollback restores the whole release");
    assert!(r.files.iter().any(|f| f.path == "ConfigMap/payments-config"), "{:?}", r.files);

    let hook = include_str!("../../../schemas/fixtures/github_deployment_status.json");
    let r = plan_of(&change(hook));
    assert_eq!(r.commands, ["git revert --no-edit a84d88e7554fc1fa21bcbc4efae3c782a70d2b9d"]);
    assert!(r.warnings[0].contains("acme/cart"), "{:?}", r.warnings);
    assert!(r.gaps.iter().any(|g| g.starts_with("previous manifest not in the event stream")));
}

#[test]
fn a_change_without_a_pod_template_change_is_reverted_by_applying_previous_objects() {
    let d = change(&devloom_deploy(
        Some(bundle("v41", 41, "10", "x")),
        Some(bundle("v41", 41, "20", "x")),
        json!({"kind": "config_change", "tool": "kubectl"}),
    ));
    let r = plan_of(&d);
    assert_eq!(r.commands, ["kubectl apply --namespace prod -f configmap-payments-config.yaml"]);
    assert!(r.manifests[0].content.contains("limit: \"10\""), "{:?}", r.manifests);
}

#[test]
fn a_workload_without_a_revision_is_applied_whole_and_added_objects_are_named() {
    let statefulset = |image: &str, replicas: u32| {
        format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: ledger\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers:\n      - name: ledger\n        image: ledger:{image}\n"
        )
    };
    let added = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: ledger-debug\nspec:\n  ports:\n  - port: 9000\n";
    let d = change(&devloom_deploy(
        Some(statefulset("v41", 3)),
        Some(statefulset("v42", 5) + added),
        json!({"tool": "kubectl"}),
    ));
    let r = plan_of(&d);
    assert_eq!(r.commands, ["kubectl apply -f statefulset-ledger.yaml"]);
    assert!(
        r.manifests[0].content.contains("image: ledger:v41")
            && r.manifests[0].content.contains("replicas: 3")
    );
    let paths: Vec<&str> = r.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["StatefulSet/ledger spec.template", "StatefulSet/ledger"], "replicas revert too");
    assert_eq!(r.files[1].keys[0].to_string(), "spec.replicas: 5 → 3");
    assert!(r.gaps[0].starts_with("StatefulSet ledger: no rollout revision"), "{:?}", r.gaps);
    assert_eq!(
        r.not_reverted[0].note,
        "Service ledger-debug was added in this deploy and will NOT be removed by the rollback (`kubectl delete service/ledger-debug` if it should go)"
    );
}

fn candidates_operator(changes: &[Deploy]) -> CandidateScorer {
    let scorer = Scorer::new(test_model(&["kind_deploy"], &[2.0])).unwrap();
    let mut op = CandidateScorer::new(CandidatesConfig::default(), scorer, Default::default());
    for c in changes {
        op.on_event(&(), &CandidateInput::Change(c.clone()), &mut Vec::new());
    }
    op
}

fn list(version: u32, status: IncidentStatus, candidates: Vec<Candidate>) -> CandidateList {
    CandidateList {
        schema_version: 1,
        incident_id: "inc-1".into(),
        version,
        status,
        root_services: vec!["payments".into()],
        onset_ns: 1,
        event_time_ns: 10 + u64::from(version),
        low_confidence: false,
        model: "m".into(),
        candidates,
        published_at: None,
    }
}

#[test]
fn plans_are_versioned_per_incident_and_replanned_only_when_the_ranking_moves() {
    let deploy = change(&devloom_deploy(Some("a: 1\n".into()), Some("a: 2\n".into()), json!({})));
    let changes = candidates_operator(&[deploy]);
    let service = Candidate { kind: CandidateKind::Service, ..candidate("service:payments", 30.0) };
    let spike = Candidate { kind: CandidateKind::TrafficSpike, ..candidate("traffic_spike:gateway", 25.0) };
    let lists = [
        list(1, IncidentStatus::Open, vec![candidate("deploy:payments@v42", 60.0), service.clone()]),
        list(2, IncidentStatus::Open, vec![candidate("deploy:payments@v42", 60.0), service.clone()]),
        list(3, IncidentStatus::Open, vec![service.clone(), candidate("deploy:payments@v42", 20.0)]),
        list(4, IncidentStatus::Open, vec![service.clone(), spike, candidate("deploy:payments@v42", 20.0)]),
        list(5, IncidentStatus::Resolved, vec![service, candidate("deploy:payments@v42", 20.0)]),
    ];
    let run = |planner: &mut RemediationPlanner, lists: &[CandidateList]| {
        let mut out = Vec::new();
        for l in lists {
            planner.on_event(&changes, l, &mut out);
        }
        out
    };
    let mut planner = RemediationPlanner::new(RemediationConfig::default());
    let plans = run(&mut planner, &lists);
    let versions: Vec<(u32, u32, u32, f64)> = plans
        .iter()
        .map(|p| (p.version, p.candidates_version, p.remediations[0].rank, p.remediations[0].confidence))
        .collect();
    // v1; list 2 changes nothing; list 3 moves it; list 4 only its rank; list 5 resolves.
    assert_eq!(versions, [(1, 1, 1, 60.0), (2, 3, 2, 20.0), (3, 4, 3, 20.0), (4, 5, 2, 20.0)]);
    assert!(planner.snapshot().planned.is_empty(), "a resolved incident is forgotten");

    // Checkpoint after the first list, restore into a fresh planner: the same plans.
    let mut first = RemediationPlanner::new(RemediationConfig::default());
    let before = run(&mut first, &lists[..1]);
    let mut restored = RemediationPlanner::new(RemediationConfig::default());
    restored.restore(serde_json::from_str(&serde_json::to_string(&first.snapshot()).unwrap()).unwrap());
    let after = run(&mut restored, &lists[1..]);
    assert_eq!([before, after].concat(), plans);
}
