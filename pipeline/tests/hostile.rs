//! The hostile stream: the regression scenario with thirty kinds of bad records
//! interleaved (and a byte-order mark), through `--input` and through stdin. The maps
//! and candidates must equal the clean run's (wall-clock stamps aside; the maps' data
//! quality notes say what the event-time guard held aside), every bad record must be a
//! dead letter with its reason — and its line, or for the three the event-time guard
//! refuses, its time — and the run must exit 0. Kafka's share is in `kafka.rs`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use devloom::simulator::{SimConfig, Simulator, to_ndjson_line};
use devloom_schemas::DeadLetter;

#[path = "common/bad_records.rs"]
mod bad_records;
use bad_records::bad_records;

fn devloom(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devloom"));
    cmd.args(args).env_remove("DEVLOOM_CONFIG");
    cmd
}

/// `clean` with a byte-order mark and every bad record interleaved (one every
/// `len / 31` lines, so the far-future ones near the end are outvoted), and the line
/// each bad record is on.
fn hostile(clean: &str) -> (Vec<u8>, Vec<u64>) {
    let lines: Vec<&str> = clean.lines().collect();
    let bad = bad_records();
    let every = lines.len() / (bad.len() + 1);
    let mut out = b"\xef\xbb\xbf".to_vec();
    let mut at = Vec::new();
    let mut bad = bad.into_iter();
    let mut line = 0;
    for (i, clean_line) in lines.iter().enumerate() {
        out.extend_from_slice(clean_line.as_bytes());
        out.push(b'\n');
        line += 1;
        if i > 0
            && i % every == 0
            && let Some((_, bytes, _)) = bad.next()
        {
            out.extend_from_slice(&bytes);
            out.push(b'\n');
            line += 1;
            at.push(line);
        }
    }
    assert!(bad.next().is_none(), "every bad record placed");
    (out, at)
}

/// Outputs without wall-clock stamps, and the maps' data-quality notes apart.
fn stripped(path: &Path) -> (Vec<String>, Vec<serde_json::Value>) {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            for key in ["published_at", "alert_received_at", "latency_ms"] {
                o.remove(key);
            }
            let notes = o.remove("data_quality").unwrap_or_default();
            (v.to_string(), notes)
        })
        .unzip()
}

/// Which versions differ (the documents are long).
fn differing(a: &[String], b: &[String]) -> Vec<usize> {
    (0..a.len().max(b.len())).filter(|&i| a.get(i) != b.get(i)).collect()
}

