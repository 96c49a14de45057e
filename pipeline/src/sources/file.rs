//! Input files: JSON documents (NDJSON or pretty-printed, any supported format, mixed),
//! one OTLP protobuf request per file, or length-prefixed OTLP protobuf requests (the
//! Collector file exporter's `format: proto`). Files are streamed, decoded on a second
//! thread and merged in event time: each file is a stream in its own order (an alert's
//! `startsAt` may precede the spans written before it), so a record's merge key is the
//! newest event time its file has reached, and files are merged by that key, ties in
//! the order the files were given. Memory stays bounded by the records in flight, not
//! the size of the files.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use devloom_schemas::codec::{DecodeOptions, Expect};
use serde::de::IgnoredAny;

use super::documents::Documents;
use crate::core::{Input, Origin, RawRecord, ReadStamp, Source, decode_record};

/// Reading an input file failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read input {path}: {error}")]
pub struct InputError {
    path: String,
    error: io::Error,
}

impl InputError {
    /// The file.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// The records of one file, read as they are needed.
pub struct FileRecords {
    path: Arc<str>,
    body: Body,
}

enum Body {
    Json(Documents<BufReader<File>>),
    Protobuf(Option<Vec<u8>>),
    /// Requests each behind a 4-byte big-endian length: the Collector file exporter's
    /// `format: proto`.
    Framed(BufReader<File>, usize),
}

impl FileRecords {
    /// Opens `path` and tells an OTLP protobuf request (see [`is_protobuf`]) from
    /// documents.
    /// No record is larger than `max_record_bytes`: a longer JSON document is cut back to
    /// its first line, a longer line is not read at all (its first bytes and size are
    /// dead-lettered), a longer length-prefixed request is an error.
    pub fn open(path: &Path, max_record_bytes: usize) -> Result<Self, InputError> {
        let name = path.display().to_string();
        let err = |error| InputError { path: name.clone(), error };
        let mut reader = BufReader::with_capacity(1 << 16, File::open(path).map_err(err)?);
        let head = reader.fill_buf().map_err(err)?;
        let body = if is_framed(head) {
            Body::Framed(reader, max_record_bytes)
        } else if is_protobuf(head) {
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).map_err(err)?;
            Body::Protobuf(Some(bytes))
        } else {
            Body::Json(Documents::new(reader, max_record_bytes))
        };
        Ok(Self { path: Arc::from(name), body })
    }
}

impl Iterator for FileRecords {
    type Item = Result<RawRecord, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let origin = |line| Origin::File { path: self.path.clone(), line };
        match &mut self.body {
            Body::Protobuf(bytes) => bytes.take().map(|b| Ok(RawRecord::new(b, Expect::Any, origin(None)))),
            Body::Framed(reader, max) => match read_frame(reader, *max) {
                Ok(Some(b)) => Some(Ok(RawRecord::new(b, Expect::Traces, origin(None)))),
                Ok(None) => None,
                Err(error) => Some(Err(InputError { path: self.path.to_string(), error })),
            },
            Body::Json(docs) => match docs.next_document() {
                Ok(Some(doc)) => Some(Ok(RawRecord {
                    content_type_hint: Some("application/json"),
                    cut_from: doc.cut_from,
                    ..RawRecord::new(doc.bytes, Expect::Any, origin(Some(doc.line)))
                })),
                Ok(None) => None,
                Err(error) => Some(Err(InputError { path: self.path.to_string(), error })),
            },
        }
    }
}

/// Whether a file is a stream of length-prefixed requests: a big-endian length (a first
/// byte of 0, which no text file has, for any request under 16 MiB) then a request's
/// first field tag, 0x0a.
fn is_framed(head: &[u8]) -> bool {
    head.len() >= 5 && head[0] == 0 && head[4] == 0x0a
}

/// The next length-prefixed request; none at the end of the file.
fn read_frame(reader: &mut impl Read, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a length-prefixed request of {len} bytes is over the {max}-byte limit (decode.max_record_bytes)"
            ),
        ));
    }
    let mut payload = vec![0; len];
    reader.read_exact(&mut payload)?;
    Ok(Some(payload))
}

/// Whether a file that starts with `head` is an OTLP protobuf request rather than
/// text. A request starts with 0x0a (its first field's tag) — a newline to a text
/// reader, and the length byte after it may well be `{` — so it is protobuf when it
/// starts so, its first JSON document breaks off inside `head`, and `head` is not text.
/// Anything else is read as documents: a stray first line is one dead letter, not a
/// whole file taken for protobuf.
fn is_protobuf(head: &[u8]) -> bool {
    if head.first() != Some(&0x0a) {
        return false;
    }
    let start = head.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(head.len());
    let mut docs = serde_json::Deserializer::from_slice(&head[start..]).into_iter::<IgnoredAny>();
    let json = matches!(head.get(start), Some(b'{' | b'['))
        && match docs.next() {
            Some(Ok(_)) | None => true,
            Some(Err(e)) => e.is_eof(),
        };
    !json && !is_text(head)
}

