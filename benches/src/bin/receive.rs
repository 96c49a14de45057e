//! Load harness of the OTLP/HTTP receiver: clients post simulated
//! `ExportTraceServiceRequest`s (protobuf) to `POST /v1/traces` as fast as it answers;
//! reports spans/s on the wall clock and per CPU-second of the receiver's thread (one
//! core: the listener serves from a single-threaded runtime).
//!
//! Embedded, received records are decoded into the intake's queue, which a thread here
//! drains (the operators' cost is `e2e`'s to measure). With `--brokers`, each request is
//! produced to the traces topic and answered after the broker's acknowledgement.
//!
//! `cargo run --release -p devloom-benches --bin receive -- --seconds 10 --connections 8`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use devloom::config::{Config, KafkaConfig, TopicsConfig};
use devloom::core::Input;
use devloom::http::{HttpConfig, Server, TelemetryConfig};
use devloom::receivers::webhooks::Receivers;
use devloom::receivers::{Intake, ReceiversConfig};
use devloom::simulator::Scenario;
use devloom_benches::records;
use devloom_schemas::codec::Expect;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// OTLP/HTTP receiver load harness.
#[derive(Parser)]
struct Args {
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Clients posting concurrently.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Simulated requests per event-time second; with --tick-ms this sets the spans per
    /// request (300 × ~17 spans × 0.1 s ≈ 510, the SDK batch processor's 512).
    #[arg(long, default_value_t = 300.0)]
    requests_per_s: f64,
    /// One export request per this many event-time milliseconds.
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// Forward to Kafka here (topics `<prefix>.traces` etc., created if missing).
    #[arg(long)]
    brokers: Option<String>,
    /// Topic prefix with --brokers.
    #[arg(long, default_value = "receive-bench")]
    topic_prefix: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let batches: Vec<(Vec<u8>, u64)> = records(Scenario::steady(60), args.requests_per_s, 7, args.tick_ms)
        .into_iter()
        .filter(|r| r.expect == Expect::Traces)
        .map(|r| {
            let mut out = Vec::new();
            devloom_schemas::codec::otlp_fast::decode(&r.payload, &mut out).expect("valid OTLP");
            (r.payload, out.len() as u64)
        })
        .collect();
    let per_request = batches.iter().map(|b| b.1).sum::<u64>() / batches.len() as u64;
    let mut config = Config {
        http: HttpConfig { listen: "127.0.0.1:0".into(), ..HttpConfig::default() },
        telemetry: TelemetryConfig { enabled: false, ..TelemetryConfig::default() },
        receivers: ReceiversConfig {
            enabled: true,
            otlp_http_listen: "127.0.0.1:0".into(),
            otlp_grpc_listen: String::new(),
            ..ReceiversConfig::default()
        },
        ..Config::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (intake, drain) = match &args.brokers {
        Some(brokers) => {
            let p = &args.topic_prefix;
            config.kafka = KafkaConfig {
                brokers: brokers.clone(),
                topics: TopicsConfig {
                    traces: format!("{p}.traces"),
                    alerts: format!("{p}.alerts"),
                    deploys: format!("{p}.deploys"),
                    causes: format!("{p}.causes"),
                    deadletter: format!("{p}.deadletter"),
                    ..TopicsConfig::default()
                },
                ..KafkaConfig::default()
            };
            let t = &config.kafka.topics;
            devloom::kafka::create_topics(
                &config.kafka,
                &[&t.traces, &t.alerts, &t.deploys, &t.causes, &t.deadletter],
            )?;
            (Intake::kafka(&config)?, None)
        }
        None => {
            let (intake, queue) = Intake::embedded(&config);
            let stop = stop.clone();
            let drain = std::thread::spawn(move || {
                let mut spans = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(Input::Record(events, _)) = queue.rx.recv_timeout(Duration::from_millis(100)) {
                        spans += events.len() as u64;
                    }
                }
                spans
            });
            (intake, Some(drain))
        }
    };
    let server = Server::start(&config, Some(Receivers::new(config.receivers.clone(), intake)))?
        .ok_or("the HTTP server is off")?;
    let url = format!("http://{}/v1/traces", server.otlp_addr().ok_or("OTLP/HTTP is off")?);
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let batches = Arc::new(batches);
    let cpu_before = thread_cpu_s("devloom-otlp");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let clients: Vec<_> = (0..args.connections)
        .map(|c| {
            let (url, batches, accepted, refused) =
                (url.clone(), batches.clone(), accepted.clone(), refused.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent =
                    ureq::Agent::config_builder().http_status_as_error(false).build().into();
                let mut i = c;
                while Instant::now() < deadline {
                    let (payload, spans) = &batches[i % batches.len()];
                    i += args.connections;
                    let status = agent
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .send(payload.as_slice())
                        .map(|r| r.status().as_u16());
                    match status {
                        Ok(200) => accepted.fetch_add(*spans, Ordering::Relaxed),
                        _ => refused.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for c in clients {
        c.join().map_err(|_| "a client panicked")?;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = thread_cpu_s("devloom-otlp") - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let drained = drain.map(|d| d.join().unwrap_or(0));
    let spans = accepted.load(Ordering::Relaxed);
    println!(
        "{} spans accepted ({} per request, {} requests refused) in {wall:.1} s by {} clients{}",
        spans,
        per_request,
        refused.load(Ordering::Relaxed),
        args.connections,
        if args.brokers.is_some() { ", forwarded to Kafka" } else { "" },
    );
    println!("wall: {:.0} spans/s", spans as f64 / wall);
    println!("receiver thread: {cpu:.2} CPU-s, {:.0} spans per CPU-second", spans as f64 / cpu.max(1e-9));
    if let Some(drained) = drained {
        println!("drained from the queue: {drained} spans");
    }
    Ok(())
}

/// CPU seconds (user + system) of this process's thread named `name`, from /proc.
fn thread_cpu_s(name: &str) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    for task in tasks.flatten() {
        let path = task.path();
        if std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim() == name) {
            let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
            // Fields after the parenthesised command: state is 3rd, utime 14th, stime 15th.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let parse = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
            return (parse(11) + parse(12)) / ticks;
        }
    }
    0.0
}
