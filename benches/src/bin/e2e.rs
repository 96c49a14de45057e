//! End-to-end load harness of the embedded pipeline: simulated OTLP traffic offered at a
//! fixed rate of spans per wall-clock second through decode → pairing → graph → blast
//! radius, with alerts injected under load; reports sustained spans/s and the
//! alert → impact-map latency percentiles.
//!
//! `cargo run --release -p devloom-benches --bin e2e -- --spans-per-s 200000`

use std::time::{Duration, Instant};

use clap::Parser;
use devloom::core::{Origin, Output, Pipeline, RawRecord, Sink};
use devloom::simulator::Scenario;
use devloom::sources::Decoding;
use devloom_benches::{injected_alert, records};
use devloom_schemas::codec::{DecodeOptions, Expect};

// glibc's allocator spends a third of replay time on spans allocated on the reader
// thread and freed on the operator thread; mimalloc handles that pattern well.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Offered-load harness for the embedded pipeline.
#[derive(Parser)]
struct Args {
    /// Offered load in spans per wall-clock second (0: as fast as the pipeline goes).
    #[arg(long, default_value_t = 200_000)]
    spans_per_s: u64,
    /// Event-time seconds of shop traffic to generate up front.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Simulated requests per event-time second (each ~17 spans).
    #[arg(long, default_value_t = 2000.0)]
    requests_per_s: f64,
    /// One OTLP batch per this many event-time milliseconds (the Collector's batch
    /// processor sends at most 8192 spans by default).
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// Inject an alert (alternately firing and resolving) every this many trace batches.
    #[arg(long, default_value_t = 10)]
    alert_every: usize,
    /// Serve the HTTP API with telemetry on a free loopback port while running.
    #[arg(long)]
    http: bool,
    /// With --http: this many clients reading /v1/stream throughout.
    #[arg(long, default_value_t = 0, requires = "http")]
    sse_clients: usize,
}

/// A sink that only counts.
struct Count(u64);

impl Sink for Count {
    fn publish(&mut self, output: &Output) -> std::io::Result<()> {
        self.0 += u64::from(matches!(output, Output::Impact(_)));
        Ok(())
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let generated = Instant::now();
    let traces: Vec<_> = records(Scenario::steady(args.seconds), args.requests_per_s, 7, args.tick_ms)
        .into_iter()
        .filter(|r| r.expect == Expect::Traces)
        .collect();
    // Spans per batch, for pacing, from the fast decoder (not timed).
    let counts: Vec<u64> = traces
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            devloom_schemas::codec::otlp_fast::decode(&r.payload, &mut out)
                .map(|_| out.len() as u64)
                .unwrap_or(0)
        })
        .collect();
    let total: u64 = counts.iter().sum();
    let bytes: usize = traces.iter().map(|r| r.payload.len()).sum();
    eprintln!(
        "generated {} batches, {total} spans, {} MB in {:.1} s",
        traces.len(),
        bytes / 1_000_000,
        generated.elapsed().as_secs_f64()
    );

    let mut feed: Vec<(RawRecord, u64)> = Vec::new();
    let mut alerts = 0u64;
    for (i, (record, spans)) in traces.into_iter().zip(counts).enumerate() {
        let time_ns = record.time_ns;
        feed.push((RawRecord::from(record), spans));
        if let Some(payload) = injected_alert(i, args.alert_every, time_ns) {
            feed.push((RawRecord::new(payload, Expect::Alerts, Origin::Simulator), 0));
            alerts += 1;
        }
    }

    let engine = devloom::build::engine(&Default::default()).map_err(std::io::Error::other)?;
    let mut pipeline = Pipeline::new(engine, Count(0));
    let config = devloom::config::Config {
        http: devloom::http::HttpConfig { listen: "127.0.0.1:0".into(), ..Default::default() },
        ..Default::default()
    };
    let server = if args.http {
        devloom::http::Server::start(&config, None).map_err(std::io::Error::other)?
    } else {
        None
    };
    if let Some(server) = &server {
        pipeline = server.attach(pipeline);
        for _ in 0..args.sse_clients {
            let url = format!("http://{}/v1/stream", server.addr());
            let mut body = ureq::get(url).call().map_err(std::io::Error::other)?.into_body().into_reader();
            std::thread::spawn(move || std::io::copy(&mut body, &mut std::io::sink()));
        }
    }
    let start = Instant::now();
    let rate = args.spans_per_s;
    let mut offered = 0u64;
    let source = feed.into_iter().map(move |(record, spans)| {
        if rate > 0 {
            let due = start + Duration::from_secs_f64(offered as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        offered += spans;
        Ok(record)
    });
    pipeline.run(&mut Decoding::start(source, DecodeOptions::default()))?;
    let (count, summary) = pipeline.finish()?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "offered: {} spans/s ({} spans, {alerts} alerts)",
        if rate > 0 { rate.to_string() } else { "unlimited".into() },
        total
    );
    println!("sustained: {:.0} spans/s over {secs:.2} s", summary.engine.spans as f64 / secs);
    println!("impact maps: {}; dead letters: {}", count.0, summary.dead_letters);
    if let Some(l) = summary.latency {
        println!(
            "alert → map latency: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} maps); the first map {:.3} ms",
            l.p50_ms,
            l.p99_ms,
            l.max_ms,
            l.count,
            summary.first_map_ms.unwrap_or_default()
        );
    }
    Ok(())
}
