//! The Kafka runtime against a real Kafka-API broker (tansu, started by ./scripts/test,
//! which sets KAFKA_TEST_BROKERS; the broker-restart test starts its own with durable
//! storage from TANSU_BIN). Without the variables the tests are skipped, except
//! under CI=true, where that is a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use devloom::config::{KafkaConfig, TopicsConfig};
use devloom::core::Pipeline;
use devloom::kafka::checkpoint::{CheckpointStore, partition_key};
use devloom::kafka::hand_on::HandOn;
use devloom::kafka::{producer, send};
use devloom::simulator::to_kafka::publish_records;
use devloom::simulator::{SimConfig, Simulator};
use devloom::sinks::Collected;
use devloom::sources::simulated;
use devloom_operators::{Engine, EngineConfig};
use devloom_schemas::codec::DecodeOptions;
use devloom_schemas::time::format_rfc3339;
use devloom_schemas::{
    CandidateList, CauseStatus, ImpactMap, IncidentStatus, PostmortemDraft, RemediationPlan, RolloutDecision,
    RolloutVerdict,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

#[path = "common/bad_records.rs"]
mod bad_records;

const RATE: f64 = 10.0;

fn env_or_skip(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{var} is unset: the Kafka tests need the broker that ./scripts/test starts")
        }
        _ => {
            eprintln!("skipping: {var} is unset (./scripts/test starts a broker and sets it)");
            None
        }
    }
}

struct Setup {
    dir: tempfile::TempDir,
    kafka: KafkaConfig,
}

fn unique(name: &str) -> String {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

fn setup(name: &str, brokers: &str) -> Setup {
    let prefix = unique(name);
    let kafka = KafkaConfig {
        brokers: brokers.to_string(),
        group_id: format!("{prefix}-group"),
        topics: TopicsConfig {
            traces: format!("{prefix}.traces"),
            otlp_spans: String::new(),
            alerts: format!("{prefix}.alerts"),
            deploys: format!("{prefix}.deploys"),
            causes: format!("{prefix}.causes"),
            catalog: format!("{prefix}.catalog"),
            impact: format!("{prefix}.impact"),
            candidates: format!("{prefix}.candidates"),
            remediations: format!("{prefix}.remediations"),
            postmortems: format!("{prefix}.postmortems"),
            rollouts: format!("{prefix}.rollouts"),
            deadletter: format!("{prefix}.deadletter"),
            calls: format!("{prefix}.calls"),
            graph_leader: format!("{prefix}.graph-leader"),
        },
        // One record per batch: tansu 0.6 answers a fetch from an offset inside a record
        // batch with the batches after it, skipping the rest of that batch; a restart
        // resumes at arbitrary offsets, so every offset must start a batch.
        properties: BTreeMap::from([
            ("batch.num.messages".to_string(), "1".to_string()),
            ("linger.ms".to_string(), "0".to_string()),
        ]),
        ..KafkaConfig::default()
    };
    let dir = tempfile::Builder::new().prefix(&format!("devloom-{name}-")).tempdir().unwrap();
    Setup { dir, kafka }
}

impl Setup {
    /// A config file for a pipeline instance with its own group, output topic and state.
    fn config(&self, instance: &str) -> (PathBuf, KafkaConfig) {
        let mut kafka = self.kafka.clone();
        kafka.group_id = format!("{}-{instance}", kafka.group_id);
        kafka.topics.impact = format!("{}-{instance}", kafka.topics.impact);
        kafka.topics.candidates = format!("{}-{instance}", kafka.topics.candidates);
        kafka.topics.remediations = format!("{}-{instance}", kafka.topics.remediations);
        kafka.topics.postmortems = format!("{}-{instance}", kafka.topics.postmortems);
        kafka.topics.rollouts = format!("{}-{instance}", kafka.topics.rollouts);
        let state = self.dir.path().join(format!("state-{instance}"));
        let props: String = kafka.properties.iter().map(|(k, v)| format!("\"{k}\" = \"{v}\"\n")).collect();
        let t = &kafka.topics;
        let text = format!(
            "[kafka]\nbrokers = \"{}\"\ngroup_id = \"{}\"\npartitions = {}\n[kafka.topics]\ntraces = \"{}\"\nalerts = \"{}\"\n\
             deploys = \"{}\"\ncauses = \"{}\"\ncatalog = \"{}\"\nimpact = \"{}\"\ncandidates = \"{}\"\nremediations = \"{}\"\n\
             postmortems = \"{}\"\nrollouts = \"{}\"\ndeadletter = \"{}\"\ncalls = \"{}\"\ngraph_leader = \"{}\"\n\
             [kafka.properties]\n{props}\
             [checkpoint]\nstate_dir = \"{}\"\ninterval_ms = 200\nmax_messages = 20\n\
             [history]\ndir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
            kafka.brokers,
            kafka.group_id,
            kafka.partitions,
            t.traces,
            t.alerts,
            t.deploys,
            t.causes,
            t.catalog,
            t.impact,
            t.candidates,
            t.remediations,
            t.postmortems,
            t.rollouts,
            t.deadletter,
            t.calls,
            t.graph_leader,
            state.display(),
            state.join("history").display()
        );
        let path = self.dir.path().join(format!("{instance}.toml"));
        std::fs::write(&path, text).unwrap();
        devloom::kafka::create_topics(
            &kafka,
            &[
                &kafka.topics.impact,
                &kafka.topics.candidates,
                &kafka.topics.remediations,
                &kafka.topics.postmortems,
                &kafka.topics.rollouts,
                &kafka.topics.causes,
                &kafka.topics.catalog,
                &kafka.topics.deadletter,
            ],
        )
        .unwrap();
        (path, kafka)
    }
}

/// Kills a child process when dropped, so a failing test leaves no broker or pipeline behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(config: &Path, log: &Path) -> KillOnDrop {
    spawn_as(config, log, "all")
}

/// `devloom run --role ROLE`.
fn spawn_as(config: &Path, log: &Path, role: &str) -> KillOnDrop {
    let log = std::fs::File::options().create(true).append(true).open(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["run", "--config", config.to_str().unwrap(), "--role", role])
        .env("DEVLOOM_LOG", std::env::var("TEST_DEVLOOM_LOG").unwrap_or_else(|_| "devloom=info".into()))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(KillOnDrop)
        .unwrap()
}

