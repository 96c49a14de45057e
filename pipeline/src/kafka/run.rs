//! The Kafka run loop: the pipeline fed by [`KafkaSource`], publishing through
//! [`KafkaSink`] (and the archive when configured), checkpointed every
//! `[checkpoint] interval_ms` or `max_messages`, until SIGTERM / SIGINT. As
//! [`KafkaRole::Graph`] the same loop runs everything after pairing, fed by the pairing
//! instances' records instead of the traces, once this instance is the active one.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::KeyValue;
use opentelemetry::metrics::ObservableGauge;
use rdkafka::consumer::CommitMode;
use std::time::{Duration, Instant};

use super::assignment::split_key;
use super::checkpoint::{Checkpoint, CheckpointStore, Writer, copied_state, duration_histogram};
use super::client::create_sized_topics;
use super::leader::Leadership;
use super::source::Scope;
use super::{KafkaRole, KafkaRunError, KafkaSink, KafkaSource, check_brokers, create_topics, input_topics};
use crate::build::{self, ArchiveCommits};
use crate::config::Config;
use crate::core::{Input, Pipeline, RunSummary, Sink, Source};
use crate::http::Server;
use crate::receivers::Intake;
use crate::receivers::webhooks::Receivers;
use devloom_operators::Role;

/// Runs `role` ([`KafkaRole::All`] or [`KafkaRole::Graph`]) until `stop` is set, then
/// checkpoints and returns; `None` when stopped while a graph standby.
pub fn run(config: &Config, stop: &AtomicBool, role: KafkaRole) -> Result<Option<RunSummary>, KafkaRunError> {
    let k = &config.kafka;
    check_brokers(k, &k.topics.traces)?;
    if k.create_topics {
        let inputs: Vec<String> = input_topics(k).into_iter().map(|(t, _)| t).collect();
        create_topics(k, &inputs.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    let graph = role == KafkaRole::Graph;
    let mut state_dir = config.checkpoint.state_dir.clone();
    let mut leadership = match graph {
        true => {
            if config.history.archive().is_some() {
                return Err(KafkaRunError::Role(
                    "the history archive needs every span: archive with a --role all instance in its own group, not the graph role".into(),
                ));
            }
            if k.create_topics {
                create_sized_topics(k, &[(&k.topics.calls, 1)])?;
            }
            state_dir = state_dir.join("graph");
            match Leadership::acquire(k, stop)? {
                Some(l) => Some(l),
                None => return Ok(None),
            }
        }
        false => None,
    };
    let store = CheckpointStore::new(&state_dir);
    let checkpoint = store.load()?;
    let mut writer = Writer::start(store)?;
    let commits = ArchiveCommits::AtCheckpoint(checkpoint.as_ref().and_then(|c| c.archive_seq));
    let mut pipeline = build::pipeline(config, KafkaSink::open(config)?, commits)?;
    if graph {
        let from =
            if checkpoint.is_some() { "the latest checkpoint" } else { "the start (no checkpoint yet)" };
        eprintln!("devloom: active graph instance, resuming from {from}");
        pipeline = pipeline.with_role(Role::Graph);
    }
    // Receivers produce to the input topics this loop consumes: one reader, exact replay.
    let receivers = match config.receivers.enabled {
        true => Some(Receivers::new(config.receivers.clone(), Intake::kafka(config)?)),
        false => None,
    };
    let server = Server::start(config, receivers)?;
    if let Some(server) = &server {
        eprintln!("devloom: HTTP API on http://{}", server.addr());
        if config.receivers.enabled {
            crate::receivers::print_addresses(server);
        }
        // Ready only while checkpoints keep coming: three intervals without one is stuck.
        server
            .state()
            .require_checkpoints(Duration::from_millis(config.checkpoint.interval_ms.saturating_mul(3)));
        pipeline = server.attach(pipeline);
    }
    let checkpoint_duration = duration_histogram();
    let mut offsets = Default::default();
    if let Some(c) = checkpoint {
        tracing::info!(offsets = ?c.offsets, "restored checkpoint");
        pipeline.restore(c.engine);
        offsets = c.offsets;
    }
    let scope = if graph { Scope::Graph } else { Scope::All };
    let mut source = KafkaSource::open(k, config.decode.options(), offsets, stop, scope)?;
    let lag = Arc::new(Mutex::new(Vec::new()));
    let _lag_gauge = lag_gauge(&lag, &k.group_id);
    let mut lag_at = Instant::now();
    let mut since_checkpoint = 0u64;
    let mut last_checkpoint = Instant::now();
    let mut leader_at = Instant::now();
    let interval = Duration::from_millis(config.checkpoint.interval_ms);
    while let Some(input) = source.next_input() {
        let input = input?;
        since_checkpoint += u64::from(!matches!(input, Input::Idle));
        pipeline.push(input)?;
        if lag_at.elapsed() >= LAG_EVERY {
            *lag.lock().unwrap_or_else(PoisonError::into_inner) = source.lag();
            lag_at = Instant::now();
        }
        if let Some(l) = &mut leadership
            && leader_at.elapsed() >= LEADER_EVERY
        {
            if !l.keep()? {
                return Err(KafkaRunError::Role(
                    "no longer the active graph instance (another one claimed the lease)".into(),
                ));
            }
            leader_at = Instant::now();
        }
        if let Some(offsets) = writer.finished()? {
            source.commit_offsets(&offsets, CommitMode::Async)?;
            checkpoint_duration.record(last_checkpoint.elapsed().as_secs_f64(), &[]);
        }
        if since_checkpoint > 0
            && !writer.busy()
            && (since_checkpoint >= config.checkpoint.max_messages || last_checkpoint.elapsed() >= interval)
        {
            last_checkpoint = Instant::now();
            writer.save(take_checkpoint(&source, &mut pipeline)?)?;
            since_checkpoint = 0;
        }
    }
    // Stopping: the checkpoint in flight, then the last one, each committed once durable.
    commit_when_durable(&mut writer, &source)?;
    writer.save(take_checkpoint(&source, &mut pipeline)?)?;
    commit_when_durable(&mut writer, &source)?;
    // Stopped, not at the end of input: no final flush of the operators, so a restart
    // continues exactly where this run left off.
    Ok(Some(pipeline.summary()))
}

/// How often the consumer lag gauge is brought up to date.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// How often the active graph instance reads the lease topic (and beats when due).
const LEADER_EVERY: Duration = Duration::from_millis(100);

/// `devloom.kafka.consumer.lag` per partition, with the messaging semantic conventions'
/// attribute names, read from what the run loop last copied.
fn lag_gauge(lag: &Arc<Mutex<Vec<(String, i64)>>>, group: &str) -> ObservableGauge<i64> {
    let (lag, group) = (Arc::clone(lag), group.to_string());
    opentelemetry::global::meter(crate::telemetry::SCOPE)
        .i64_observable_gauge("devloom.kafka.consumer.lag")
        .with_description("Messages in a partition after the last one Devloom handed to its operators")
        .with_unit("{message}")
        .with_callback(move |observer| {
            for (key, lag) in lag.lock().unwrap_or_else(PoisonError::into_inner).iter() {
                let (topic, partition) = split_key(key);
                observer.observe(
                    *lag,
                    &[
                        KeyValue::new("messaging.system", "kafka"),
                        KeyValue::new("messaging.consumer.group.name", group.clone()),
                        KeyValue::new("messaging.destination.name", topic.to_string()),
                        KeyValue::new("messaging.destination.partition.id", partition.to_string()),
                    ],
                );
            }
        })
        .build()
}

/// Waits for the checkpoint being written, if one is, and commits its offsets.
fn commit_when_durable(writer: &mut Writer, source: &KafkaSource<'_>) -> Result<(), KafkaRunError> {
    if let Some(offsets) = writer.wait()? {
        source.commit_offsets(&offsets, CommitMode::Sync)?;
    }
    Ok(())
}

/// A checkpoint of everything handed to the operators so far, once their outputs are
/// durable (a checkpoint must never cover input whose outputs are not).
fn take_checkpoint<S: Sink>(
    source: &KafkaSource<'_>,
    pipeline: &mut Pipeline<S>,
) -> Result<Checkpoint, KafkaRunError> {
    let archive_seq = pipeline.commit()?;
    let state = copied_state(|| pipeline.snapshot());
    Ok(Checkpoint::new(source.positions().clone(), state, archive_seq))
}
