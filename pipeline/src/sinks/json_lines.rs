//! Outputs as JSON lines: one stream per output kind, each line flushed at once so a
//! reader sees it immediately. Kinds without a stream are not written.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::core::{Output, OutputKind, Sink};

/// One JSON document per line, per output kind.
#[derive(Default)]
pub struct JsonLines {
    streams: BTreeMap<OutputKind, Box<dyn Write + Send>>,
}

impl JsonLines {
    /// Writes nothing until told where.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `kind` to `out`.
    pub fn with(mut self, kind: OutputKind, out: Box<dyn Write + Send>) -> Self {
        self.streams.insert(kind, out);
        self
    }

    /// Every kind that has a file in `routes`: `-` is stdout; a file is replaced (or
    /// appended to, with the route's `append`), and dead letters' only once there is one.
    pub fn from_routes(routes: &[super::Route]) -> io::Result<Self> {
        let mut sink = Self::new();
        for route in routes {
            let Some(file) = &route.file else { continue };
            let out: Box<dyn Write + Send> = match (route.kind, file.as_str()) {
                (_, "-") => Box::new(io::stdout()),
                (OutputKind::DeadLetter, _) => {
                    Box::new(OpenOnFirstWrite::new(Path::new(file), route.append)?)
                }
                (_, _) if route.append => Box::new(BufWriter::new(
                    File::options().create(true).append(true).open(file).map_err(|e| annotate(file, e))?,
                )),
                _ => open_output(file)?,
            };
            sink = sink.with(route.kind, out);
        }
        Ok(sink)
    }
}

impl Sink for JsonLines {
    fn publish(&mut self, output: &Output) -> io::Result<()> {
        let Some(out) = self.streams.get_mut(&output.kind()) else { return Ok(()) };
        let mut line = output.to_json()?;
        line.push(b'\n');
        out.write_all(&line)?;
        out.flush()
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

/// A file created on the first write, so a run without dead letters leaves none
/// behind: appended to, or replaced (an earlier run's file is removed at once, so what
/// is there afterwards is this run's).
#[derive(Debug)]
pub struct OpenOnFirstWrite {
    path: PathBuf,
    file: Option<BufWriter<File>>,
}

impl OpenOnFirstWrite {
    /// Not opened yet; unless `append`, an existing file is removed now.
    pub fn new(path: &Path, append: bool) -> io::Result<Self> {
        if !append {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(annotate(&path.display().to_string(), e));
                }
                _ => {}
            }
        }
        Ok(Self { path: path.to_path_buf(), file: None })
    }

    fn file(&mut self) -> io::Result<&mut BufWriter<File>> {
        if self.file.is_none() {
            let f = File::options()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| annotate(&self.path.display().to_string(), e))?;
            self.file = Some(BufWriter::new(f));
        }
        Ok(self.file.as_mut().expect("opened above"))
    }
}

impl Write for OpenOnFirstWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}
