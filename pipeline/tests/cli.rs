//! The `devloom` binary as a user runs it.

use std::process::Command;

use devloom_schemas::{ImpactMap, Verdict};

fn devloom(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_devloom")).args(args).env_remove("DEVLOOM_CONFIG").output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn demo_shows_the_map_as_a_tree_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["demo", "--scenario", "async-consumer", "--rate", "10"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("scenario async-consumer"), "{stdout}");
    assert!(stdout.contains("· OPEN · SPREADING · roots: checkout"), "{stdout}");
    assert!(stdout.contains("└─▼ callees"), "{stdout}");
    assert!(stdout.contains("fulfillment RED"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.contains("fulfillment RED") && l.ends_with("⇢ async")),
        "the asynchronous edge is marked: {stdout}"
    );
    assert!(!stdout.contains("\u{1b}["), "no colour codes when not a terminal");
    assert!(stdout.contains("── summary"), "{stdout}");
    assert!(stdout.contains("alert → first map:"), "{stdout}");
    assert!(stdout.contains("verdict: spreading"), "{stdout}");
    assert!(stdout.contains("root-cause candidates v1"), "candidates under the map: {stdout}");
    assert!(stdout.contains("deploy of fulfillment v2.7.1 → v3.0.0 by lee"), "{stdout}");
    assert!(stdout.contains("root-cause candidates: "), "{stdout}");
}