/// The HTTP API of the instance logging to `log`: ready (checkpoints fresh), with the
/// consumer lag of every input partition drained to 0 and checkpoint durations measured.
fn runtime_metrics(log: &Path, kafka: &KafkaConfig) {
    let text = std::fs::read_to_string(log).unwrap();
    let base = text
        .lines()
        .find_map(|l| l.strip_prefix("devloom: HTTP API on "))
        .expect("the HTTP address")
        .to_string();
    let get = |path: &str| {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut r = agent.get(format!("{base}{path}")).call().unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ready, why) = get("/readyz");
        let (_, text) = get("/metrics");
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        let lags: Vec<(String, f64)> = scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == "devloom_kafka_consumer_lag"
                    && s.labels.get("messaging_destination_name") == Some(kafka.topics.traces.as_str())
                    && s.labels.get("messaging_consumer_group_name") == Some(kafka.group_id.as_str())
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) => {
                    (s.labels.get("messaging_destination_partition_id").unwrap().to_string(), v)
                }
                _ => panic!("a gauge"),
            })
            .collect();
        let checkpoints = scrape.samples.iter().any(|s| s.metric == "devloom_checkpoint_duration_seconds");
        if ready == 200 && lags.len() == 3 && lags.iter().all(|(_, lag)| *lag == 0.0) && checkpoints {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "readyz {ready} {why}; traces lag {lags:?}; checkpoint histogram {checkpoints}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn terminate(mut child: KillOnDrop) {
    Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "devloom run exited with {status} after SIGTERM");
}

/// Every message of `topic` (3 partitions) until `done` says so.
fn consume(
    brokers: &str,
    topic: &str,
    done: impl Fn(&[OwnedMessage]) -> bool,
    what: &str,
    log: &Path,
) -> Vec<OwnedMessage> {
    consume_within(brokers, topic, done, what, log, Duration::from_secs(60))
}

/// [`consume`], waiting up to `within`.
fn consume_within(
    brokers: &str,
    topic: &str,
    done: impl Fn(&[OwnedMessage]) -> bool,
    what: &str,
    log: &Path,
    within: Duration,
) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "500")
        // tansu answers a fetch when its wait is up: read a long topic in many short ones.
        .set("fetch.wait.max.ms", "5")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + within;
    let mut messages = Vec::new();
    while !done(&messages) {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what} on {topic}: have {}; {}", messages.len(), logs(log));
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            messages.push(m.detach());
        }
    }
    messages
}

/// What `log` says, then the last lines of every other instance's log beside it.
fn logs(log: &Path) -> String {
    let mut text = format!("{} said:\n{}", log.display(), std::fs::read_to_string(log).unwrap_or_default());
    let mut others: Vec<PathBuf> = std::fs::read_dir(log.parent().unwrap())
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log") && p != log)
        .collect();
    others.sort();
    for other in others {
        let lines = std::fs::read_to_string(&other).unwrap_or_default();
        let lines: Vec<&str> = lines.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        text += &format!("\n{} ends:\n{tail}", other.display());
    }
    text
}

fn maps(messages: &[OwnedMessage]) -> Vec<ImpactMap> {
    messages
        .iter()
        .map(|m| serde_json::from_slice::<ImpactMap>(m.payload().unwrap()).unwrap().without_wall_clock())
        .collect()
}

fn resolved(messages: &[OwnedMessage]) -> bool {
    maps(messages).iter().any(|m| m.status == IncidentStatus::Resolved)
}

fn sim(scenario: &str) -> Simulator {
    Simulator::shop(scenario, SimConfig { rate_per_s: RATE, ..SimConfig::default() }).unwrap()
}

/// The same scenario through the embedded runtime: its maps and how many spans it had.
fn embedded(scenario: &str) -> (Vec<ImpactMap>, u64) {
    let mut pipeline = Pipeline::new(Engine::new(EngineConfig::default()), Collected::default());
    pipeline.run(&mut simulated(sim(scenario), DecodeOptions::default())).unwrap();
    let (out, summary) = pipeline.finish().unwrap();
    (out.maps.iter().map(ImpactMap::without_wall_clock).collect(), summary.engine.spans)
}

/// Maps by `(incident_id, version)`, asserting that no key carries two payloads.
fn dedupe(maps: Vec<ImpactMap>) -> Vec<ImpactMap> {
    let mut by_key: BTreeMap<(String, u32), ImpactMap> = BTreeMap::new();
    for m in maps {
        let key = (m.incident_id.clone(), m.version);
        if let Some(previous) = by_key.get(&key) {
            assert_eq!(previous, &m, "({}, {}) was published with two different payloads", key.0, key.1);
        }
        by_key.insert(key, m);
    }
    by_key.into_values().collect()
}

fn header<'a>(m: &'a OwnedMessage, key: &str) -> Option<&'a str> {
    m.headers()?.iter().find(|h| h.key == key).and_then(|h| std::str::from_utf8(h.value?).ok())
}

