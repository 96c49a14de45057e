//! Checkpoints of the Kafka runtime: operator state and the next input offset of every
//! partition, written together and atomically (temporary file, fsync, rename, fsync of
//! the directory). A reader never sees a half-written checkpoint. The run loop hands
//! them to a [`Writer`] thread, so serializing and syncing tens of megabytes of state
//! does not stall the operators (and the alerts waiting on them).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;

use devloom_operators::EngineSnapshot;
use opentelemetry::metrics::Histogram;
use serde::{Deserialize, Serialize};

const FILE: &str = "checkpoint.json";
/// Bytes of serialized state handed to the file at a time.
const WRITE_BUFFER: usize = 1 << 20;
/// 6: the engine state holds the call aggregates not yet handed to the graph. (The
/// pairing and self-time deadline queues, no longer saved but rebuilt from their
/// entries, are ignored when an earlier version-6 file has them.)
const FORMAT_VERSION: u32 = 6;

/// What a checkpoint holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format of this file.
    pub format_version: u32,
    /// Next offset to process, by `topic/partition`.
    pub offsets: BTreeMap<String, i64>,
    /// The operators' state after processing everything before those offsets.
    pub engine: EngineSnapshot,
    /// The history archive's next `seq`: archive files from that `seq` on were written
    /// after this checkpoint and are removed on restart (their input is read again).
    #[serde(default)]
    pub archive_seq: Option<u64>,
}

impl Checkpoint {
    /// A checkpoint of `engine` at `offsets`, with the archive's next `seq`.
    pub fn new(offsets: BTreeMap<String, i64>, engine: EngineSnapshot, archive_seq: Option<u64>) -> Self {
        Self { format_version: FORMAT_VERSION, offsets, engine, archive_seq }
    }
}

/// The key of a partition in [`Checkpoint::offsets`].
pub fn partition_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// Why a checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not a checkpoint this version can read.
    #[error(
        "checkpoint {path} is unreadable ({reason}); move it away to start from the committed offsets with empty state"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The checkpoint directory.
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// A store in `dir` (created on the first write).
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// The last checkpoint, if any.
    pub fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Io { path, source }),
        };
        let corrupt =
            |e: serde_json::Error| CheckpointError::Corrupt { path: path.clone(), reason: e.to_string() };
        // The version first: another build's state may not parse as this one's.
        #[derive(Deserialize)]
        struct Format {
            format_version: u32,
        }
        let format: Format = serde_json::from_slice(&bytes).map_err(corrupt)?;
        if format.format_version != FORMAT_VERSION {
            let reason =
                format!("format version {} (this build reads {FORMAT_VERSION})", format.format_version);
            return Err(CheckpointError::Corrupt { path, reason });
        }
        serde_json::from_slice(&bytes).map(Some).map_err(corrupt)
    }

    /// Writes `checkpoint` durably, replacing the previous one atomically.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CheckpointError::Io { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        // Two instances may save the same partition's state around a rebalance: each
        // writes its own temporary file, and either rename leaves a whole checkpoint.
        let tmp = self.dir.join(format!("{FILE}.{}.tmp", std::process::id()));
        // Streamed to the file: under load the state is hundreds of MB of JSON, and
        // growing a buffer that size costs more than writing it (copies, fresh pages).
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, File::create(&tmp).map_err(io_err(&tmp))?);
        serde_json::to_writer(&mut out, checkpoint).map_err(|e| io_err(&tmp)(io::Error::from(e)))?;
        let file = out.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io_err(&tmp))?;
        drop(file);
        let path = self.path();
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_err(&self.dir))?;
        Ok(())
    }
}

/// Saves checkpoints on a thread of its own, one at a time: the run loop takes the
/// snapshot (after making its outputs durable) and goes on reading while the writer
/// serializes and syncs it. A checkpoint due while one is still being written waits for
/// the next turn of the loop, so checkpoints come at most as fast as the disk takes them
/// and never pile up in memory.
pub struct Writer {
    jobs: Option<SyncSender<Checkpoint>>,
    done: Receiver<Result<BTreeMap<String, i64>, CheckpointError>>,
    in_flight: bool,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// A writer saving to `store`.
    pub fn start(store: CheckpointStore) -> io::Result<Self> {
        let (jobs, queue) = sync_channel::<Checkpoint>(1);
        let (done_tx, done) = sync_channel(1);
        let thread = std::thread::Builder::new().name("devloom-checkpoint".into()).spawn(move || {
            for checkpoint in queue {
                let saved = store.save(&checkpoint).map(|()| checkpoint.offsets);
                if done_tx.send(saved).is_err() {
                    return;
                }
            }
        })?;
        Ok(Self { jobs: Some(jobs), done, in_flight: false, thread: Some(thread) })
    }

    /// Whether a checkpoint is still being written.
    pub fn busy(&self) -> bool {
        self.in_flight
    }

