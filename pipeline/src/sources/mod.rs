//! The ways in that need no broker: files ([`file`]), standard input ([`stdin`]), the
//! HTTP receivers ([`received`]) and the built-in simulator. Kafka
//! ([`crate::kafka::source`]) and the history archive ([`crate::history::replay`])
//! implement the same [`Source`] shape.

pub mod catalogs;
pub mod documents;
pub mod file;
pub mod paced;
pub mod received;
pub mod stdin;

use std::io;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use devloom_schemas::codec::DecodeOptions;

use crate::core::{Input, Origin, RawRecord, ReadStamp, Source, decode_record};
use crate::simulator::SimRecord;

impl From<SimRecord> for RawRecord {
    fn from(r: SimRecord) -> Self {
        RawRecord::new(r.payload, r.expect, Origin::Simulator)
            .with_header("content-type", r.content_type.as_bytes())
    }
}

/// A live stream of records (stdin, the simulator), decoded on a second thread as they
/// arrive and handed on in arrival order. The channel is bounded: a slow operator loop
/// slows the reader instead of growing memory.
pub struct Decoding {
    rx: Receiver<io::Result<Input>>,
    reader: Option<JoinHandle<()>>,
}

impl Decoding {
    /// Starts decoding `records` with `opts`.
    pub fn start<I>(records: I, opts: DecodeOptions) -> Self
    where
        I: Iterator<Item = io::Result<RawRecord>> + Send + 'static,
    {
        let (tx, rx) = sync_channel(64);
        let reader = std::thread::spawn(move || {
            for record in records {
                let input = record.map(|r| {
                    let read = ReadStamp::now();
                    Input::decoded(decode_record(r, &opts), read)
                });
                let failed = input.is_err();
                if tx.send(input).is_err() || failed {
                    break; // the operator loop stopped, or reading failed (reported there)
                }
            }
        });
        Self { rx, reader: Some(reader) }
    }
}

impl Source for Decoding {
    fn next_input(&mut self) -> Option<io::Result<Input>> {
        match self.rx.recv() {
            Ok(input) => Some(input),
            Err(_) => match self.reader.take().map(JoinHandle::join) {
                Some(Err(_)) => Some(Err(io::Error::other("the decoding thread panicked"))),
                _ => None,
            },
        }
    }
}

/// The simulator as a source.
pub fn simulated(sim: crate::simulator::Simulator, opts: DecodeOptions) -> Decoding {
    Decoding::start(sim.map(|r| Ok(RawRecord::from(r))), opts)
}
