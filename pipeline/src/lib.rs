//! Devloom's runtime, in rooms that show the architecture:
//!
//! - [`core`]: the operator loop ([`core::Pipeline`]) between one way in
//!   ([`core::Source`], decoded in [`core::decode`]) and one way out
//!   ([`core::Output`] → [`core::Sink`]);
//! - [`sources`]: files, stdin, the simulator; [`sinks`]: JSON lines, the terminal,
//!   collected outputs, and the routing table of output kinds;
//! - [`kafka`]: Kafka as a source and a sink, with checkpoints; [`history`]: the Parquet
//!   archive (a sink), replay (a source), queries and import;
//! - [`http`]: the read-only HTTP API, event stream and probes; [`receivers`]: input
//!   over HTTP (webhooks, OTLP); [`telemetry`]: Devloom's own metrics on the
//!   OpenTelemetry SDK;
//! - [`build`]: the pipeline a [`config`] describes; [`cli`]: one file per command;
//! - offline work: [`learning`] (scorer model, training, evaluation) and the
//!   [`simulator`].

pub mod build;
pub mod cli;
pub mod config;
pub mod core;
pub mod gate;
pub mod history;
pub mod http;
pub mod kafka;
pub mod learning;
pub mod receivers;
pub mod simulator;
pub mod sinks;
pub mod sources;
pub mod telemetry;
