//! JSON documents from a byte stream, read incrementally: one document per line
//! (NDJSON), several on a line, or pretty-printed over many lines. Bytes, not text: a
//! line that is not UTF-8 or not JSON becomes its own record (a dead letter later)
//! without hiding the rest. A UTF-8 byte-order mark at the start is skipped. Memory is
//! bounded by `max_record_bytes`: a document that grows past it without ending is cut
//! back to its first line, which becomes a record of its own; a single line longer than
//! that is not kept at all — its first bytes and its size make a record marked cut.

/// Bytes of a cut line kept for its dead letter.
pub const CUT_PREFIX_BYTES: usize = 1024;

use std::io::{self, BufRead, Read};

use serde::de::IgnoredAny;

/// The UTF-8 byte-order mark some editors write at the start of a file.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// One document (or unparsable line) of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// The 1-based line it starts on.
    pub line: u64,
    /// Its bytes; for a cut line, the first [`CUT_PREFIX_BYTES`].
    pub bytes: Vec<u8>,
    /// Set when the line was longer than `max_record_bytes`: its size in bytes.
    pub cut_from: Option<u64>,
}

/// Documents of a reader, each with the 1-based line it starts on.
pub struct Documents<R> {
    reader: R,
    /// Bytes read but not yet handed out; `buf[start..]` is live.
    buf: Vec<u8>,
    start: usize,
    /// Line of `buf[start]`.
    line: u64,
    at_start: bool,
    eof: bool,
    max_record_bytes: usize,
    /// A line past the limit was met: the record to hand out next.
    cut: Option<Document>,
}

impl<R: BufRead> Documents<R> {
    /// Documents of `reader`; a record never exceeds `max_record_bytes` unless it is one
    /// line that long.
    pub fn new(reader: R, max_record_bytes: usize) -> Self {
        Self {
            reader,
            buf: Vec::new(),
            start: 0,
            line: 1,
            at_start: true,
            eof: false,
            max_record_bytes,
            cut: None,
        }
    }

    /// Reads one more line into the buffer; false at the end of input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        // A line is read only up to the limit; one that goes on is skipped to its end.
        let room = self.max_record_bytes.saturating_add(1);
        let before = self.buf.len();
        let n = (&mut self.reader).take(room as u64).read_until(b'\n', &mut self.buf)?;
        if n == room && self.buf.last() != Some(&b'\n') {
            let mut size = (self.buf.len() - self.start) as u64;
            size += skip_line(&mut self.reader)?;
            let live = &self.buf[self.start..];
            let bytes = live[..live.len().min(CUT_PREFIX_BYTES)].to_vec();
            let line = self.line;
            self.line += live[..before - self.start].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
            self.buf.truncate(self.start);
            self.at_start = false;
            self.cut = Some(Document { line, bytes, cut_from: Some(size) });
            return Ok(true);
        }
        if self.at_start {
            self.at_start = false;
            if self.buf[self.start..].starts_with(BOM) {
                self.start += BOM.len();
            }
        }
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// Skips white space at the head of the buffer, counting lines.
    fn skip_space(&mut self) {
        let live = &self.buf[self.start..];
        let n = live.iter().take_while(|b| b.is_ascii_whitespace()).count();
        self.line += live[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        self.start += n;
    }

    /// Hands out `buf[start..start + len]` and moves past it.
    fn take(&mut self, len: usize) -> Document {
        let bytes = self.buf[self.start..self.start + len].to_vec();
        let line = self.line;
        self.line += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        self.start += len;
        Document { line, bytes, cut_from: None }
    }

    /// The next document (or unparsable line, or cut line).
    pub fn next_document(&mut self) -> io::Result<Option<Document>> {
        loop {
            if let Some(doc) = self.cut.take() {
                return Ok(Some(doc));
            }
            self.skip_space();
            if self.start >= self.buf.len() {
                if !self.fill()? {
                    return Ok(None);
                }
                continue;
            }
            let live = &self.buf[self.start..];
            let mut docs = serde_json::Deserializer::from_slice(live).into_iter::<IgnoredAny>();
            match docs.next() {
                // A document, unless the rest of its line is neither space nor another
                // document (`1,2,checkout` is one bad line, not the number 1 and junk).
                Some(Ok(_)) if ends_cleanly(&live[docs.byte_offset()..]) => {
                    let len = docs.byte_offset();
                    return Ok(Some(self.take(len)));
                }
                Some(Err(e)) if e.is_eof() && !self.eof && live.len() < self.max_record_bytes => {
                    self.fill()?;
                }
                _ => {
                    // Not JSON (or cut off): its first line is a record of its own.
                    let first_line = match live.iter().position(|&b| b == b'\n') {
                        Some(i) => i,
                        None if self.eof => live.len(),
                        None => {
                            self.fill()?;
                            continue;
                        }
                    };
                    let mut doc = self.take(first_line);
                    if doc.bytes.last() == Some(&b'\r') {
                        doc.bytes.pop();
                    }
                    return Ok(Some(doc));
                }
            }
        }
    }
}

/// Reads past the end of the current line without keeping it; the bytes skipped.
fn skip_line(reader: &mut impl BufRead) -> io::Result<u64> {
    let mut skipped = 0u64;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(skipped);
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(skipped + i as u64);
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
                skipped += n as u64;
            }
        }
    }
}