#[test]
fn collector_alertmanager_and_deploy_messages_become_impact_maps() {
    let Some(brokers) = env_or_skip("KAFKA_TEST_BROKERS") else { return };
    let s = setup("e2e", &brokers);
    let published = publish_records(&s.kafka, sim("regression"), None, false).unwrap();
    assert!(published > 700);
    let (config, kafka) = s.config("a");
    let child = spawn(&config, &s.dir.path().join("a.log"));
    let messages =
        consume(&brokers, &kafka.topics.impact, resolved, "the resolved map", &s.dir.path().join("a.log"));
    assert_eq!(maps(&messages), embedded("regression").0, "Kafka and embedded runs agree");
    let first = &messages[0];
    let map: ImpactMap = serde_json::from_slice(first.payload().unwrap()).unwrap();
    assert_eq!(first.key(), Some(map.incident_id.as_bytes()), "keyed by incident id");
    assert_eq!(header(first, "ce_type"), Some("dev.devloom.impact.v1"));
    assert_eq!(header(first, "ce_specversion"), Some("1.0"));
    assert_eq!(header(first, "ce_id"), Some(format!("{}/1", map.incident_id).as_str()));
    assert_eq!(header(first, "content-type"), Some("application/json"));
    assert!(map.latency_ms.is_some());

    // Candidate lists on their topic, keyed and typed the same way, the bad deploy first.
    let is_final = |m: &OwnedMessage| {
        serde_json::from_slice::<CandidateList>(m.payload().unwrap())
            .is_ok_and(|l| l.status == IncidentStatus::Resolved)
    };
    let lists = consume(
        &brokers,
        &kafka.topics.candidates,
        |ms| ms.iter().any(is_final),
        "the resolved candidate list",
        &s.dir.path().join("a.log"),
    );
    let list: CandidateList = serde_json::from_slice(lists[0].payload().unwrap()).unwrap();
    assert_eq!(list.incident_id, map.incident_id);
    assert_eq!(list.version, 1);
    assert_eq!(list.candidates[0].key, "deploy:payments@v1.9.0", "{:#?}", list.candidates);
    assert_eq!(lists[0].key(), Some(map.incident_id.as_bytes()));
    assert_eq!(header(&lists[0], "ce_type"), Some("dev.devloom.candidates.v1"));

    // The rollback of that deploy, with its diff, on the remediations topic.
    let plans = consume(
        &brokers,
        &kafka.topics.remediations,
        |ms| !ms.is_empty(),
        "a remediation plan",
        &s.dir.path().join("a.log"),
    );
    let plan: RemediationPlan = serde_json::from_slice(plans[0].payload().unwrap()).unwrap();
    assert_eq!(plans[0].key(), Some(map.incident_id.as_bytes()));
    assert_eq!(header(&plans[0], "ce_type"), Some("dev.devloom.remediation.v1"));
    assert_eq!(
        plan.remediations[0].commands,
        ["kubectl rollout undo deployment/payments --namespace production --to-revision=41"]
    );

    // The post-mortem draft on resolve leaves the cause unconfirmed; a confirmation on
    // the causes topic writes version 2, naming it.
    let drafts = consume(
        &brokers,
        &kafka.topics.postmortems,
        |ms| !ms.is_empty(),
        "the draft",
        &s.dir.path().join("a.log"),
    );
    let draft: PostmortemDraft = serde_json::from_slice(drafts[0].payload().unwrap()).unwrap();
    assert_eq!(header(&drafts[0], "ce_type"), Some("dev.devloom.postmortem.v1"));
    assert_eq!((draft.version, draft.root_cause.status), (1, CauseStatus::Unconfirmed));
    assert!(draft.markdown.as_deref().unwrap().contains("**Unconfirmed.**"));
    let cause = format!(
        r#"{{"incident_id":"{}","candidate":"deploy:payments@v1.9.0","confirmed_by":"ana","time":"2026-11-27T12:00:00Z"}}"#,
        map.incident_id
    );
    let p = producer(&s.kafka).unwrap();
    send(&p, BaseRecord::<[u8], [u8]>::to(&kafka.topics.causes).payload(cause.as_bytes())).unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
    let drafts = consume(
        &brokers,
        &kafka.topics.postmortems,
        |ms| ms.len() >= 2,
        "the confirmed draft",
        &s.dir.path().join("a.log"),
    );
    let confirmed: PostmortemDraft = serde_json::from_slice(drafts[1].payload().unwrap()).unwrap();
    assert_eq!((confirmed.version, confirmed.root_cause.status), (2, CauseStatus::Confirmed));
    assert_eq!(confirmed.root_cause.key.as_deref(), Some("deploy:payments@v1.9.0"));
    assert_eq!(confirmed.root_cause.confirmed_by.as_deref(), Some("ana"));
    assert!(confirmed.markdown.as_deref().unwrap().contains("**Confirmed** by ana"));
    runtime_metrics(&s.dir.path().join("a.log"), &kafka);
    terminate(child);

    // `devloom watch` draws what is on the topics.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["watch", "--config", config.to_str().unwrap(), "--from-beginning"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let stdout = watch.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let drawn = |seen: &[String], what: &str| seen.iter().any(|l| l.contains(what));
    while !(drawn(&seen, "· RESOLVED ·") && drawn(&seen, "root-cause candidates v")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("devloom watch drew no resolved map and candidates: {seen:#?}"),
        }
    }
    assert!(drawn(&seen, "payments RED"), "{seen:#?}");
    drop(watch);
}

#[test]
fn malformed_messages_on_every_input_go_to_the_dead_letter_topic() {
    let Some(brokers) = env_or_skip("KAFKA_TEST_BROKERS") else { return };
    let s = setup("dead", &brokers);
    devloom::kafka::create_topics(
        &s.kafka,
        &[
            &s.kafka.topics.traces,
            &s.kafka.topics.alerts,
            &s.kafka.topics.deploys,
            &s.kafka.topics.causes,
            &s.kafka.topics.deadletter,
        ],
    )
    .unwrap();
    let p = producer(&s.kafka).unwrap();
    let t = &s.kafka.topics;
    let bad: [(&str, &[u8]); 4] = [
        (&t.traces, b"\x0a\x05garbage"),
        (&t.alerts, b"{\"alerts\": 7"),
        (&t.deploys, b"{\"service\":\"cart\"}"),
        (&t.causes, b"{\"incident_id\":\"inc-1\",\"service\":\"\"}"),
    ];
    for (topic, payload) in bad {
        let headers = OwnedHeaders::new().insert(Header { key: "x-origin", value: Some("test") });
        send(&p, BaseRecord::to(topic).payload(payload).key("k1".as_bytes()).headers(headers)).unwrap();
    }
    let good =
        br#"{"service":"checkout","status":"firing","starts_at":"2026-11-27T09:00:00Z","fingerprint":"f1"}"#;
    send(&p, BaseRecord::<[u8], [u8]>::to(&t.alerts).payload(good.as_slice())).unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
    let (config, kafka) = s.config("a");
    let child = spawn(&config, &s.dir.path().join("a.log"));
    let log = s.dir.path().join("a.log");
    let dead = consume(&brokers, &t.deadletter, |m| m.len() >= 4, "four dead letters", &log);
    let impact = consume(&brokers, &kafka.topics.impact, |m| !m.is_empty(), "the good alert's map", &log);
    terminate(child);
    assert_eq!(maps(&impact)[0].root_services, ["checkout"], "later good messages are still processed");
    let mut by_topic: BTreeMap<String, &OwnedMessage> = BTreeMap::new();
    for m in &dead {
        by_topic.insert(header(m, "devloom.source.topic").unwrap().to_string(), m);
    }
    for (topic, payload) in bad {
        let m = by_topic[topic];
        assert_eq!(m.payload(), Some(payload), "original bytes kept");
        assert_eq!(m.key(), Some("k1".as_bytes()), "original key kept");
        assert_eq!(header(m, "x-origin"), Some("test"), "original headers kept");
        assert_eq!(header(m, "devloom.source.offset"), Some("0"));
        assert!(header(m, "devloom.source.partition").is_some());
    }
    assert_eq!(
        header(by_topic[t.traces.as_str()], "devloom.error.reason"),
        Some("OTLP protobuf: invalid at resourceSpans[0].resource: unexpected wire type")
    );
    assert!(header(by_topic[t.alerts.as_str()], "devloom.error.reason").unwrap().contains("malformed JSON"));
    assert!(
        header(by_topic[t.deploys.as_str()], "devloom.error.reason")
            .unwrap()
            .contains("matches no known format")
    );
    assert_eq!(
        header(by_topic[t.causes.as_str()], "devloom.error.reason"),
        Some("Devloom cause JSON: invalid at service: is empty")
    );
}

