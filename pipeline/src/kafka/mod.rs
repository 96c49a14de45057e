//! The Kafka runtime: the same operators as the embedded mode, fed from Kafka topics and
//! publishing to Kafka topics, with nothing lost.
//!
//! - [`source`]: every input partition, decoded on worker threads ([`decode_pool`]) and
//!   merged in event time.
//! - [`sink`]: every output to its topic (CloudEvents binary mode; dead letters with
//!   their original bytes and headers).
//! - [`pairing`] and [`leader`]: the scaled-out roles. Pairing instances share the
//!   traces partitions in a consumer group and publish [`hand_on`] records; graph
//!   instances elect one active instance, which runs [`run`] on those records.
//! - [`run`]: at-least-once. Every N seconds or M messages the producer is flushed, then
//!   operator state and next offsets are checkpointed atomically ([`checkpoint`]), then
//!   the offsets are committed. On restart the checkpoint is restored and messages before
//!   its offsets are skipped; outputs re-emitted after a crash carry the same
//!   `(incident_id, version)` and payload.

pub mod assignment;
pub mod checkpoint;
pub mod client;
pub mod decode_pool;
pub mod hand_on;
pub mod leader;
pub mod merge;
pub mod pairing;
pub mod run;
pub mod sink;
pub mod source;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

pub use checkpoint::CheckpointError;
pub use client::{check_brokers, create_topics, input_topics, producer, send};
pub use run::run;
pub use sink::KafkaSink;
pub use source::KafkaSource;

/// What a `devloom run` instance does in the Kafka runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KafkaRole {
    /// Everything, reading every partition: one instance.
    #[default]
    All,
    /// Span pairing for the traces partitions the consumer group gives it; publishes
    /// call aggregates for the graph role.
    Pairing,
    /// Everything after pairing, from the pairing instances' call aggregates; one
    /// active instance, the others standbys.
    Graph,
}

/// The Kafka runtime failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaRunError {
    /// A client could not be created or a call failed.
    #[error("kafka: {context}: {source}")]
    Kafka {
        /// What was being done.
        context: String,
        /// The client error.
        source: KafkaError,
    },
    /// No bootstrap server answered.
    #[error(
        "no Kafka broker answered at {brokers} ({reason}): check --brokers / [kafka] brokers and that the broker is up"
    )]
    Unreachable {
        /// `bootstrap.servers`.
        brokers: String,
        /// What each address said.
        reason: String,
    },
    /// A topic could not be created.
    #[error("kafka: cannot create topic {topic}: {code}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        code: RDKafkaErrorCode,
    },
    /// Messages could not be delivered; state was not checkpointed past them.
    #[error(
        "kafka: {failed} messages could not be delivered (last error: {last}); stopping without checkpoint"
    )]
    Delivery {
        /// How many.
        failed: u64,
        /// The last error.
        last: String,
    },
    /// A reserved setting was set in `[kafka.properties]`.
    #[error("kafka.properties.{0} is set by Devloom (delivery guarantees depend on it); remove it")]
    Reserved(String),
    /// Checkpoint I/O.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A role cannot run as configured, or stopped being what it was.
    #[error("{0}")]
    Role(String),
    /// Output I/O.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
    /// The pipeline could not be built (scorer model, history archive).
    #[error(transparent)]
    Build(#[from] crate::build::BuildError),
    /// The HTTP API could not start.
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
}
