//! Replay throughput from the Parquet archive: simulated shop traffic (with the
//! db-latency incident) is archived, then `devloom replay`'s code path reads it back
//! with DataFusion and runs every operator and the scorer over it.
//!
//! `cargo run --release -p devloom-benches --bin replay -- --seconds 120 --requests-per-s 2000`

use std::time::{Duration, Instant};

use clap::Parser;
use devloom::core::Pipeline;
use devloom::history::replay::{Selection, replay};
use devloom::history::{ArchiveConfig, ArchiveWriter};
use devloom::simulator::Scenario;
use devloom::sinks::Collected;
use devloom_benches::records;
use devloom_schemas::codec::{DecodeOptions, Message, decode};

// Spans are allocated on the reader thread and freed on the operator thread; glibc's
// allocator handles that pattern poorly, mimalloc well (as in the `devloom` binary).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Archive, then replay.
#[derive(Parser)]
struct Args {
    /// Event-time seconds of traffic (the db-latency incident needs at least 720).
    #[arg(long, default_value_t = 720)]
    seconds: u64,
    /// Simulated requests per event-time second (each ~17 spans).
    #[arg(long, default_value_t = 300.0)]
    requests_per_s: f64,
    /// Where the archive goes (default: a temporary directory, removed afterwards).
    #[arg(long)]
    history: Option<std::path::PathBuf>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let temp = tempfile::tempdir()?;
    let dir = args.history.clone().unwrap_or_else(|| temp.path().join("history"));
    let mut scenario = Scenario::db_latency();
    scenario.duration_s = args.seconds;
    let mut events = Vec::new();
    for r in records(scenario, args.requests_per_s, 42, 1000) {
        let message =
            Message { payload: &r.payload, headers: &[], fallback_time_ns: Some(r.time_ns), key: None };
        decode(&message, r.expect, &DecodeOptions::default(), &mut events)?;
    }
    let config = ArchiveConfig {
        dir: dir.clone(),
        max_file_bytes: 128 << 20,
        max_file_age: Duration::from_secs(3600),
    };
    let written = Instant::now();
    let mut archive = ArchiveWriter::open(config, None, true)?;
    for e in &events {
        archive.append_event(e)?;
    }
    archive.checkpoint()?;
    drop(archive);
    let write_s = written.elapsed().as_secs_f64();
    let bytes: u64 =
        devloom::history::scan(&dir)?.iter().map(|f| std::fs::metadata(&f.path).map_or(0, |m| m.len())).sum();
    println!(
        "archived {} events in {write_s:.2} s ({:.0} events/s), {:.1} MiB of Parquet",
        events.len(),
        events.len() as f64 / write_s,
        bytes as f64 / (1 << 20) as f64
    );

    let mut pipeline = Pipeline::new(devloom::build::engine(&Default::default())?, Collected::default());
    let stats = replay(&dir, &Selection::default(), &mut pipeline, false)?;
    let (out, _) = pipeline.finish()?;
    println!(
        "replayed {} events ({} spans) in {:.2} s: {:.0} events/s, {:.0} spans/s → {} impact maps, {} candidate lists",
        stats.events,
        stats.spans,
        stats.elapsed.as_secs_f64(),
        stats.events_per_s(),
        stats.spans as f64 / stats.elapsed.as_secs_f64(),
        out.maps.len(),
        out.candidates.len()
    );
    Ok(())
}
