//! Sinks of the embedded runtime: impact maps as JSON lines, dead letters to a file.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use devloom_schemas::{DeadLetter, ImpactMap};

/// Where impact maps go.
pub trait ImpactSink {
    /// Publishes one impact-map version.
    fn publish(&mut self, map: &ImpactMap) -> io::Result<()>;
}

/// Writes each map as one JSON line, flushed at once (a reader sees it immediately).
pub struct JsonLines<W: Write>(pub W);

impl<W: Write> ImpactSink for JsonLines<W> {
    fn publish(&mut self, map: &ImpactMap) -> io::Result<()> {
        serde_json::to_writer(&mut self.0, map)?;
        self.0.write_all(b"\n")?;
        self.0.flush()
    }
}

/// Collects maps in memory (tests, benches, replay comparisons).
impl ImpactSink for Vec<ImpactMap> {
    fn publish(&mut self, map: &ImpactMap) -> io::Result<()> {
        self.push(map.clone());
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
