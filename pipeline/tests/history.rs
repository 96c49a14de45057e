//! The history archive as a user drives it: `run --history`, `replay`, `history query`,
//! `history import`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use devloom_schemas::ImpactMap;

fn devloom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_devloom")).args(args).env_remove("DEVLOOM_CONFIG").output().unwrap()
}

fn ok(args: &[&str]) -> Output {
    let out = devloom(args);
    assert!(out.status.success(), "devloom {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn simulated(dir: &Path, scenario: &str) -> PathBuf {
    let path = dir.join(format!("{scenario}.ndjson"));
    ok(&["simulate", "--scenario", scenario, "--rate", "10", "-o", s(&path)]);
    path
}

fn maps(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::to_string(&serde_json::from_str::<ImpactMap>(l).unwrap().without_wall_clock())
                .unwrap()
        })
        .collect()
}

/// `devloom history query --history DIR ARGS…`, which must succeed.
fn query(history: &Path, args: &[&str]) -> Output {
    ok(&[&["history", "query", "--history", s(history)], args].concat())
}

/// Every committed file of the archive, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn replay_of_a_live_archive_reproduces_its_maps_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let input = simulated(dir.path(), "db-latency");
    let history = dir.path().join("history");
    let live = dir.path().join("live.ndjson");
    ok(&["run", "--input", s(&input), "--history", s(&history), "--output", s(&live)]);
    let archived = files(&history);
    assert!(archived.iter().any(|f| f.starts_with("spans/date=") && f.ends_with(".parquet")), "{archived:?}");
    assert!(archived.iter().any(|f| f.starts_with("impact/date=")), "{archived:?}");

    let replayed = dir.path().join("replay.ndjson");
    let out = ok(&["replay", "--history", s(&history), "--output", s(&replayed)]);
    let live_maps = maps(&live);
    assert!(live_maps.len() >= 3, "the scenario produces several versions");
    assert_eq!(maps(&replayed), live_maps);
    assert!(String::from_utf8_lossy(&out.stderr).contains("events/s"), "throughput printed");
    assert_eq!(files(&history), archived, "replay does not write to the archive");

    // The archived maps are the published ones.
    let out = query(&history, &["-f", "csv", "SELECT incident_id, version FROM impact ORDER BY seq"]);
    let rows: Vec<String> =
        String::from_utf8(out.stdout).unwrap().lines().skip(1).map(String::from).collect();
    let expected: Vec<String> = live_maps
        .iter()
        .map(|m| serde_json::from_str::<ImpactMap>(m).unwrap())
        .map(|m| format!("{},{}", m.incident_id, m.version))
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn query_prints_tables_csv_and_json_over_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let input = simulated(dir.path(), "regression");
    let history = dir.path().join("history");
    ok(&["run", "--input", s(&input), "--history", s(&history), "--output", s(&dir.path().join("m.ndjson"))]);

    let out = query(
        &history,
        &[
            "-f",
            "json",
            "SELECT (SELECT count(*) FROM alerts) AS alerts, (SELECT count(*) FROM deploys) AS deploys, \
         (SELECT count(DISTINCT service) FROM spans) > 10 AS many_services",
        ],
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        r#"{"alerts":2,"deploys":2,"many_services":true}"#
    );

    let out = query(&history, &["SELECT service, status FROM alerts ORDER BY seq"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("| service  | status   |"), "{table}");
    assert!(table.contains("| payments | firing   |"), "{table}");
    assert!(table.contains("| payments | resolved |"), "{table}");

    // Time and date columns work in predicates.
    let out = query(
        &history,
        &[
            "-f",
            "csv",
            "SELECT count(*) AS n FROM spans WHERE time >= '2000-01-01T00:00:00Z' AND date >= '2000-01-01'",
        ],
    );
    let n: u64 = String::from_utf8(out.stdout).unwrap().lines().nth(1).unwrap().parse().unwrap();
    assert!(n > 1000, "{n}");

    let out = devloom(&["history", "query", "--history", s(&history), "SELECT nope FROM spans"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"), "names the bad column");
}

#[test]
fn replay_selects_by_time_service_and_predicate() {
    let dir = tempfile::tempdir().unwrap();
    let input = simulated(dir.path(), "regression");
    let history = dir.path().join("history");
    ok(&["run", "--input", s(&input), "--history", s(&history), "--output", s(&dir.path().join("m.ndjson"))]);
    let count = |args: &[&str]| -> u64 {
        let out = ok(&[&["replay", "--history", s(&history), "-o", "-"], args].concat());
        let err = String::from_utf8(out.stderr).unwrap();
        err.split("replayed ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap()
    };
    let all = count(&[]);
    let first: String = {
        let out = query(&history, &["-f", "csv", "SELECT min(time) AS t FROM spans"]);
        String::from_utf8(out.stdout).unwrap().lines().nth(1).unwrap().to_string()
    };
    assert!(first.starts_with("2026-11-27T09:00"), "{first}");
    // The scenario runs 09:00–09:12: --from and --to split it.
    let later = count(&["--from", "2026-11-27T09:06:00Z"]);
    let earlier = count(&["--to", "2026-11-27T09:06:00Z"]);
    assert!(later > 0 && earlier > 0 && later + earlier == all, "{earlier} + {later} vs {all}");
    let none = count(&["--to", "2000-01-01T00:00:00Z"]);
    assert_eq!(none, 0);
    let payments = count(&["--services", "payments"]);
    assert!(payments > 0 && payments < all, "{payments} vs {all}");
    let no_gateway = count(&["--where", "service <> 'gateway'"]);
    assert!(no_gateway < all);

    let out = devloom(&["replay", "--history", s(&history), "--from", "yesterday"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from \"yesterday\""), "names the flag");
    let out = devloom(&["replay", "--history", s(&dir.path().join("nothing-here"))]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no history archive here"));
}

#[test]
fn import_then_replay_equals_running_the_files_and_failures_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = simulated(dir.path(), "async-consumer");
    let history = dir.path().join("history");
    let direct = dir.path().join("direct.ndjson");
    ok(&["run", "--input", s(&a), "--output", s(&direct)]);
    let out = ok(&["history", "import", "--history", s(&history), s(&a)]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("imported "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed = dir.path().join("replayed.ndjson");
    ok(&["replay", "--history", s(&history), "-o", s(&replayed)]);
    assert_eq!(maps(&replayed), maps(&direct));

    // A missing file fails the import, names the file, and leaves the archive as it was.
    let before = files(&history);
    let out = devloom(&[
        "history",
        "import",
        "--history",
        s(&history),
        s(&a),
        s(&dir.path().join("missing.ndjson")),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.ndjson"));
    assert_eq!(files(&history), before);

    // A corrupt archive file is named by every reader.
    let bad = history.join("spans/date=2001-01-01");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("part-000099999999.parquet"), b"not parquet").unwrap();
    for args in [
        vec!["replay", "--history", s(&history)],
        vec!["history", "query", "--history", s(&history), "SELECT 1"],
    ] {
        let out = devloom(&args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("part-000099999999.parquet") && err.contains("not a readable archive file"),
            "{err}"
        );
    }
}

#[test]
fn confirm_records_a_listed_cause_and_refuses_what_the_incident_never_listed() {
    let dir = tempfile::tempdir().unwrap();
    let input = simulated(dir.path(), "regression");
    let history = dir.path().join("history");
    let candidates = dir.path().join("candidates.ndjson");
    let maps_path = dir.path().join("maps.ndjson");
    ok(&[
        "run",
        "--input",
        s(&input),
        "--history",
        s(&history),
        "-o",
        s(&maps_path),
        "--candidates",
        s(&candidates),
    ]);
    let list: devloom_schemas::CandidateList =
        serde_json::from_str(std::fs::read_to_string(&candidates).unwrap().lines().last().unwrap()).unwrap();
    let incident = list.incident_id.as_str();
    let h = s(&history);
    let causes = || {
        let out = query(&history, &["-f", "csv", "SELECT incident_id, candidate FROM causes ORDER BY seq"]);
        String::from_utf8(out.stdout).unwrap().lines().skip(1).map(String::from).collect::<Vec<_>>()
    };

    let out = devloom(&["history", "confirm", incident, "deploy:nope@v0", "--history", h]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is not a candidate") && err.contains("deploy:payments@v1.9.0"), "{err}");
    let out = devloom(&["history", "confirm", "no-such-incident", "deploy:payments@v1.9.0", "--history", h]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no candidate list for incident"));
    assert!(causes().is_empty(), "a refused confirmation writes nothing");

    ok(&[
        "history",
        "confirm",
        incident,
        "deploy:payments@v1.9.0",
        "--history",
        h,
        "--at",
        "2026-11-27T10:00:00Z",
    ]);
    ok(&["history", "confirm", incident, "config:feature-flags@42", "--unlisted", "--history", h]);
    assert_eq!(
        causes(),
        [format!("{incident},deploy:payments@v1.9.0"), format!("{incident},config:feature-flags@42")]
    );
    let out = query(&history, &["-f", "csv", "SELECT time FROM causes ORDER BY seq LIMIT 1"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2026-11-27T10:00:00"));
}

#[test]
fn history_simulate_refuses_to_add_the_same_incidents_twice_and_leaves_no_staging_folders() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    ok(&["history", "simulate", "--history", s(&history), "--incidents", "50"]);
    let staging = history.join(".staging");
    let left: Vec<_> = std::fs::read_dir(&staging).map(|d| d.collect()).unwrap_or_default();
    assert!(left.is_empty(), "empty staging folders left behind: {left:?}");
    let before = files(&history);
    let out = devloom(&["history", "simulate", "--history", s(&history), "--incidents", "50"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already holds an archive"), "{err}");
    assert_eq!(files(&history), before, "nothing added");
}

/// The regression scenario run with `--history DIR/history`; the archive's path.
fn regression_archive(dir: &Path) -> PathBuf {
    let input = simulated(dir, "regression");
    let history = dir.join("history");
    ok(&["run", "--input", s(&input), "--history", s(&history), "--output", s(&dir.join("maps.ndjson"))]);
    history
}

#[test]
fn every_committed_file_has_a_checksum_and_damage_is_named_before_any_replay() {
    let dir = tempfile::tempdir().unwrap();
    let history = regression_archive(dir.path());
    let committed = files(&history);
    for file in &committed {
        let path = history.join(file);
        let name = path.file_name().unwrap().to_str().unwrap();
        let sum = std::fs::read_to_string(path.with_file_name(format!(".{name}.sha256"))).unwrap();
        assert!(sum.ends_with(&format!("  {name}\n")) && sum.len() == 64 + 2 + name.len() + 1, "{sum:?}");
    }
    let out = ok(&["history", "verify", "--history", s(&history)]);
    let report = String::from_utf8(out.stdout).unwrap();
    assert_eq!(report.lines().count(), committed.len());
    assert!(report.lines().all(|l| l.starts_with("intact  ")), "{report}");

    // One byte flipped in the middle of the spans file.
    let spans = committed.iter().find(|f| f.starts_with("spans/")).unwrap();
    let path = history.join(spans);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    let out = devloom(&["history", "verify", "--history", s(&history)]);
    assert!(!out.status.success());
    let report = String::from_utf8(out.stdout).unwrap();
    let damaged: Vec<&str> = report.lines().filter(|l| !l.starts_with("intact  ")).collect();
    assert_eq!(damaged.len(), 1, "{report}");
    assert!(damaged[0].starts_with("checksum mismatch: committed ") && damaged[0].ends_with(spans.as_str()));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 damaged archive file(s)"));
    let out =
        devloom(&["replay", "--history", s(&history), "--output", s(&dir.path().join("replay.ndjson"))]);
    assert!(!out.status.success(), "a damaged archive is not replayed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(spans.as_str()) && stderr.contains("checksum mismatch"), "{stderr}");
}

#[test]
fn a_copied_file_or_a_malformed_partition_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let history = regression_archive(dir.path());
    let spans = files(&history).into_iter().find(|f| f.starts_with("spans/")).unwrap();
    let refused = |reason: &str, named: &Path| {
        for args in [vec!["history", "query", "SELECT count(*) FROM spans"], vec!["replay", "-o", "-"]] {
            let out = devloom(&[&args[..], &["--history", s(&history)]].concat());
            assert!(!out.status.success(), "{args:?} accepted it");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(s(named)) && stderr.contains(reason), "{args:?}: {stderr}");
        }
    };

    // The same file copied into another day: its rows would be read twice.
    let other_day = history.join("spans/date=2026-11-28");
    std::fs::create_dir_all(&other_day).unwrap();
    let copy = other_day.join(Path::new(&spans).file_name().unwrap());
    std::fs::copy(history.join(&spans), &copy).unwrap();
    refused("one is a copy of the other and would be read twice", &copy);
    std::fs::remove_dir_all(&other_day).unwrap();

    for name in ["date=garbage", "date=2026-02-31"] {
        let partition = history.join("spans").join(name);
        std::fs::create_dir_all(&partition).unwrap();
        refused("expected a date=YYYY-MM-DD directory", &partition);
        std::fs::remove_dir_all(&partition).unwrap();
    }
    ok(&["history", "verify", "--history", s(&history)]);
}

/// The review's sweep: single-bit flips anywhere in an archive file. Every one must be
/// refused before a replay reads anything — never a run that exits 0 with other maps.
#[test]
fn two_hundred_single_bit_flips_are_all_refused_before_replay() {
    use devloom::history::replay::{Replay, Selection};
    let dir = tempfile::tempdir().unwrap();
    let history = regression_archive(dir.path());
    let spans = history.join(files(&history).into_iter().find(|f| f.starts_with("spans/")).unwrap());
    let clean = std::fs::read(&spans).unwrap();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for trial in 0..200 {
        // A fixed-seed xorshift: the same 200 positions every run, spread over the file.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let (byte, bit) = ((state >> 3) as usize % clean.len(), (state & 7) as u8);
        let mut flipped = clean.clone();
        flipped[byte] ^= 1 << bit;
        std::fs::write(&spans, &flipped).unwrap();
        match Replay::open(&history, &Selection::default(), false) {
            Ok(_) => panic!("trial {trial}: a flip of bit {bit} at byte {byte} was not noticed"),
            Err(e) => assert!(e.to_string().contains(s(&spans)), "trial {trial}: {e}"),
        }
    }
    std::fs::write(&spans, &clean).unwrap();
    assert!(Replay::open(&history, &Selection::default(), false).is_ok(), "the clean file replays again");
}