#[test]
fn a_bad_catalog_snapshot_is_a_dead_letter_and_the_previous_one_stays_in_force() {
    let Some(brokers) = env_or_skip("KAFKA_TEST_BROKERS") else { return };
    let s = setup("catalog", &brokers);
    let t = &s.kafka.topics;
    devloom::kafka::create_topics(&s.kafka, &[&t.traces, &t.alerts, &t.deploys, &t.catalog, &t.deadletter])
        .unwrap();
    let p = producer(&s.kafka).unwrap();
    let good = "apiVersion: devloom.dev/v1\nkind: Catalog\ndependencies:\n  - {caller: payments, callee: ledger, criticality: critical}\n";
    let bad = "apiVersion: devloom.dev/v1\nkind: Catalog\ndependencies:\n  - {caller: payments, callee: ledger, criticality: sometimes}\n";
    for payload in [good, bad] {
        let headers =
            OwnedHeaders::new().insert(Header { key: "content-type", value: Some("application/yaml") });
        send(
            &p,
            BaseRecord::to(&t.catalog).payload(payload.as_bytes()).key("devloom".as_bytes()).headers(headers),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    // After the catalogs, in event time too (a catalog is in force from when it is read).
    let at = format_rfc3339(
        SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 + 60_000_000_000,
    );
    let alert = format!(r#"{{"service":"ledger","status":"firing","starts_at":"{at}","fingerprint":"l1"}}"#);
    send(&p, BaseRecord::<[u8], [u8]>::to(&t.alerts).payload(alert.as_bytes())).unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
    let (config, kafka) = s.config("a");
    let log = s.dir.path().join("a.log");
    let child = spawn(&config, &log);
    let dead = consume(&brokers, &t.deadletter, |m| !m.is_empty(), "the bad snapshot", &log);
    let impact = consume(&brokers, &kafka.topics.impact, |m| !m.is_empty(), "the ledger alert's map", &log);
    terminate(child);
    assert_eq!(header(&dead[0], "devloom.source.topic"), Some(t.catalog.as_str()));
    assert_eq!(dead[0].key(), Some("devloom".as_bytes()), "the source it would have replaced");
    assert!(
        header(&dead[0], "devloom.error.reason").unwrap().starts_with(
            "Devloom catalog: invalid at document 1, dependencies[0].criticality: unknown variant `sometimes`"
        ),
        "{:?}",
        header(&dead[0], "devloom.error.reason")
    );
    let map = &maps(&impact)[0];
    let names: Vec<&str> = map.nodes.iter().map(|n| n.service.as_str()).collect();
    assert_eq!(names, ["ledger", "payments"], "the good snapshot is still in force");
    assert_eq!(map.edges[0].origin, devloom_schemas::EdgeOrigin::Declared);
}

/// Waits until the checkpoint in `state` covers every input record published so far,
/// so a SIGTERM then stops a run that has read (and archived) everything.
fn wait_until_caught_up(state: &Path, kafka: &KafkaConfig) {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", &kafka.brokers).create().unwrap();
    let timeout = Duration::from_secs(5);
    let mut ends = BTreeMap::new();
    for topic in [&kafka.topics.traces, &kafka.topics.alerts, &kafka.topics.deploys] {
        let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
        for p in metadata.topics()[0].partitions() {
            let (_, high) = consumer.fetch_watermarks(topic, p.id(), timeout).unwrap();
            ends.insert(partition_key(topic, p.id()), high);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let checkpoint = CheckpointStore::new(state).load().unwrap();
        if checkpoint
            .is_some_and(|c| ends.iter().all(|(k, end)| c.offsets.get(k).copied().unwrap_or(0) >= *end))
        {
            return;
        }
        assert!(Instant::now() < deadline, "the pipeline never checkpointed the end of its input {ends:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The offsets `group` has committed on the traces partitions, by `topic/partition`.
fn committed_offsets(kafka: &KafkaConfig, group: &str) -> BTreeMap<String, Offset> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", &kafka.brokers).set("group.id", group).create().unwrap();
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(&kafka.topics.traces), timeout).unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition(&kafka.topics.traces, p.id());
    }
    let committed = consumer.committed_offsets(tpl, timeout).unwrap();
    committed.elements().iter().map(|e| (partition_key(e.topic(), e.partition()), e.offset())).collect()
}

fn checkpoint_written_after(state: &Path, since: SystemTime) -> bool {
    std::fs::metadata(state.join("checkpoint.json")).and_then(|m| m.modified()).is_ok_and(|t| t > since)
}

#[test]
fn sigkilled_three_times_gives_the_same_maps_as_an_uninterrupted_run() {
    let Some(brokers) = env_or_skip("KAFKA_TEST_BROKERS") else { return };
    let s = setup("crash", &brokers);
    publish_records(&s.kafka, sim("db-latency"), None, false).unwrap();

    let (config_a, kafka_a) = s.config("a");
    let child = spawn(&config_a, &s.dir.path().join("a.log"));
    let log_a = s.dir.path().join("a.log");
    let uninterrupted = consume(&brokers, &kafka_a.topics.impact, resolved, "the uninterrupted run", &log_a);
    terminate(child);

    let (config_b, kafka_b) = s.config("b");
    let state_b = s.dir.path().join("state-b");
    let log_b = s.dir.path().join("b.log");
    for kill in 0..3 {
        let started = SystemTime::now();
        let mut child = spawn(&config_b, &log_b);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !checkpoint_written_after(&state_b, started) {
            assert!(Instant::now() < deadline, "run {kill} wrote no checkpoint");
            std::thread::sleep(Duration::from_millis(20));
        }
        if kill == 0 {
            // The offsets of a durable checkpoint go to the group while the run goes on.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !committed_offsets(&kafka_b, &kafka_b.group_id).values().any(|o| o.to_raw() > Some(0)) {
                assert!(Instant::now() < deadline, "no offsets committed while running:\n{}", logs(&log_b));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        std::thread::sleep(Duration::from_millis(150 + 100 * kill));
        child.0.kill().unwrap(); // SIGKILL: no final checkpoint, no flush
        child.0.wait().unwrap();
        // Committed only once durable: never past the checkpoint a restart resumes from.
        let saved = CheckpointStore::new(&state_b).load().unwrap().unwrap().offsets;
        for (key, offset) in committed_offsets(&kafka_b, &kafka_b.group_id) {
            let offset = offset.to_raw().unwrap_or(-1);
            assert!(offset <= saved[&key], "{key}: committed {offset}, checkpoint at {}", saved[&key]);
        }
    }
    let child = spawn(&config_b, &log_b);
    let crashed = consume(&brokers, &kafka_b.topics.impact, resolved, "the run after three SIGKILLs", &log_b);
    // The resolved map can come before the last spans are read: stop only after them.
    wait_until_caught_up(&state_b, &kafka_b);
    terminate(child);

    let expected = dedupe(maps(&uninterrupted));
    assert!(expected.len() >= 5, "a real incident: {} versions", expected.len());
    let got = dedupe(maps(&crashed));
    let brief = |ms: &[ImpactMap]| -> Vec<String> {
        ms.iter()
            .map(|m| {
                format!(
                    "v{} {} {:?} {} nodes {:?}",
                    m.version,
                    m.event_time,
                    m.verdict,
                    m.nodes.len(),
                    m.status
                )
            })
            .collect()
    };
    assert_eq!(got, expected, "crashed {:#?}\nuninterrupted {:#?}", brief(&got), brief(&expected));
    let log = std::fs::read_to_string(&log_b).unwrap();
    assert!(log.matches("restored checkpoint").count() >= 3, "restarts resumed from checkpoints:\n{log}");

    // The archive written across the crashes holds every span exactly once, and its
    // replay gives the uninterrupted run's maps.
    let history = state_b.join("history");
    let mut csv = Vec::new();
    devloom::history::query::query(
        &history,
        "SELECT count(*) AS n, count(DISTINCT trace_id || span_id) AS distinct_spans FROM spans",
        devloom::history::query::QueryFormat::Csv,
        &mut csv,
    )
    .unwrap();
    let counts = String::from_utf8(csv).unwrap();
    let row: Vec<u64> = counts.lines().nth(1).unwrap().split(',').map(|v| v.parse().unwrap()).collect();
    let published = embedded("db-latency").1;
    assert_eq!(row, vec![published, published], "spans archived once each ({counts})");
    let mut replay = Pipeline::new(Engine::new(EngineConfig::default()), Collected::default());
    devloom::history::replay::replay(&history, &Default::default(), &mut replay, false).unwrap();
    let replayed =
        replay.finish().unwrap().0.maps.iter().map(ImpactMap::without_wall_clock).collect::<Vec<_>>();
    assert_eq!(dedupe(replayed), expected, "replay of the archive equals the uninterrupted run");
}

/// Candidate lists by `(incident_id, version)`, asserting that no key carries two payloads.
fn candidate_lists(messages: &[OwnedMessage]) -> Vec<CandidateList> {
    let mut by_key: BTreeMap<(String, u32), CandidateList> = BTreeMap::new();
    for m in messages {
        let list =
            serde_json::from_slice::<CandidateList>(m.payload().unwrap()).unwrap().without_wall_clock();
        let key = (list.incident_id.clone(), list.version);
        if let Some(previous) = by_key.get(&key) {
            assert_eq!(previous, &list, "({}, {}) was published with two different payloads", key.0, key.1);
        }
        by_key.insert(key, list);
    }
    by_key.into_values().collect()
}

fn resolved_lists(messages: &[OwnedMessage]) -> bool {
    candidate_lists(messages).iter().any(|l| l.status == IncidentStatus::Resolved)
}

/// Waits until `log` has a line containing `what`; when it appeared.
fn wait_for_line(log: &Path, what: &str, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        if std::fs::read_to_string(log).is_ok_and(|t| t.contains(what)) {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{} never said {what:?}", log.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn three_pairing_and_two_graph_instances_survive_sigkills_and_equal_one_instance() {
    let Some(brokers) = env_or_skip("KAFKA_TEST_BROKERS") else { return };
    let mut s = setup("roles", &brokers);
    s.kafka.partitions = 6;
    // Short sessions: a killed instance's partitions move on within seconds.
    for (key, value) in [("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "500")] {
        s.kafka.properties.insert(key.into(), value.into());
    }
    // As the Collector's Kafka exporter with partition_traces_by_id.
    publish_records(&s.kafka, sim("regression"), None, true).unwrap();

    let (config_a, kafka_a) = s.config("single");
    let log_a = s.dir.path().join("single.log");
    let child = spawn(&config_a, &log_a);
    let single = consume(&brokers, &kafka_a.topics.impact, resolved, "the single instance's maps", &log_a);
    let single_lists =
        consume(&brokers, &kafka_a.topics.candidates, resolved_lists, "its candidate lists", &log_a);
    terminate(child);
    let (expected, expected_lists) = (dedupe(maps(&single)), candidate_lists(&single_lists));
    assert!(
        expected.len() >= 3 && !expected_lists.is_empty(),
        "a real incident: {} versions",
        expected.len()
    );

    // Three pairing and two graph instances sharing one state directory (a volume). The
    // history archive needs every span: it is for `--role all` instances.
    let (config, kafka) = s.config("scaled");
    let text = std::fs::read_to_string(&config).unwrap();
    let text: Vec<&str> = text.lines().filter(|l| *l != "[history]" && !l.contains("history\"")).collect();
    std::fs::write(&config, text.join("\n")).unwrap();
    let log = |name: &str| s.dir.path().join(format!("{name}.log"));
    let mut pairing: Vec<KillOnDrop> =
        (0..3).map(|i| spawn_as(&config, &log(&format!("pairing-{i}")), "pairing")).collect();
    let graphs = [spawn_as(&config, &log("graph-0"), "graph"), spawn_as(&config, &log("graph-1"), "graph")];
    let active_line = "devloom: active graph instance";
    let deadline = Instant::now() + Duration::from_secs(60);
    let active = loop {
        if let Some(i) = (0..2).find(|i| {
            std::fs::read_to_string(log(&format!("graph-{i}"))).is_ok_and(|t| t.contains(active_line))
        }) {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "no graph instance became active:\n{}",
            std::fs::read_to_string(log("graph-0")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let [mut g0, mut g1] = graphs;
    let (active_child, standby) = if active == 0 { (&mut g0, 1) } else { (&mut g1, 0) };

    // Mid-stream: a pairing instance dies once every partition has a checkpoint.
    let partitions = s.dir.path().join("state-scaled/pairing");
    let deadline = Instant::now() + Duration::from_secs(60);
    while (0..6).any(|p| !partitions.join(format!("{p}/checkpoint.json")).exists()) {
        assert!(Instant::now() < deadline, "the pairing instances checkpointed no partition");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));
    let restored = || -> usize {
        [0, 2]
            .iter()
            .map(|i| {
                std::fs::read_to_string(log(&format!("pairing-{i}")))
                    .unwrap()
                    .matches("restored checkpoint")
                    .count()
            })
            .sum()
    };
    let restored_before = restored();
    let mut killed_pairing = pairing.remove(1);
    killed_pairing.0.kill().unwrap(); // SIGKILL
    killed_pairing.0.wait().unwrap();

    // Later, once the first map is out, the active graph instance dies. The roles move a
    // second of Kafka time per round trip through the calls topic, and tansu answers a
    // fetch only when its wait is up: minutes here, on a loaded CI machine.
    let first = consume_within(
        &brokers,
        &kafka.topics.impact,
        |ms| !ms.is_empty(),
        "the first map",
        &log(&format!("graph-{active}")),
        Duration::from_secs(600),
    );
    assert!(!first.is_empty());
    let standby_text = std::fs::read_to_string(log(&format!("graph-{standby}"))).unwrap();
    assert!(!standby_text.contains(active_line), "one active graph instance at a time:\n{standby_text}");
    active_child.0.kill().unwrap();
    active_child.0.wait().unwrap();
    let killed = Instant::now();
    let took_over = wait_for_line(&log(&format!("graph-{standby}")), active_line, Duration::from_secs(60));
    eprintln!(
        "standby took over {:.1} s after the active graph instance was killed",
        (took_over - killed).as_secs_f64()
    );

    let standby_log = log(&format!("graph-{standby}"));
    let within = Duration::from_secs(600);
    let scaled =
        consume_within(&brokers, &kafka.topics.impact, resolved, "the scaled-out maps", &standby_log, within);
    let scaled_lists = consume_within(
        &brokers,
        &kafka.topics.candidates,
        resolved_lists,
        "its candidate lists",
        &standby_log,
        within,
    );
    let got = dedupe(maps(&scaled));
    assert_eq!(
        got, expected,
        "maps: scaled out, with a pairing and the active graph instance killed, equal one instance"
    );
    assert_eq!(candidate_lists(&scaled_lists), expected_lists, "candidate lists");
    let text = std::fs::read_to_string(&standby_log).unwrap();
    assert!(text.contains("restored checkpoint"), "the standby resumed from the checkpoint:\n{text}");
    assert!(
        restored() > restored_before,
        "the killed pairing instance's partitions resumed from their checkpoints"
    );
    // A graph instance restored from a checkpoint taken once every partition said it is
    // at its end reads no idle record after it; the pairing instances say it again while
    // they wait, so an alert published later still gets its map.
    let watermarks: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let ends: Vec<i64> = (0..6)
        .map(|p| watermarks.fetch_watermarks(&kafka.topics.traces, p, Duration::from_secs(10)).unwrap().1)
        .collect();
    let at_end = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let all_at_end = |ms: &[OwnedMessage]| {
        // Called after every message: only the newest is looked at.
        if let Some(m) = ms.last() {
            let h: HandOn = serde_json::from_slice(m.payload().unwrap()).unwrap();
            if h.idle && h.offset == ends[h.partition as usize] - 1 {
                at_end.borrow_mut().insert(h.partition);
            }
        }
        at_end.borrow().len() == 6
    };
    consume(&brokers, &kafka.topics.calls, all_at_end, "every partition at its end", &standby_log);
    std::thread::sleep(Duration::from_secs(2)); // the graph instance reads them
    let standby_child = if standby == 0 { g0 } else { g1 };
    terminate(standby_child);
    let restarted_log = log("graph-2");
    let restarted = spawn_as(&config, &restarted_log, "graph");
    wait_for_line(&restarted_log, active_line, Duration::from_secs(60));
    let at_ns = sim("regression").last().unwrap().time_ns + 60_000_000_000;
    let alert = format!(
        r#"{{"service":"payments","status":"firing","starts_at":"{}","fingerprint":"after-restart"}}"#,
        format_rfc3339(at_ns)
    );
    let p = producer(&s.kafka).unwrap();
    let record = BaseRecord::<[u8], [u8]>::to(&kafka.topics.alerts).payload(alert.as_bytes());
    send(&p, record.timestamp((at_ns / 1_000_000) as i64)).unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
    let later = |ms: &[OwnedMessage]| maps(ms).iter().any(|m| m.event_time_ns >= at_ns);
    consume(&brokers, &kafka.topics.impact, later, "the map of an alert after the restart", &restarted_log);
    for child in pairing {
        terminate(child);
    }
    // Stopped, each surviving instance wrote its partitions' last checkpoints (on their
    // writer threads) and committed each one's offsets once durable: every partition
    // read to its end, in the checkpoint and in the lanes' group.
    let committed = committed_offsets(&kafka, &format!("{}.pairing-lanes", kafka.group_id));
    for p in 0..6 {
        let checkpoint = CheckpointStore::new(&partitions.join(p.to_string())).load().unwrap().unwrap();
        let key = partition_key(&kafka.topics.traces, p);
        let end = ends[p as usize];
        assert_eq!(
            (checkpoint.offsets[&key], committed.get(&key)),
            (end, Some(&Offset::Offset(end))),
            "partition {p}: its last checkpoint and the committed offset are at its end"
        );
    }
    for i in [0, 2] {
        let text = std::fs::read_to_string(log(&format!("pairing-{i}"))).unwrap();
        let summary = text.lines().find(|l| l.contains("devloom: stopped after")).expect("a summary");
        assert!(summary.contains("spans sent to the partition of the trace they link into"), "{summary}");
        // Every span sat where its trace id hashes (murmur2 of the hex id, as produced).
        assert!(!text.contains("does not hash to"), "{text}");
    }
    terminate(restarted);
}

#[test]
fn broker_restart_mid_run_loses_nothing() {
    let Some(tansu) = env_or_skip("TANSU_BIN") else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("tcp://127.0.0.1:{port}");
    // tansu resolves the database path against its working directory.
    let storage = "sqlite://tansu.db".to_string();
    let start_broker = || {
        let child = Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                &storage,
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let child = KillOnDrop(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    };
    let broker = start_broker();
    let brokers = format!("127.0.0.1:{port}");
    let s = setup("restart", &brokers);
    publish_records(&s.kafka, sim("regression"), None, false).unwrap();
    let (config, kafka) = s.config("a");
    let state = s.dir.path().join("state-a");
    let started = SystemTime::now();
    let pipeline = spawn(&config, &s.dir.path().join("a.log"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !checkpoint_written_after(&state, started) {
        assert!(Instant::now() < deadline, "no checkpoint before the broker restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(broker);
    std::thread::sleep(Duration::from_secs(2));
    let broker = start_broker();
    let log = s.dir.path().join("a.log");
    let messages =
        consume(&brokers, &kafka.topics.impact, resolved, "the resolved map after the broker restart", &log);
    terminate(pipeline);
    drop(broker);
    assert_eq!(dedupe(maps(&messages)), dedupe(embedded("regression").0));
}

/// An output document as JSON with its wall-clock stamps removed.
fn without_stamps(json: &[u8]) -> String {
    let mut value: serde_json::Value = serde_json::from_slice(json).unwrap();
    for key in ["published_at", "alert_received_at", "latency_ms"] {
        value.as_object_mut().unwrap().remove(key);
    }
    value.to_string()
}

fn json_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| without_stamps(l.as_bytes())).collect()
}

/// What a run published, without wall-clock stamps: impact maps, candidate lists,
/// remediation plans, post-mortem drafts.
type Published = (Vec<String>, Vec<String>, Vec<String>, Vec<String>);

/// Runs `source` through the pipeline `config` describes (scorer on, archive when
/// configured) into the JSON-lines sink.
fn through_json_lines(
    mut config: devloom::config::Config,
    out: &Path,
    name: &str,
    source: &mut dyn devloom::core::Source,
) -> Published {
    use devloom::build::{ArchiveCommits, pipeline};
    use devloom::sinks::{JsonLines, routes};
    let file = |kind: &str| out.join(format!("{name}.{kind}"));
    let (impact, candidates, remediations) = (file("impact"), file("candidates"), file("remediations"));
    config.output.path = impact.display().to_string();
    config.output.candidates = Some(candidates.display().to_string());
    config.output.remediations = Some(remediations.display().to_string());
    let postmortems = file("postmortems");
    config.output.postmortems = Some(postmortems.display().to_string());
    let sink = JsonLines::from_routes(&routes(&config)).unwrap();
    let mut p = pipeline(&config, sink, ArchiveCommits::OnRoll).unwrap();
    p.run(source).unwrap();
    p.finish().unwrap();
    (json_lines(&impact), json_lines(&candidates), json_lines(&remediations), json_lines(&postmortems))
}

#[test]
fn a_canary_on_the_topics_publishes_its_rollout_decisions_as_cloudevents() {
    let Some(brokers) = env_or_skip("KAFKA_TEST_BROKERS") else { return };
    let s = setup("rollouts", &brokers);
    let mut pipeline = Pipeline::new(Engine::new(EngineConfig::default()), Collected::default());
    pipeline.run(&mut simulated(sim("canary"), DecodeOptions::default())).unwrap();
    let embedded: Vec<RolloutDecision> = pipeline.finish().unwrap().0.rollouts;
    let halt = embedded.iter().position(|d| d.verdict == RolloutVerdict::Halt).expect("the canary halts");

    publish_records(&s.kafka, sim("canary"), None, false).unwrap();
    let (config, kafka) = s.config("k");
    let log = s.dir.path().join("k.log");
    let child = spawn(&config, &log);
    let decision =
        |m: &OwnedMessage| serde_json::from_slice::<RolloutDecision>(m.payload().unwrap()).unwrap();
    let halted = |ms: &[OwnedMessage]| ms.iter().any(|m| decision(m).verdict == RolloutVerdict::Halt);
    let messages = consume(&brokers, &kafka.topics.rollouts, halted, "a halt", &log);
    terminate(child);
    let unstamped = |d: RolloutDecision| RolloutDecision { published_at: None, ..d };
    let published: Vec<RolloutDecision> = messages.iter().map(|m| unstamped(decision(m))).collect();
    let expected: Vec<RolloutDecision> = embedded.into_iter().take(halt + 1).map(unstamped).collect();
    assert_eq!(published, expected, "Kafka = embedded, up to the halt");
    for (m, d) in messages.iter().zip(&published) {
        assert_eq!(header(m, "ce_type"), Some("dev.devloom.rollout.v1"));
        assert_eq!(header(m, "ce_specversion"), Some("1.0"));
        assert_eq!(header(m, "ce_subject"), Some("frontend/production"));
        let id = format!("frontend/production/{}", d.sequence);
        assert_eq!(header(m, "ce_id"), Some(id.as_str()));
        assert_eq!(m.key(), Some("frontend/production".as_bytes()), "keyed by service/environment");
    }
}

#[test]
fn every_way_in_gives_byte_identical_outputs() {
    use devloom::config::Config;
    use devloom::history::replay::{Replay, Selection};
    use devloom::sources::file::Files;
    let Some(brokers) = env_or_skip("KAFKA_TEST_BROKERS") else { return };
    for scenario in ["regression", "db-latency", "async-consumer"] {
        let s = setup(&format!("ways-{scenario}"), &brokers);
        let out = s.dir.path();
        let opts = DecodeOptions::default();

        // The simulator, archiving as it runs.
        let history = out.join("history");
        let archived = Config {
            history: devloom::config::HistoryConfig { dir: Some(history.clone()), ..Default::default() },
            ..Config::default()
        };
        let live =
            through_json_lines(archived, out, "simulator", &mut simulated(sim(scenario), opts.clone()));
        assert!(live.0.len() >= 3 && !live.1.is_empty(), "{scenario}: a real incident");

        // The same scenario as an NDJSON file.
        let file = out.join("input.ndjson");
        let lines: Vec<String> =
            sim(scenario).map(|r| devloom::simulator::to_ndjson_line(&r).unwrap()).collect();
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        let files =
            through_json_lines(Config::default(), out, "files", &mut Files::open(&[&file], &opts).unwrap());
        assert_eq!(files, live, "{scenario}: files = simulator");

        // The archive the simulator run wrote, replayed.
        let mut replay = Replay::open(&history, &Selection::default(), false).unwrap();
        let replayed = through_json_lines(Config::default(), out, "replay", &mut replay);
        assert_eq!(replayed, live, "{scenario}: replay = simulator");

        // Kafka topics, through `devloom run` and the Kafka sink.
        publish_records(&s.kafka, sim(scenario), None, false).unwrap();
        let (config, kafka) = s.config("k");
        let log = out.join("k.log");
        let child = spawn(&config, &log);
        let impact = consume(&brokers, &kafka.topics.impact, resolved, "the resolved map", &log);
        let final_list = |m: &OwnedMessage| {
            serde_json::from_slice::<CandidateList>(m.payload().unwrap())
                .is_ok_and(|l| l.status == IncidentStatus::Resolved)
        };
        let lists =
            consume(&brokers, &kafka.topics.candidates, |ms| ms.iter().any(final_list), "lists", &log);
        let all_plans = |ms: &[OwnedMessage]| ms.len() >= live.2.len();
        let plans = consume(&brokers, &kafka.topics.remediations, all_plans, "remediations", &log);
        let all_drafts = |ms: &[OwnedMessage]| ms.len() >= live.3.len();
        let drafts = consume(&brokers, &kafka.topics.postmortems, all_drafts, "post-mortems", &log);
        terminate(child);
        let payloads = |ms: &[OwnedMessage]| -> Vec<String> {
            ms.iter().map(|m| without_stamps(m.payload().unwrap())).collect()
        };
        assert_eq!(live.3.len(), 1, "{scenario}: one draft, on resolve");
        assert_eq!(
            (payloads(&impact), payloads(&lists), payloads(&plans), payloads(&drafts)),
            live,
            "{scenario}: Kafka = simulator"
        );
    }
}

#[test]
fn a_hostile_stream_on_the_topics_changes_no_map_and_every_bad_message_is_a_dead_letter() {
    let Some(brokers) = env_or_skip("KAFKA_TEST_BROKERS") else { return };
    let s = setup("hostile", &brokers);
    let records: Vec<_> = sim("regression").collect();
    // Every kind of the file test but the oversized line (past the producer's own limit),
    // each on the topic it looks meant for, published in its place in the stream (a
    // partition is read in offset order).
    let bad: Vec<_> = bad_records::bad_records()
        .into_iter()
        .filter(|(kind, ..)| *kind != "line over the record limit")
        .collect();
    let t = &s.kafka.topics;
    let p = producer(&s.kafka).unwrap();
    let every = records.len() / (bad.len() + 1);
    for (j, chunk) in records.chunks(every).enumerate() {
        publish_records(&s.kafka, chunk.iter().cloned(), None, false).unwrap();
        let Some((kind, bytes, _)) = bad.get(j) else { continue };
        let topic = match *kind {
            k if k.contains("span") || k.contains("OTLP") || k == "random bytes" => &t.traces,
            k if k.contains("deploy") => &t.deploys,
            k if k.contains("cause") => &t.causes,
            _ => &t.alerts,
        };
        let timestamp = (chunk.last().unwrap().time_ns / 1_000_000) as i64 + 1;
        send(&p, BaseRecord::<[u8], [u8]>::to(topic).payload(bytes.as_slice()).timestamp(timestamp)).unwrap();
        p.flush(Duration::from_secs(30)).unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let (config, kafka) = s.config("a");
    let log = s.dir.path().join("a.log");
    let child = spawn(&config, &log);
    let impact = consume(&brokers, &kafka.topics.impact, resolved, "the resolved map", &log);
    let dead = consume(&brokers, &t.deadletter, |m| m.len() >= bad.len(), "every bad message", &log);
    terminate(child);
    let without_notes = |m: ImpactMap| ImpactMap { data_quality: None, ..m };
    let maps: Vec<ImpactMap> = maps(&impact).into_iter().map(without_notes).collect();
    assert_eq!(maps, embedded("regression").0, "the maps of the clean stream");
    assert_eq!(dead.len(), bad.len(), "one dead letter per bad message");
    let from_topics = dead.iter().filter(|m| header(m, "devloom.source.offset").is_some()).count();
    assert_eq!(
        from_topics,
        bad.len() - 3,
        "all but the three the event-time guard refuses name their offset"
    );
    assert!(dead.iter().all(|m| header(m, "devloom.error.reason").is_some_and(|r| !r.is_empty())));
}

/// With brokers, a receiver produces what it was sent to the input topic and answers only
/// once the broker acknowledged: the message is on the topic when the 2xx arrives. A
/// malformed payload is answered 400 and goes to the dead-letter topic with the reason.
#[test]
fn receivers_produce_to_the_input_topics_before_answering() {
    let Some(brokers) = env_or_skip("KAFKA_TEST_BROKERS") else { return };
    let s = setup("receivers", &brokers);
    let (config, kafka) = s.config("r");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "[receivers]\nenabled = true\notlp_http_listen = \"127.0.0.1:0\"\notlp_grpc_listen = \"\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let log = s.dir.path().join("r.log");
    let child = spawn(&config, &log);
    let address = |prefix: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(url) = text.lines().find_map(|l| l.strip_prefix(prefix)) {
                return url.split("/v1/").next().unwrap().to_string();
            }
            assert!(Instant::now() < deadline, "no {prefix:?} in:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let webhooks = address("devloom: receiving webhooks on ");
    let otlp = address("devloom: receiving OTLP/HTTP on ");
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let watermark = |topic: &str| -> i64 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", unique("w"))
            .create()
            .unwrap();
        (0..3).map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap().1).sum()
    };

    // The scenario's first alert and first spans: times close enough for the event-time
    // guard to take both.
    let first = |expect| sim("regression").find(|r| r.expect == expect).unwrap().payload;
    let payload = first(devloom_schemas::codec::Expect::Alerts);
    let response = agent
        .post(format!("{webhooks}/v1/receivers/alertmanager"))
        .header("content-type", "application/json")
        .send(&payload[..])
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(watermark(&kafka.topics.alerts), 1, "on the topic when the 2xx arrived");

    let spans = first(devloom_schemas::codec::Expect::Traces);
    let response = agent
        .post(format!("{otlp}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .send(&spans[..])
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(watermark(&kafka.topics.traces), 1);

    let mut response = agent
        .post(format!("{webhooks}/v1/receivers/alertmanager"))
        .header("content-type", "application/json")
        .send(&br#"{"version":"4","alerts":"none"}"#[..])
        .unwrap();
    assert_eq!(response.status(), 400, "{}", response.body_mut().read_to_string().unwrap());
    assert_eq!(watermark(&kafka.topics.deadletter), 1);

    let catalog =
        "apiVersion: devloom.dev/v1\nkind: Catalog\ndependencies: [{caller: payments, callee: ledger}]\n";
    let response = agent
        .post(format!("{webhooks}/v1/receivers/catalog?source=finance"))
        .header("content-type", "application/yaml")
        .send(catalog.as_bytes())
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(watermark(&kafka.topics.catalog), 1);
    terminate(child);
    let snapshots = consume(&brokers, &kafka.topics.catalog, |m| !m.is_empty(), "the catalog", &log);
    assert_eq!(snapshots[0].key(), Some("finance".as_bytes()), "the source is the key");
    assert_eq!(snapshots[0].payload(), Some(catalog.as_bytes()));

    let alerts = consume(&brokers, &kafka.topics.alerts, |m| !m.is_empty(), "the webhook", &log);
    assert_eq!(alerts[0].payload(), Some(&payload[..]), "the original payload");
    assert_eq!(header(&alerts[0], "content-type"), Some("application/json"), "headers kept");
    assert_eq!(header(&alerts[0], "ce_specversion"), Some("1.0"));
    assert_eq!(header(&alerts[0], "ce_source"), Some("/devloom/receivers/alertmanager"));
    assert_eq!(header(&alerts[0], "ce_type"), Some("dev.devloom.received.alertmanager"));
    let traces = consume(&brokers, &kafka.topics.traces, |m| !m.is_empty(), "the export", &log);
    assert_eq!(traces[0].payload(), Some(&spans[..]));
    let dead = consume(&brokers, &kafka.topics.deadletter, |m| !m.is_empty(), "the dead letter", &log);
    assert!(
        header(&dead[0], "devloom.error.reason")
            .unwrap()
            .starts_with("Alertmanager webhook v4: invalid at alerts")
    );
    assert_eq!(header(&dead[0], "devloom.source"), Some("POST /v1/receivers/alertmanager"));
}
