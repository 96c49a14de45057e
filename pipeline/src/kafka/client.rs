//! Kafka clients as Devloom configures them: `bootstrap.servers` plus the user's
//! pass-through properties, an idempotent `acks=all` producer, topic creation.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use devloom_schemas::codec::Expect;
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::KafkaRunError;
use crate::config::KafkaConfig;

/// Settings Devloom owns because delivery guarantees depend on them.
const RESERVED: [&str; 4] = ["enable.auto.commit", "enable.idempotence", "acks", "group.id"];

pub(crate) fn kafka_err(context: impl Into<String>) -> impl FnOnce(KafkaError) -> KafkaRunError {
    let context = context.into();
    move |source| KafkaRunError::Kafka { context, source }
}

/// Fails at once when no bootstrap server accepts a connection, naming each address
/// and why, instead of librdkafka retrying in silence until a timeout; then asks the
/// cluster for the metadata of `topic` (10 s), so a listener that is not Kafka, or
/// refuses the client's security settings, is named too.
pub fn check_brokers(k: &KafkaConfig, topic: &str) -> Result<(), KafkaRunError> {
    let unreachable = |reason: String| KafkaRunError::Unreachable { brokers: k.brokers.clone(), reason };
    let mut reasons = Vec::new();
    let mut connected = false;
    for server in k.brokers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let address = server.rsplit_once("://").map_or(server, |(_, a)| a);
        let resolved = match address.to_socket_addrs() {
            Ok(mut addrs) => addrs.next(),
            Err(e) => {
                reasons.push(format!("{address}: {e}"));
                continue;
            }
        };
        match resolved.map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3))) {
            Some(Ok(_)) => connected = true,
            Some(Err(e)) => reasons.push(format!("{address}: {e}")),
            None => reasons.push(format!("{address}: no address")),
        }
    }
    if !connected {
        return Err(unreachable(if reasons.is_empty() {
            "no address given".into()
        } else {
            reasons.join("; ")
        }));
    }
    let consumer: BaseConsumer = client_config(k)?.create().map_err(kafka_err("creating a client"))?;
    consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).map_err(|e| unreachable(e.to_string()))?;
    Ok(())
}

/// `bootstrap.servers` plus the pass-through properties.
pub fn client_config(k: &KafkaConfig) -> Result<ClientConfig, KafkaRunError> {
    if let Some(key) = k.properties.keys().find(|key| RESERVED.contains(&key.as_str())) {
        return Err(KafkaRunError::Reserved(key.clone()));
    }
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    Ok(c)
}

/// The input topics with what each accepts, in merge-tiebreak order: a catalog first,
/// so it is in force for what arrived in the same millisecond.
pub fn input_topics(k: &KafkaConfig) -> Vec<(String, Expect)> {
    let t = &k.topics;
    let mut topics = vec![(t.catalog.clone(), Expect::Catalog), (t.traces.clone(), Expect::Traces)];
    if !t.otlp_spans.is_empty() {
        topics.push((t.otlp_spans.clone(), Expect::Traces));
    }
    topics.push((t.alerts.clone(), Expect::Alerts));
    topics.push((t.deploys.clone(), Expect::Deploys));
    topics.push((t.causes.clone(), Expect::Causes));
    topics
}

/// Creates the topics that do not exist yet, with `[kafka] partitions` each.
pub fn create_topics(k: &KafkaConfig, names: &[&str]) -> Result<(), KafkaRunError> {
    let sized: Vec<(&str, i32)> = names.iter().map(|n| (*n, k.partitions)).collect();
    create_sized_topics(k, &sized)
}

/// Creates the topics that do not exist yet, each with its number of partitions.
pub fn create_sized_topics(k: &KafkaConfig, names: &[(&str, i32)]) -> Result<(), KafkaRunError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(k)?.create().map_err(kafka_err("creating the admin client"))?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|(n, partitions)| NewTopic::new(n, *partitions, TopicReplication::Fixed(k.replication)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures_executor::block_on(admin.create_topics(&topics, &options))
        .map_err(kafka_err("creating topics"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaRunError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}

/// Counts failed deliveries (the producer retries on its own; a failure is final).
#[derive(Default)]
pub struct DeliveryContext {
    failed: AtomicU64,
    last: Mutex<String>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut last) = self.last.lock() {
                *last = e.to_string();
            }
        }
    }
}

/// An idempotent producer with `acks=all`.
pub type DevloomProducer = ThreadedProducer<DeliveryContext>;

/// Creates the producer.
pub fn producer(k: &KafkaConfig) -> Result<DevloomProducer, KafkaRunError> {
    let mut c = client_config(k)?;
    c.set("enable.idempotence", "true").set("acks", "all");
    c.create_with_context(DeliveryContext::default()).map_err(kafka_err("creating the producer"))
}

/// Sends one record, waiting while the local queue is full.
pub fn send(producer: &DevloomProducer, mut record: BaseRecord<'_, [u8], [u8]>) -> Result<(), KafkaRunError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(kafka_err("producing")(e)),
        }
    }
}

/// Flushes the producer and fails if any message could not be delivered.
pub fn flush(producer: &DevloomProducer) -> Result<(), KafkaRunError> {
    producer.flush(Duration::from_secs(60)).map_err(kafka_err("flushing the producer"))?;
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::SeqCst);
    if failed > 0 {
        let last = ctx.last.lock().map(|l| l.clone()).unwrap_or_default();
        return Err(KafkaRunError::Delivery { failed, last });
    }
    Ok(())
}