#[test]
fn demo_draws_the_rollback_and_its_diff_under_the_candidates() {
    let out = devloom(&["demo", "--scenario", "regression", "--rate", "10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "   remediations v1 (from candidates v1):",
        "Roll back payments from v1.9.0 to v1.8.2  (deploy:payments@v1.9.0,",
        "      $ kubectl rollout undo deployment/payments --namespace production --to-revision=41",
        "      ⚠ ConfigMap payments-config changed in this deploy (2 keys) and will NOT be reverted by the rollback",
        "          data.retry.max: 5 → 3",
        "      ── Deployment/payments spec.template (Kubernetes): -2 +2",
        "        14      -    image: registry.internal/payments:v1.9.0",
        "             14 +    image: registry.internal/payments:v1.8.2",
    ] {
        assert!(stdout.contains(line), "{line:?} not drawn:\n{stdout}");
    }
    assert!(stdout.contains("remediation plans: "), "in the summary: {stdout}");
}

#[test]
fn demo_json_prints_impact_maps() {
    let out = devloom(&["demo", "--scenario", "regression", "--rate", "10", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let maps: Vec<ImpactMap> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(maps.len(), 3);
    assert!(maps.iter().all(|m| m.verdict == Verdict::Contained && m.root_services == ["payments"]));
    assert!(maps[0].latency_ms.is_some(), "the first map is stamped with its latency");
    assert!(text(&out.stderr).contains("impact maps: 3 versions for 1 incident(s); verdict: contained"));
}

#[test]
fn simulate_then_run_gives_the_same_maps_as_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim.ndjson");
    let maps = dir.path().join("maps.ndjson");
    let out = devloom(&["simulate", "--scenario", "regression", "--rate", "10", "-o", sim.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = devloom(&["run", "--input", sim.to_str().unwrap(), "--output", maps.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("2 alerts, 2 deploys → 3 impact-map versions, 3 candidate lists, 2 remediation plans, 1 post-mortem drafts, 0 rollout decisions; 0 dead letters"),
        "{}",
        text(&out.stderr)
    );
    let from_files: Vec<ImpactMap> = std::fs::read_to_string(&maps)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<ImpactMap>(l).unwrap().without_wall_clock())
        .collect();
    let demo = devloom(&["demo", "--scenario", "regression", "--rate", "10", "--json"]);
    let live: Vec<ImpactMap> = text(&demo.stdout)
        .lines()
        .map(|l| serde_json::from_str::<ImpactMap>(l).unwrap().without_wall_clock())
        .collect();
    assert_eq!(from_files, live);
}

#[test]
fn run_reads_stdin_and_dead_letters_go_to_the_named_file() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let mut child = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["run", "--dead-letter", dead.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"service\":\"checkout\",\"status\":\"firing\",\"starts_at\":\"2026-11-27T09:00:00Z\"}\n{oops\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let map: ImpactMap = serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(map.root_services, ["checkout"], "an alert with no traffic still gets a map");
    let dead_text = std::fs::read_to_string(&dead).unwrap();
    assert!(dead_text.contains("\"source\":\"<stdin>\""), "{dead_text}");
    assert!(dead_text.contains("\"line\":2"), "{dead_text}");
    assert!(dead_text.contains("malformed JSON at line 1 column 2"), "{dead_text}");
}

#[test]
fn validate_names_the_bad_key_and_run_names_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("devloom.toml");
    std::fs::write(&config, "[engine.graph.health]\nfailure_treshold = 0.3\n").unwrap();
    let out = devloom(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("invalid config"), "{err}");
    assert!(err.contains("unknown field `failure_treshold`"), "{err}");
    assert!(err.contains("line 2, column 1"), "where in the file: {err}");

    let yaml = dir.path().join("devloom.yaml");
    std::fs::write(&yaml, "kafka:\n  brokers: localhost:9092\n").unwrap();
    let err = text(&devloom(&["validate", "--config", yaml.to_str().unwrap()]).stderr);
    assert!(
        err.contains("the configuration file is TOML (see devloom.example.toml), and this looks like YAML"),
        "{err}"
    );

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../devloom.example.toml");
    let out = devloom(&["validate", "--config", example]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(": ok"));

    let out = devloom(&["run", "--input", "/nonexistent/spans.ndjson"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("cannot read input /nonexistent/spans.ndjson"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "the cause once: {err}");
    let out = devloom(&["validate", "--config", "/nonexistent/devloom.toml"]);
    let err = text(&out.stderr);
    assert_eq!(err.matches("No such file or directory").count(), 1, "the cause once: {err}");
}

#[test]
fn help_explains_the_commands() {
    let out = devloom(&["--help"]);
    let help = text(&out.stdout);
    for word in
        ["demo", "run", "simulate", "validate", "impact maps", "replay", "history", "train", "evaluate"]
    {
        assert!(help.contains(word), "{help}");
    }
    let out = devloom(&["demo", "--help"]);
    assert!(text(&out.stdout).contains("regression (contained), db-latency (spreading), async-consumer"));
}

#[test]
fn watch_draws_the_maps_and_candidates_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, maps) = (dir.path().join("sim.ndjson"), dir.path().join("out.ndjson"));
    let out = devloom(&["simulate", "--scenario", "regression", "--rate", "10", "-o", sim.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (m, c, p) = (maps.to_str().unwrap(), dir.path().join("c.ndjson"), dir.path().join("p.ndjson"));
    let (c, p) = (c.to_str().unwrap(), p.to_str().unwrap());
    let args =
        ["run", "--input", sim.to_str().unwrap(), "--output", m, "--candidates", c, "--postmortems", p];
    assert!(devloom(&args).status.success());
    let all: String = [m, c, p].iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    std::fs::write(&maps, all).unwrap();
    let out = devloom(&["watch", "--input", m]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("── inc-").count(), 3, "every map version: {stdout}");
    assert!(stdout.contains("payments RED"), "{stdout}");
    assert!(stdout.contains("root-cause candidates v1"), "{stdout}");
    assert!(stdout.contains("post-mortem draft v1 for inc-"), "{stdout}");
}

#[test]
fn watch_draws_rollout_decisions_and_run_writes_them_with_rollouts() {
    let dir = tempfile::tempdir().unwrap();
    let decisions = dir.path().join("rollouts.ndjson");
    let d = decisions.to_str().unwrap();
    let out = devloom(&["run", "--simulate", "canary", "--no-http", "-o", "/dev/null", "--rollouts", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("2 rollout decisions"), "{}", text(&out.stderr));
    let out = devloom(&["watch", "--input", d]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("── rollout frontend (production) #1  INCONCLUSIVE"), "{stdout}");
    assert!(stdout.contains("── rollout frontend (production) #2  HALT  canary 1.1.0"), "{stdout}");
    assert!(stdout.contains("fails 11.68% of 137 requests vs stable 1.0.0"), "{stdout}");
}

#[test]
fn an_unreachable_broker_is_named_at_once_and_demo_reads_the_configured_brokers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let brokers = format!("127.0.0.1:{port}");
    let out = devloom(&["run", "--brokers", &brokers]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("no Kafka broker answered at {brokers} ({brokers}: Connection refused")),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["demo", "--to-kafka", "--rate", "5"])
        .env_remove("DEVLOOM_CONFIG")
        .env("DEVLOOM_KAFKA__BROKERS", &brokers)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("no Kafka broker answered at {brokers}")),
        "[kafka] brokers is used: {err}"
    );
    let out = devloom(&["demo", "--to-kafka"]);
    assert!(text(&out.stderr).contains("--to-kafka needs brokers"), "{}", text(&out.stderr));
}

#[test]
fn completions_man_page_json_logs_and_simulation_flags() {
    let out = devloom(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("complete -F _devloom"), "a bash completion script");
    let out = devloom(&["man"]);
    assert!(text(&out.stdout).starts_with(".ie"), "roff");
    assert!(text(&out.stdout).contains("devloom\\-replay"), "the subcommands are listed");

    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("d.ndjson");
    let out = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["--log-format", "json", "run", "--dead-letter", dead.to_str().unwrap()])
        .env("DEVLOOM_LOG", "warn")
        .stdin(std::process::Stdio::from(
            std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap(),
        ))
        .output()
        .unwrap();
    let line =
        text(&out.stderr).lines().find(|l| l.starts_with('{')).map(str::to_string).expect("a JSON log line");
    let log: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(log["level"], "WARN");
    assert_eq!(log["fields"]["message"], "dead letter");

    let maps = |seed: &str| {
        let out = devloom(&["run", "--simulate", "regression", "--rate", "5", "--seed", seed]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<ImpactMap>(l).unwrap().without_wall_clock())
            .collect::<Vec<_>>()
    };
    assert_eq!(maps("1"), maps("1"));
    assert_ne!(maps("1"), maps("2"), "--seed reaches the simulator");

    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[scorer]\nenabled = false\n").unwrap();
    let out = devloom(&["demo", "--json", "--rate", "10", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stderr);
    assert!(summary.contains("impact maps: 3 versions"), "{summary}");
    assert!(!summary.contains("root-cause candidates"), "demo --config turned the scorer off: {summary}");
}

/// `devloom run --receive` as an operator runs it: the addresses printed, a webhook taken,
/// and on SIGTERM everything accepted processed before a clean exit.
#[test]
fn run_receive_takes_webhooks_until_sigterm_then_processes_what_it_accepted() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let maps = dir.path().join("maps.ndjson");
    let mut child = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["run", "--receive", "--listen", "127.0.0.1:0", "--otlp-listen", "127.0.0.1:0"])
        .args(["--otlp-grpc-listen", "", "-o", maps.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    let webhooks = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "devloom ended early: {said}");
        said.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("devloom: receiving webhooks on ") {
            break url.split("/v1/").next().unwrap().to_string();
        }
    };
    let payload =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/fixtures/alertmanager_v4.json"))
            .unwrap();
    let response = ureq::post(format!("{webhooks}/v1/receivers/alertmanager"))
        .header("content-type", "application/json")
        .send(&payload[..])
        .unwrap();
    assert_eq!(response.status(), 200);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let refused = agent.post(format!("{webhooks}/v1/receivers/alertmanager")).send(&b"{}"[..]).unwrap();
    assert_eq!(refused.status(), 400);
    let metrics =
        ureq::get(format!("{webhooks}/metrics")).call().unwrap().body_mut().read_to_string().unwrap();
    for code in ["200", "400"] {
        let counted = metrics.lines().any(|l| {
            l.starts_with("devloom_receiver_requests_total{")
                && l.contains(&format!("code=\"{code}\""))
                && l.contains("receiver=\"alertmanager\"")
                && l.ends_with("} 1")
        });
        assert!(counted, "devloom_receiver_requests_total code {code} in:\n{metrics}");
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "{said}{rest}");
    assert!(rest.contains("devloom: 2 records, 0 spans, 3 alerts"), "{rest}");
    let written = std::fs::read_to_string(&maps).unwrap();
    assert!(written.lines().count() >= 1, "the alerts' incident was mapped: {rest}");
}
