//! Where a received payload goes, and what the sender is told.
//!
//! Every payload is decoded first, with the codecs every input uses, so the answer can
//! name what was wrong. Then:
//!
//! - **embedded**: the decoded record (or its dead letter) joins a bounded queue the
//!   operator loop reads ([`crate::sources::received`]). A full queue makes the receiver
//!   wait `queue_wait_ms`, then answer 503 with `Retry-After`: memory never grows with
//!   a sender's rate.
//! - **with brokers**: the original payload (headers kept) is produced to the input
//!   topic of what it holds, and the answer waits for the broker's acknowledgement; a
//!   payload that does not decode goes to the dead-letter topic instead, with the reason
//!   in its headers, as the pipeline's own dead letters do.

use std::sync::mpsc::{Receiver as QueueReceiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use devloom_schemas::Event;
use devloom_schemas::codec::DecodeOptions;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};

use crate::config::Config;
use crate::core::{Input, RawRecord, ReadStamp, RejectKind, Rejected, decode_record};
use crate::kafka::KafkaRunError;
use crate::kafka::client::{client_config, kafka_err};
use crate::kafka::sink::dead_letter_headers;

/// What became of a received payload.
#[derive(Debug, PartialEq)]
pub enum Taken {
    /// Decoded and handed on: this many events; `partial` when some items were invalid
    /// (they were dead-lettered, the rest processed).
    Accepted {
        /// Events decoded.
        events: usize,
        /// Why some items were not.
        partial: Option<String>,
        /// The first alert's fingerprint (PagerDuty's `dedup_key`), if it held one.
        alert_key: Option<String>,
    },
    /// Not decodable: the decoder's message. It was dead-lettered.
    Rejected(String),
    /// Devloom is behind (or stopping): the sender should retry later.
    Busy(String),
    /// The broker refused the message.
    Failed(String),
}

/// The receivers' side of the pipeline.
pub struct Intake {
    decode: DecodeOptions,
    target: Target,
}

enum Target {
    Pipeline {
        tx: SyncSender<Input>,
        /// Set when the run stops: nothing more is accepted, so the queue can be drained
        /// to the last record a sender was told was taken.
        closed: Arc<RwLock<bool>>,
        wait: Duration,
    },
    Kafka {
        producer: ThreadedProducer<AckContext>,
        topics: Topics,
        ack_timeout: Duration,
    },
}

struct Topics {
    traces: String,
    alerts: String,
    deploys: String,
    causes: String,
    catalog: String,
    deadletter: String,
}

/// The reading end of the embedded queue.
pub struct Queue {
    /// Received inputs, in the order they were accepted.
    pub rx: QueueReceiver<Input>,
    /// Closes the intake (see [`Queue::close`]).
    closed: Arc<RwLock<bool>>,
}

impl Queue {
    /// Refuses every later request (503), so what is in the queue is all there is.
    pub fn close(&self) {
        *self.closed.write().unwrap_or_else(PoisonError::into_inner) = true;
    }
}

impl Intake {
    /// Receivers feeding the embedded pipeline, and the queue it reads.
    pub fn embedded(config: &Config) -> (Arc<Self>, Queue) {
        let (tx, rx) = sync_channel(config.receivers.queue);
        let closed = Arc::new(RwLock::new(false));
        let wait = Duration::from_millis(config.receivers.queue_wait_ms);
        let target = Target::Pipeline { tx, closed: closed.clone(), wait };
        (Arc::new(Self { decode: config.decode.options(), target }), Queue { rx, closed })
    }

    /// Receivers producing to the input topics of `[kafka]`.
    pub fn kafka(config: &Config) -> Result<Arc<Self>, KafkaRunError> {
        let k = &config.kafka;
        let mut c = client_config(k)?;
        c.set("enable.idempotence", "true").set("acks", "all");
        let producer =
            c.create_with_context(AckContext).map_err(kafka_err("creating the receivers' producer"))?;
        let t = &k.topics;
        let topics = Topics {
            traces: t.traces.clone(),
            alerts: t.alerts.clone(),
            deploys: t.deploys.clone(),
            causes: t.causes.clone(),
            catalog: t.catalog.clone(),
            deadletter: t.deadletter.clone(),
        };
        let ack_timeout = Duration::from_millis(config.receivers.ack_timeout_ms);
        Ok(Arc::new(Self {
            decode: config.decode.options(),
            target: Target::Kafka { producer, topics, ack_timeout },
        }))
    }