#[test]
fn thirty_kinds_of_bad_records_change_no_map_and_each_is_a_dead_letter_with_its_reason_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let sim = Simulator::shop("regression", SimConfig { rate_per_s: 10.0, ..SimConfig::default() }).unwrap();
    let clean: String = sim.map(|r| to_ndjson_line(&r).unwrap() + "\n").collect();
    std::fs::write(p("clean.ndjson"), &clean).unwrap();
    let (bytes, lines) = hostile(&clean);
    std::fs::write(p("hostile.ndjson"), &bytes).unwrap();
    std::fs::write(p("devloom.toml"), "[decode]\nmax_record_bytes = 2097152\n").unwrap();
    let config = p("devloom.toml");
    let config = config.to_str().unwrap();

    let run = |name: &str, input: Option<&str>| {
        let (maps, candidates, dead) =
            (p(&format!("{name}.maps")), p(&format!("{name}.c")), p(&format!("{name}.dead")));
        let mut args = vec!["run", "--config", config, "-o", maps.to_str().unwrap()];
        args.extend(["--candidates", candidates.to_str().unwrap(), "--dead-letter", dead.to_str().unwrap()]);
        let mut cmd = devloom(&args);
        let out = match input {
            Some(file) => cmd.args(["--input", file]).output().unwrap(),
            None => {
                let mut child =
                    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
                child.stdin.take().unwrap().write_all(&bytes).unwrap();
                child.wait_with_output().unwrap()
            }
        };
        assert!(
            out.status.success(),
            "{name}: exit {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let dead: Vec<DeadLetter> = if dead.exists() {
            std::fs::read_to_string(&dead)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        } else {
            Vec::new()
        };
        let (maps, notes) = stripped(&maps);
        (maps, notes, stripped(&candidates).0, dead)
    };
    let (maps, clean_notes, candidates, none) = run("clean", Some(p("clean.ndjson").to_str().unwrap()));
    assert!(none.is_empty() && maps.len() >= 3 && !candidates.is_empty());
    assert!(clean_notes.iter().all(serde_json::Value::is_null), "a clean run loses nothing: {clean_notes:?}");

    let hostile_file = p("hostile.ndjson");
    for (name, input) in [("file", Some(hostile_file.to_str().unwrap())), ("stdin", None)] {
        let (m, notes, c, dead) = run(name, input);
        assert_eq!(differing(&m, &maps), Vec::<usize>::new(), "{name}: the maps of the clean run");
        assert_eq!(
            differing(&c, &candidates),
            Vec::<usize>::new(),
            "{name}: the candidate lists of the clean run"
        );
        // What the maps say was lost: the far-future records held aside near the end.
        let said: Vec<String> = notes
            .iter()
            .flat_map(|n| n.as_array().cloned().unwrap_or_default())
            .map(|n| n.to_string())
            .collect();
        assert!(said.iter().any(|n| n.contains("held aside")), "{name}: {notes:?}");
        let expected = bad_records();
        assert_eq!(dead.len(), expected.len(), "{name}: one dead letter per bad record: {dead:#?}");
        let guard = |d: &&DeadLetter| d.source == "<event-time guard>";
        for ((kind, _, reason), line) in expected.iter().zip(&lines) {
            if kind.starts_with("far-") {
                let n = dead.iter().filter(guard).filter(|d| d.reason.contains(reason)).count();
                let want = expected.iter().filter(|(_, _, r)| r == reason).count();
                assert_eq!(n, want, "{name}: {kind}: the event-time guard's dead letter ({reason:?})");
                continue;
            }
            let d = dead.iter().find(|d| d.line == Some(*line));
            let d = d.unwrap_or_else(|| panic!("{name}: {kind}: no dead letter at line {line}"));
            assert!(d.reason.contains(reason), "{name}: {kind} at line {line}: {:?}", d.reason);
            if name == "file" {
                assert!(d.source.ends_with("hostile.ndjson"), "{}", d.source);
            }
        }
    }
}

#[test]
fn the_losses_of_a_hostile_stream_are_metrics_too() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let sim = Simulator::shop("regression", SimConfig { rate_per_s: 10.0, ..SimConfig::default() }).unwrap();
    let clean: String = sim.map(|r| to_ndjson_line(&r).unwrap() + "\n").collect();
    std::fs::write(p("hostile.ndjson"), hostile(&clean).0).unwrap();
    // Stores of 150 spans: under a second of this traffic, which stays 7 s in the
    // self-time store.
    let config = "[decode]\nmax_record_bytes = 2097152\n[engine.pairing]\nmax_pending = 150\n";
    std::fs::write(p("devloom.toml"), config).unwrap();
    let mut child =
        devloom(&["run", "--config", p("devloom.toml").to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args([
                "--serve",
                "-o",
                p("maps").to_str().unwrap(),
                "--dead-letter",
                p("dead").to_str().unwrap(),
            ])
            .args(["--input", p("hostile.ndjson").to_str().unwrap()])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let mut base = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok) {
        if let Some(addr) = line.strip_prefix("devloom: HTTP API on ") {
            base = Some(addr.to_string());
        }
        if line.contains("input ended; serving") {
            break;
        }
    }
    let text =
        ureq::get(format!("{}/metrics", base.unwrap())).call().unwrap().body_mut().read_to_string().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                _ => panic!("{name}: not a counter"),
            })
            .sum()
    };
    assert_eq!(
        value("devloom_dead_letters_total", None),
        bad_records().len() as f64,
        "every dead letter counted"
    );
    assert_eq!(value("devloom_dead_letters_total", Some(("reason", "event_time"))), 3.0, "the guard's three");
    assert_eq!(value("devloom_dead_letters_total", Some(("reason", "too_large"))), 1.0, "the long line");
    assert!(value("devloom_dead_letters_total", Some(("reason", "unrecognized"))) >= 5.0);
    assert!(value("devloom_dead_letters_total", Some(("reason", "invalid"))) >= 5.0);
    assert!(value("devloom_held_aside_total", None) >= 2.0, "the far-future span and deploy held aside");
    assert!(value("devloom_self_time_evicted_total", None) > 0.0);
    assert_eq!(value("devloom_outputs_total", Some(("kind", "deadletter"))), bad_records().len() as f64);
}
