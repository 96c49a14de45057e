//! A flood of distinct service names into the service graph: how many it holds, how
//! many it evicted, how long it took, and the peak memory of the process.
//!
//! `cargo run --release -p devloom-benches --bin services -- --services 1000000`

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use devloom_operators::{
    AggregateBuckets, CallAggregator, GraphConfig, Observation, Operator, ServiceGraph, ServiceId,
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Flood settings.
#[derive(Parser)]
struct Args {
    /// Distinct service names, each calling one shared hub once.
    #[arg(long, default_value_t = 1_000_000)]
    services: u64,
    /// `engine.graph.max_services` (default: the built-in default).
    #[arg(long)]
    max_services: Option<usize>,
    /// New names per event-time second (the graph re-evaluates health once a second,
    /// over every node it holds).
    #[arg(long, default_value_t = 10_000)]
    per_second: u64,
}

fn id(name: &str) -> ServiceId {
    ServiceId { name: Arc::from(name), region: None, virtual_node: false }
}

fn main() {
    let args = Args::parse();
    let mut config = GraphConfig::default();
    if let Some(max) = args.max_services {
        config.max_services = max;
    }
    let max = config.max_services;
    let mut graph = ServiceGraph::new(config);
    let hub = id("hub");
    let mut out = Vec::new();
    let mut calls = CallAggregator::new(AggregateBuckets::default());
    let mut handed = Vec::new();
    let started = Instant::now();
    for i in 0..args.services {
        let time_ns = 1_795_770_000_000_000_000 + i * 1_000_000_000 / args.per_second.max(1);
        let caller = id(&format!("svc-{i}"));
        let call = Observation::Call {
            caller,
            callee: hub.clone(),
            time_ns,
            latency_ns: 5_000_000,
            server_ns: 5_000_000,
            failed: false,
            asynchronous: false,
        };
        calls.on_event(&(), &call, &mut handed);
        calls.on_watermark(&(), time_ns, &mut handed);
        for a in handed.drain(..) {
            graph.on_event(&(), &a, &mut out);
        }
        graph.on_watermark(&(), time_ns, &mut out);
    }
    let elapsed = started.elapsed();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status.lines().find(|l| l.starts_with("VmHWM")).unwrap_or("VmHWM: ?");
    println!(
        "{} distinct services ({}/s of event time), max_services {max}: {} held, {} evicted, {:.2} s ({:.0} services/s); peak RSS {}",
        args.services,
        args.per_second,
        graph.size().0,
        graph.evicted(),
        elapsed.as_secs_f64(),
        args.services as f64 / elapsed.as_secs_f64(),
        peak.trim_start_matches("VmHWM:").trim()
    );
}