/// Whether what follows a document on its line is white space or another document.
fn ends_cleanly(rest: &[u8]) -> bool {
    let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
    matches!(line.iter().find(|b| !b.is_ascii_whitespace()), None | Some(b'{' | b'['))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8], max: usize) -> Vec<(u64, String)> {
        let mut docs = Documents::new(bytes, max);
        let mut out = Vec::new();
        while let Some(doc) = docs.next_document().unwrap() {
            out.push((doc.line, String::from_utf8_lossy(&doc.bytes).into_owned()));
        }
        out
    }

    #[test]
    fn ndjson_pretty_json_several_per_line_and_bad_lines() {
        let text = b"{\"a\":1}\n{\"b\":\n  2}\n\nnot json\n{\"c\":3} {\"d\":4}\n\xff\xfe{\n1,2,x\n{\"e\":5}";
        assert_eq!(
            all(text, 1 << 20),
            vec![
                (1, "{\"a\":1}".into()),
                (2, "{\"b\":\n  2}".into()),
                (5, "not json".into()),
                (6, "{\"c\":3}".into()),
                (6, "{\"d\":4}".into()),
                (7, "\u{fffd}\u{fffd}{".into()),
                (8, "1,2,x".into()),
                (9, "{\"e\":5}".into()),
            ]
        );
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        assert_eq!(
            all(b"\xef\xbb\xbf{\"a\":1}\n{\"b\":2}\n", 1 << 20),
            vec![(1, "{\"a\":1}".into()), (2, "{\"b\":2}".into())]
        );
    }

    #[test]
    fn a_line_past_the_limit_is_not_kept_only_its_first_bytes_and_size() {
        let long = format!("{{\"a\":\"{}\"}}", "x".repeat(200));
        let text = format!("{{\"before\":1}}\n{long}\n{{\"after\":2}}\n");
        let mut docs = Documents::new(text.as_bytes(), 64);
        let mut out = Vec::new();
        while let Some(doc) = docs.next_document().unwrap() {
            out.push(doc);
        }
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!((out[1].line, out[1].cut_from, out[1].bytes.len()), (2, Some(long.len() as u64), 65));
        assert!(long.as_bytes().starts_with(&out[1].bytes));
        assert_eq!((out[2].line, out[2].bytes.as_slice(), out[2].cut_from), (3, &b"{\"after\":2}"[..], None));
    }

    #[test]
    fn an_unterminated_document_is_cut_back_to_its_first_line() {
        let mut text = b"{\"open\": [\n".to_vec();
        for _ in 0..100 {
            text.extend_from_slice(b"  1,\n");
        }
        text.extend_from_slice(b"{\"after\":1}\n");
        let docs = all(&text, 64);
        assert_eq!(docs[0], (1, "{\"open\": [".into()), "bounded: the first line alone");
        assert_eq!(docs.last().unwrap(), &(102, "{\"after\":1}".into()), "the rest still read");
    }
}
