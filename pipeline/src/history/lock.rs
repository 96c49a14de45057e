//! One writer per archive: a second writer would delete the first one's staged files.

use std::fs;
use std::path::{Path, PathBuf};

use super::HistoryError;

/// `.lock` in the archive root, holding the writer's pid: a second writer would delete
/// the first one's staged files. A lock whose process is gone is taken over.
pub(super) struct WriterLock(PathBuf);

impl WriterLock {
    /// Takes the lock of the archive at `dir`, or says who holds it.
    pub(super) fn take(dir: &Path) -> Result<Self, HistoryError> {
        let path = dir.join(".lock");
        if let Ok(pid) = fs::read_to_string(&path) {
            let pid = pid.trim();
            if !pid.is_empty()
                && pid != std::process::id().to_string()
                && Path::new("/proc").join(pid).exists()
            {
                return Err(HistoryError::Usage(format!(
                    "{}: the archive is being written by process {pid}; one writer at a time",
                    dir.display()
                )));
            }
        }
        fs::write(&path, std::process::id().to_string()).map_err(HistoryError::io(&path))?;
        Ok(Self(path))
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