/// Printable UTF-8 (a character cut off at the end of `head` allowed).
fn is_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    valid.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
}

/// One file's inputs in its own order, with their merge keys.
struct Stream {
    records: FileRecords,
    opts: DecodeOptions,
    reached: u64,
    ready: VecDeque<(u64, Input)>,
    read: u64,
}

impl Stream {
    /// The next input and its merge key, decoding a record when none is waiting.
    fn next(&mut self) -> Option<Result<(u64, Input), InputError>> {
        while self.ready.is_empty() {
            let record = match self.records.next()? {
                Ok(record) => record,
                Err(e) => return Some(Err(e)),
            };
            // One clock read per record; an event is restamped when the loop takes it.
            let read = ReadStamp::now();
            match decode_record(record, &self.opts) {
                Ok(events) => {
                    self.read += 1;
                    for event in events {
                        self.reached = self.reached.max(event.event_time_ns());
                        self.ready.push_back((self.reached, Input::Event(event, read)));
                    }
                }
                Err(rejected) => {
                    for event in &rejected.salvaged {
                        self.reached = self.reached.max(event.event_time_ns());
                    }
                    self.ready.push_back((self.reached, Input::Rejected(rejected, read)));
                }
            }
        }
        self.ready.pop_front().map(Ok)
    }
}

/// Merges streams by key, ties by stream order then position (a stable merge), handing
/// each input to `emit` until it returns false; ends with the count of records read.
fn merge(mut streams: Vec<Stream>, mut emit: impl FnMut(io::Result<Input>) -> bool) {
    let mut heads: BinaryHeap<Reverse<(u64, usize, u64)>> = BinaryHeap::new();
    let mut waiting: Vec<Option<Input>> = streams.iter().map(|_| None).collect();
    let mut to_advance: Vec<usize> = (0..streams.len()).collect();
    let mut seq = 0u64;
    loop {
        for i in to_advance.drain(..) {
            match streams[i].next() {
                Some(Ok((key, input))) => {
                    seq += 1;
                    heads.push(Reverse((key, i, seq)));
                    waiting[i] = Some(input);
                }
                Some(Err(e)) => {
                    emit(Err(io::Error::other(e.to_string())));
                    return;
                }
                None => {}
            }
        }
        let Some(Reverse((_, i, _))) = heads.pop() else { break };
        if !emit(Ok(waiting[i].take().expect("a head has its input"))) {
            return;
        }
        to_advance.push(i);
    }
    emit(Ok(Input::Read(streams.iter().map(|s| s.read).sum())));
}

/// Files as a source, read and decoded on a second thread, merged in event time.
pub struct Files {
    rx: Receiver<Vec<io::Result<Input>>>,
    chunk: std::vec::IntoIter<io::Result<Input>>,
    reader: Option<JoinHandle<()>>,
}

impl Files {
    /// Opens every file of `paths` (failing at once on one that cannot be opened) and
    /// starts reading them.
    pub fn open(paths: &[impl AsRef<Path>], opts: &DecodeOptions) -> Result<Self, InputError> {
        let streams = paths
            .iter()
            .map(|p| {
                let records = FileRecords::open(p.as_ref(), opts.max_record_bytes)?;
                Ok(Stream { records, opts: opts.clone(), reached: 0, ready: VecDeque::new(), read: 0 })
            })
            .collect::<Result<Vec<_>, InputError>>()?;
        let (tx, rx) = sync_channel::<Vec<io::Result<Input>>>(16);
        let reader = std::thread::spawn(move || {
            let mut chunk = Vec::with_capacity(256);
            merge(streams, |input| {
                chunk.push(input);
                chunk.len() < 256 || tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(256))).is_ok()
            });
            let _ = tx.send(chunk);
        });
        Ok(Self { rx, chunk: Vec::new().into_iter(), reader: Some(reader) })
    }
}

impl Source for Files {
    fn next_input(&mut self) -> Option<io::Result<Input>> {
        loop {
            if let Some(input) = self.chunk.next() {
                return Some(input.map(|i| match i {
                    Input::Event(e, _) => Input::Event(e, ReadStamp::now()),
                    other => other,
                }));
            }
            match self.rx.recv() {
                Ok(chunk) => self.chunk = chunk.into_iter(),
                Err(_) => {
                    return match self.reader.take().map(JoinHandle::join) {
                        Some(Err(_)) => Some(Err(io::Error::other("the file reader thread panicked"))),
                        _ => None,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_names_the_file_once() {
        let err = FileRecords::open(Path::new("/nonexistent/x.ndjson"), 1 << 20).err().unwrap();
        let text = err.to_string();
        assert!(text.starts_with("cannot read input /nonexistent/x.ndjson: "), "{text}");
        assert!(std::error::Error::source(&err).is_none(), "the cause is in the message, not repeated");
    }
}
