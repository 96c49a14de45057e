//! Sinks of the embedded runtime: impact maps and candidate lists as JSON lines, dead
//! letters to a file.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use devloom_schemas::{CandidateList, DeadLetter, ImpactMap};
use serde::Serialize;

/// Where outputs go.
pub trait OutputSink {
    /// Publishes one impact-map version.
    fn publish(&mut self, map: &ImpactMap) -> io::Result<()>;
    /// Publishes one candidate-list version.
    fn publish_candidates(&mut self, list: &CandidateList) -> io::Result<()>;
}

/// Writes each map as one JSON line, flushed at once (a reader sees it immediately);
/// candidate lists go to their own stream when one is given.
pub struct JsonLines<W: Write> {
    maps: W,
    candidates: Option<Box<dyn Write + Send>>,
}

impl<W: Write> JsonLines<W> {
    /// Maps to `maps`; candidate lists are not written.
    pub fn new(maps: W) -> Self {
        Self { maps, candidates: None }
    }

    /// Also writes candidate lists, to `candidates`.
    pub fn with_candidates(mut self, candidates: Box<dyn Write + Send>) -> Self {
        self.candidates = Some(candidates);
        self
    }
}

fn write_line(out: &mut dyn Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    out.flush()
}

impl<W: Write> OutputSink for JsonLines<W> {
    fn publish(&mut self, map: &ImpactMap) -> io::Result<()> {
        write_line(&mut self.maps, map)
    }

    fn publish_candidates(&mut self, list: &CandidateList) -> io::Result<()> {
        match &mut self.candidates {
            Some(out) => write_line(out, list),
            None => Ok(()),
        }
    }
}

/// Collects outputs in memory (tests, benches, replay comparisons).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Collected {
    /// Impact-map versions in publish order.
    pub maps: Vec<ImpactMap>,
    /// Candidate-list versions in publish order.
    pub candidates: Vec<CandidateList>,
}

impl OutputSink for Collected {
    fn publish(&mut self, map: &ImpactMap) -> io::Result<()> {
        self.maps.push(map.clone());
        Ok(())
    }

    fn publish_candidates(&mut self, list: &CandidateList) -> io::Result<()> {
        self.candidates.push(list.clone());
        Ok(())
    }
}

/// Opens `-` as stdout, anything else as a created (truncated) file.
pub fn open_output(path: &str) -> io::Result<Box<dyn Write + Send>> {
    Ok(if path == "-" {
        Box::new(io::stdout())
    } else {
        Box::new(BufWriter::new(File::create(path).map_err(|e| annotate(path, e))?))
    })
}

fn annotate(path: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot create {path}: {e}"))
}

/// The embedded dead-letter file: created on the first dead letter, one JSON line each.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    count: u64,
}

impl DeadLetterFile {
    /// A dead-letter file at `path` (not created until needed).
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), file: None, count: 0 }
    }

    /// Appends one dead letter and logs its reason.
    pub fn write(&mut self, dead: &DeadLetter) -> io::Result<()> {
        tracing::warn!(source = %dead.source, line = ?dead.line, reason = %dead.reason, "dead letter");
        if self.file.is_none() {
            let f = File::options()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| annotate(&self.path.display().to_string(), e))?;
            self.file = Some(BufWriter::new(f));
        }
        let f = self.file.as_mut().expect("opened above");
        serde_json::to_writer(&mut *f, dead)?;
        f.write_all(b"\n")?;
        f.flush()?;
        self.count += 1;
        Ok(())
    }

    /// Dead letters written.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