    /// Decodes `record` and hands it on.
    pub async fn take(&self, record: RawRecord) -> Taken {
        match &self.target {
            Target::Pipeline { tx, closed, wait } => {
                let read = ReadStamp::now();
                let decoded = decode_record(record, &self.decode);
                let taken = outcome(&decoded);
                enqueue(tx, closed, *wait, Input::decoded(decoded, read))
                    .await
                    .map_or_else(Taken::Busy, |()| taken)
            }
            Target::Kafka { producer, topics, ack_timeout } => {
                let decoded = decode_record(record.clone(), &self.decode);
                let taken = outcome(&decoded);
                let sent = match &decoded {
                    Err(rejected) if rejected.kind != RejectKind::Partial => {
                        let headers = dead_letter_headers(rejected);
                        let message = (rejected.record.key.as_deref(), rejected.record.payload.as_slice());
                        produce(producer, &topics.deadletter, message, headers, *ack_timeout).await
                    }
                    _ => {
                        let events = match &decoded {
                            Ok(events) => events.as_slice(),
                            Err(rejected) => rejected.salvaged.as_slice(),
                        };
                        let Some(topic) = events.first().map(|e| topics.of(e)) else {
                            return taken; // nothing in it (a pending status): nothing to forward
                        };
                        let mut headers = OwnedHeaders::new();
                        for (k, v) in &record.headers {
                            headers = headers.insert(Header { key: k.as_str(), value: Some(v.as_slice()) });
                        }
                        let message = (record.key.as_deref(), record.payload.as_slice());
                        produce(producer, topic, message, headers, *ack_timeout).await
                    }
                };
                sent.map_or_else(|e| e, |()| taken)
            }
        }
    }
}

impl Topics {
    fn of(&self, event: &Event) -> &str {
        match event {
            Event::Span(_) => &self.traces,
            Event::Alert(_) => &self.alerts,
            Event::Deploy(_) => &self.deploys,
            Event::Cause(_) => &self.causes,
            Event::Catalog(_) => &self.catalog,
        }
    }
}

fn outcome(decoded: &Result<Vec<Event>, Box<Rejected>>) -> Taken {
    let alert_key = |events: &[Event]| {
        events.iter().find_map(|e| match e {
            Event::Alert(a) => Some(a.fingerprint.clone()),
            _ => None,
        })
    };
    match decoded {
        Ok(events) => Taken::Accepted { events: events.len(), partial: None, alert_key: alert_key(events) },
        Err(r) if r.kind == RejectKind::Partial => Taken::Accepted {
            events: r.salvaged.len(),
            partial: Some(r.reason.clone()),
            alert_key: alert_key(&r.salvaged),
        },
        Err(r) => Taken::Rejected(r.reason.clone()),
    }
}

/// Puts `input` on the queue, waiting up to `wait` for room.
async fn enqueue(
    tx: &SyncSender<Input>,
    closed: &RwLock<bool>,
    wait: Duration,
    mut input: Input,
) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    loop {
        {
            let closed = closed.read().unwrap_or_else(PoisonError::into_inner);
            if *closed {
                return Err("Devloom is stopping and takes nothing more".into());
            }
            match tx.try_send(input) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(back)) => input = back,
                Err(TrySendError::Disconnected(_)) => return Err("the pipeline has stopped".into()),
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "Devloom is behind: its input queue stayed full for {} ms (receivers.queue, receivers.queue_wait_ms)",
                wait.as_millis()
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Produces one message and waits for the broker's acknowledgement.
async fn produce(
    producer: &ThreadedProducer<AckContext>,
    topic: &str,
    (key, payload): (Option<&[u8]>, &[u8]),
    headers: OwnedHeaders,
    ack_timeout: Duration,
) -> Result<(), Taken> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut record = BaseRecord::with_opaque_to(topic, Box::new(tx)).payload(payload).headers(headers);
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Err((e, _)) = producer.send::<[u8], [u8]>(record) {
        return Err(match e {
            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                Taken::Busy("the producer's queue is full: the broker is behind".into())
            }
            e => Taken::Failed(format!("producing to {topic}: {e}")),
        });
    }
    match tokio::time::timeout(ack_timeout, rx).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(Taken::Failed(format!("{topic} refused the message: {e}"))),
        Ok(Err(_)) => Err(Taken::Failed("the producer dropped the message".into())),
        Err(_) => Err(Taken::Busy(format!(
            "no acknowledgement from {topic} within {} ms (receivers.ack_timeout_ms)",
            ack_timeout.as_millis()
        ))),
    }
}

/// Hands each delivery report to the request waiting for it.
pub struct AckContext;

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<tokio::sync::oneshot::Sender<Result<(), String>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiting: Self::DeliveryOpaque) {
        let _ = waiting.send(result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string()));
    }
}
