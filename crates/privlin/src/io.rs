//! Atomic artifact writes: write to a temporary file in the same directory, then rename.
//! A crash or a bad input never leaves a half-written artifact where a complete one was.

use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Run `write` on a temporary path next to `path`, then rename it over `path`.
pub fn atomic_write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = temp_path(path);
    let result = write(&tmp).and_then(|()| {
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// `bytes` to `path` atomically: the engine's writer ([`privlin_mpc::model::write_atomic`]), the
/// one implementation for bytes (the same temporary name and clean-up as [`atomic_write_with`]).
pub fn atomic_write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    privlin_mpc::model::write_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

pub fn atomic_write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    atomic_write_bytes(path, text.as_bytes())
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that fails (here: the target is a directory, so the rename is refused) leaves the
    /// target as it was and no temporary file behind; a good write replaces the file whole.
    #[test]
    fn failed_writes_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("artifact.json");
        std::fs::create_dir(&blocked).unwrap();
        let err = atomic_write_bytes(&blocked, b"new").unwrap_err();
        assert!(format!("{err:#}").contains("artifact.json"), "{err:#}");
        assert!(blocked.is_dir());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("artifact.json")]);
        let ok = dir.path().join("sub/ok.json");
        atomic_write_json(&ok, &vec![1, 2]).unwrap();
        atomic_write_bytes(&ok, b"[3]\n").unwrap();
        assert_eq!(std::fs::read_to_string(&ok).unwrap(), "[3]\n");
        assert_eq!(std::fs::read_dir(ok.parent().unwrap()).unwrap().count(), 1);
    }
}
