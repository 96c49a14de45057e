//! Remediation planning on the operator thread: a 2,000-line Kubernetes bundle (13
//! Deployments with 40 env vars each, 12 ConfigMaps with 55 keys, a Secret) whose deploy
//! changed three images, four env vars, ten ConfigMap keys and the Secret — parsed,
//! compared object by object and diffed. Target ≤ 5 ms. Also the redaction every
//! change event gets when it is decoded.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use devloom_operators::RemediationConfig;
use devloom_operators::remediation::plan;
use devloom_schemas::codec::redact::redact_spec;
use devloom_schemas::{Candidate, CandidateKind, ChangeKind, Deploy, DeploySource, RolloutTool};

/// The bundle at `version` (0: before the deploy, 1: after).
fn bundle(version: usize) -> String {
    let mut y = String::new();
    for d in 0..13 {
        let image = if d < 3 { format!("v{}", 41 + version) } else { "v41".into() };
        let _ = write!(
            y,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-{d}\n  namespace: prod\n  annotations:\n    deployment.kubernetes.io/revision: \"{}\"\nspec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n      - name: svc-{d}\n        image: registry/svc-{d}:{image}\n        env:\n",
            41 + version
        );
        for e in 0..40 {
            let value = if d == 0 && e < 4 { format!("on-{version}") } else { format!("value-{e}") };
            let _ = write!(y, "        - name: VAR_{e}\n          value: \"{value}\"\n");
        }
        y.push_str("---\n");
    }
    for c in 0..12 {
        let _ = write!(
            y,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-{c}\n  namespace: prod\ndata:\n"
        );
        for k in 0..55 {
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

fn bench(c: &mut Criterion) {
    let (before, after) = (bundle(0), bundle(1));
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
    devloom_schemas::codec::redact::redact_deploy(&mut deploy);
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
    let r = plan(&config, 1, &candidate, &deploy);
    assert_eq!(r.commands.len(), 3, "{:?}", r.commands);
    assert_eq!(r.not_reverted.len(), 2, "a ConfigMap and the Secret");
    c.bench_function("remediation_plan_2000_line_bundle", |b| {
        b.iter(|| plan(&config, 1, black_box(&candidate), black_box(&deploy)))
    });
    let raw = bundle(1);
    c.bench_function("redact_2000_line_bundle_with_a_secret", |b| b.iter(|| redact_spec(black_box(&raw))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
