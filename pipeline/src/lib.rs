//! Devloom's runtime: sources and sinks, the embedded operator loop, the simulator, the
//! terminal rendering and the configuration behind the `devloom` binary.

pub mod checkpoint;
pub mod config;
pub mod decode;
pub mod demo;
pub mod embedded;
pub mod evaluation;
pub mod history;
pub mod input;
pub mod kafka;
pub mod latency;
pub mod output;
pub mod render;
pub mod scoring;
pub mod simulator;
pub mod training;
