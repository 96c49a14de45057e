//! One writer per archive: a second writer would delete the first one's staged files.
//! The lock is the operating system's (`flock` on `.lock` in the archive root), so it
//! holds across containers sharing a volume and is released when the writer dies; the
//! file also names the holder's pid for people.

use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::Path;

use super::HistoryError;

/// Held while the writer lives.
pub(super) struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock of the archive at `dir`, or says who holds it.
    pub(super) fn take(dir: &Path) -> Result<Self, HistoryError> {
        let path = dir.join(".lock");
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(HistoryError::io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(HistoryError::Busy {
                    dir: dir.to_path_buf(),
                    holder: holder.trim().to_string(),
                    lock: path,
                });
            }
            Err(TryLockError::Error(e)) => return Err(HistoryError::io(&path)(e)),
        }
        file.set_len(0)
            .and_then(|()| write!(file, "{}", std::process::id()))
            .map_err(HistoryError::io(&path))?;
        Ok(Self { _file: file })
    }
}
