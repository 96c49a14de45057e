//! Checkpoints of the Kafka runtime: operator state and the next input offset of every
//! partition, written together and atomically (temporary file, fsync, rename, fsync of
//! the directory). A reader never sees a half-written checkpoint.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use devloom_operators::EngineSnapshot;
use serde::{Deserialize, Serialize};

const FILE: &str = "checkpoint.json";
/// 6: the engine state holds the call aggregates not yet handed to the graph.
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
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        let bytes = serde_json::to_vec(checkpoint)
            .map_err(|e| CheckpointError::Io { path: tmp.clone(), source: io::Error::other(e) })?;
        file.write_all(&bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        drop(file);
        let path = self.path();
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_err(&self.dir))?;
        Ok(())
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
}
