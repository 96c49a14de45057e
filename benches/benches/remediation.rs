//! Remediation planning on the operator thread: a 2,000-line Kubernetes bundle (13
//! Deployments with 40 env vars each, 12 ConfigMaps with 53 keys, a Secret) whose deploy
//! changed three images, four env vars, ten ConfigMap keys and the Secret — compared
//! object by object and diffed (documents unchanged in the text are not parsed). Also
//! the worst case, where every document changed, and the redaction every change event
//! gets when it is decoded. Target ≤ 5 ms.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use devloom_operators::RemediationConfig;
use devloom_operators::remediation::plan;
use devloom_schemas::codec::redact::redact_spec;
use devloom_schemas::{Candidate, CandidateKind, ChangeKind, Deploy, DeploySource, RolloutTool};

/// The bundle at `version` (0: before the deploy, 1: after). A Deployment's rollout
/// revision moves only when its pod template changed — unless `every_document_changed`
/// (a deploy tool that stamps every object), the worst case: nothing can be skipped.
fn bundle(version: usize, every_document_changed: bool) -> String {
    let mut y = String::new();
    for d in 0..13 {
        let changed = d < 3;
        let image = if changed { format!("v{}", 41 + version) } else { "v41".into() };
        let revision = if changed || every_document_changed { 41 + version } else { 41 };
        let _ = write!(
            y,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-{d}\n  namespace: prod\n  annotations:\n    deployment.kubernetes.io/revision: \"{revision}\"\nspec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n      - name: svc-{d}\n        image: registry/svc-{d}:{image}\n        env:\n"
        );
        for e in 0..40 {
            let value = if d == 0 && e < 4 { format!("on-{version}") } else { format!("value-{e}") };
            let _ = write!(y, "        - name: VAR_{e}\n          value: \"{value}\"\n");
        }
        y.push_str("---\n");
    }
    for c in 0..12 {
        let stamp = if every_document_changed {
            format!("  labels:\n    deployed: r{version}\n")
        } else {
            String::new()
        };
        let _ = write!(
            y,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-{c}\n  namespace: prod\n{stamp}data:\n"
        );
        for k in 0..53 {
            let value = if c == 0 && k < 10 { format!("{}", 100 * (version + 1)) } else { format!("{k}") };
            let _ = writeln!(y, "  key-{k}: \"{value}\"");
        }
        y.push_str("---\n");
    }
    let _ = write!(
        y,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  password: pw-{version}\n"
    );
    y
}

fn change(every_document_changed: bool) -> Deploy {
    let (before, after) = (bundle(0, every_document_changed), bundle(1, every_document_changed));
    eprintln!("bundle: {} lines", after.lines().count());
    let mut deploy = Deploy {
        service: "svc-0".into(),
        revision: "v42".into(),
        previous_revision: Some("v41".into()),
        kind: ChangeKind::Deploy,
        spec_before: Some(before),
        spec_after: Some(after),
        source: DeploySource::Devloom,
        tool: Some(RolloutTool::Kubectl),
        ..Deploy::default()
    };
    // As the decoder hands it on: Secret values redacted.
    devloom_schemas::codec::redact::redact_deploy(&mut deploy);
    deploy
}

fn bench(c: &mut Criterion) {
    let candidate = Candidate {
        key: "deploy:svc-0@v42".into(),
        kind: CandidateKind::Deploy,
        service: "svc-0".into(),
        summary: String::new(),
        confidence: 80.0,
        share: 1.0,
        unfamiliar: None,
        features: Default::default(),
    };
    let config = RemediationConfig::default();
    for (name, every) in [
        ("remediation_plan_2000_line_bundle", false),
        ("remediation_plan_2000_line_bundle_every_document_changed", true),
    ] {
        let deploy = change(every);
        let r = plan(&config, 1, &candidate, &deploy);
        assert_eq!(r.commands.len(), 3, "{:?}", r.commands);
        c.bench_function(name, |b| b.iter(|| plan(&config, 1, black_box(&candidate), black_box(&deploy))));
    }
    let raw = bundle(1, false);
    c.bench_function("redact_2000_line_bundle_with_a_secret", |b| b.iter(|| redact_spec(black_box(&raw))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