    /// Starts writing `checkpoint`; call only when not [`Writer::busy`].
    pub fn save(&mut self, checkpoint: Checkpoint) -> Result<(), CheckpointError> {
        debug_assert!(!self.in_flight, "one checkpoint at a time");
        self.jobs.as_ref().ok_or_else(writer_stopped)?.send(checkpoint).map_err(|_| writer_stopped())?;
        self.in_flight = true;
        Ok(())
    }

    /// The offsets of the checkpoint being written, once it is durable; `None` while it
    /// is not (or none is being written).
    pub fn finished(&mut self) -> Result<Option<BTreeMap<String, i64>>, CheckpointError> {
        if !self.in_flight {
            return Ok(None);
        }
        match self.done.try_recv() {
            Ok(saved) => {
                self.in_flight = false;
                saved.map(Some)
            }
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(writer_stopped()),
        }
    }

    /// Waits for the checkpoint being written, if one is; its offsets once durable.
    pub fn wait(&mut self) -> Result<Option<BTreeMap<String, i64>>, CheckpointError> {
        if !std::mem::take(&mut self.in_flight) {
            return Ok(None);
        }
        self.done.recv().map_err(|_| writer_stopped())?.map(Some)
    }
}

/// The state `copy` takes, with how long the run loop paused for it logged (debug,
/// `copy_ms`): what alerts wait for at every checkpoint, the longer the fuller the stores.
pub fn copied_state(copy: impl FnOnce() -> EngineSnapshot) -> EngineSnapshot {
    let copying = std::time::Instant::now();
    let state = copy();
    tracing::debug!(copy_ms = copying.elapsed().as_secs_f64() * 1e3, "state copied for a checkpoint");
    state
}

/// `devloom.checkpoint.duration`: how long checkpoints take to become durable.
pub fn duration_histogram() -> Histogram<f64> {
    opentelemetry::global::meter(crate::telemetry::SCOPE)
        .f64_histogram("devloom.checkpoint.duration")
        .with_description(
            "From taking a checkpoint (outputs made durable, state copied) to its file being durable",
        )
        .with_unit("s")
        .build()
}

fn writer_stopped() -> CheckpointError {
    CheckpointError::Io {
        path: PathBuf::from(FILE),
        source: io::Error::other("the checkpoint writer thread stopped"),
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once a write in flight is done.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use devloom_operators::{Engine, EngineConfig};

    use super::*;

    #[test]
    fn save_load_round_trip_and_corruption_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(&dir.path().join("state"));
        assert!(store.load().unwrap().is_none());
        let engine = Engine::new(EngineConfig::default());
        let offsets = BTreeMap::from([(partition_key("devloom.traces", 2), 17)]);
        store.save(&Checkpoint::new(offsets.clone(), engine.snapshot(), Some(7))).unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.offsets, offsets);
        assert_eq!(loaded.archive_seq, Some(7));
        assert!(!dir.path().join("state/checkpoint.json.tmp").exists());

        std::fs::write(dir.path().join("state/checkpoint.json"), b"{\"format_version\":1").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("is unreadable") && err.contains("move it away"), "{err}");

        // An older build's checkpoint is named by its version, not by a field it lacks.
        std::fs::write(dir.path().join("state/checkpoint.json"), b"{\"format_version\":4,\"engine\":{}}")
            .unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("format version 4 (this build reads 6)"), "{err}");
    }

    #[test]
    fn the_writer_saves_one_checkpoint_at_a_time_and_says_when_each_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(&dir.path().join("state"));
        let at = |offset| BTreeMap::from([(partition_key("devloom.traces", 0), offset)]);
        let checkpoint =
            |offset| Checkpoint::new(at(offset), Engine::new(EngineConfig::default()).snapshot(), None);
        let mut writer = Writer::start(store.clone()).unwrap();
        assert!(!writer.busy());
        assert_eq!(writer.finished().unwrap(), None, "nothing written yet");
        writer.save(checkpoint(5)).unwrap();
        assert!(writer.busy());
        assert_eq!(writer.wait().unwrap(), Some(at(5)));
        assert!(!writer.busy());
        assert_eq!(store.load().unwrap().unwrap().offsets, at(5), "durable once reported");
        writer.save(checkpoint(9)).unwrap();
        let done = loop {
            if let Some(offsets) = writer.finished().unwrap() {
                break offsets;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        assert_eq!((done, store.load().unwrap().unwrap().offsets), (at(9), at(9)));
        assert_eq!(writer.wait().unwrap(), None, "reported once");

        // A directory that cannot be made: the write's error comes back to the run loop.
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        let mut broken = Writer::start(CheckpointStore::new(&file.join("state"))).unwrap();
        broken.save(checkpoint(1)).unwrap();
        let err = broken.wait().unwrap_err().to_string();
        assert!(err.starts_with(&format!("checkpoint {}", file.join("state").display())), "{err}");
    }
}
