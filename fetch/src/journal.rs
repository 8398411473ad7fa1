//! What a download has done so far, kept beside it, and the marker that
//! says a published directory is complete.
//!
//! A download is written into `<dest>.partial/`, a sibling of the
//! destination (the same file system, so publishing it is one rename). The
//! journal, `<dest>.partial/.modelfleet-fetch-journal.json`, names the
//! source and, per file, the object's size and ETag and which chunks are
//! on disk (each synced before it is listed). A restart keeps the chunks
//! of every file whose object is unchanged and fetches the rest. Once
//! every file is complete and its size checked, the journal is replaced by
//! the marker `.modelfleet-fetch.json` and the directory renamed to
//! `<dest>`: a destination exists only complete.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub(crate) const JOURNAL: &str = ".modelfleet-fetch-journal.json";
/// In a published destination: what it holds and where it came from.
pub const MARKER: &str = ".modelfleet-fetch.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub source: String,
    pub files: BTreeMap<String, FileState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileState {
    pub size: u64,
    pub etag: Option<String>,
    pub chunk_size: u64,
    /// Chunk numbers on disk and synced.
    pub done: BTreeSet<u64>,
}

/// One file of a published destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerFile {
    pub path: String,
    pub size: u64,
    pub etag: Option<String>,
}

/// The marker of a complete destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub source: String,
    pub files: Vec<MarkerFile>,
}

pub(crate) fn partial_dir(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

impl Journal {
    /// The journal in `dir`, if one is there and readable; a journal that
    /// cannot be read is as good as none (its chunks are fetched again).
    pub(crate) async fn load(dir: &Path) -> Option<Journal> {
        let text = tokio::fs::read(dir.join(JOURNAL)).await.ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes the journal into `dir`: a temporary file renamed over the
    /// old one, so a crash leaves either.
    pub(crate) async fn save(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let tmp = dir.join(format!("{JOURNAL}.tmp"));
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, dir.join(JOURNAL)).await
    }
}

impl Marker {
    pub async fn load(dest: &Path) -> Option<Marker> {
        let text = tokio::fs::read(dest.join(MARKER)).await.ok()?;
        serde_json::from_slice(&text).ok()
    }
}

/// Whether `relative` (an object key below the source's prefix) is a path
/// that stays inside the destination: no `..`, no absolute or empty parts,
/// nothing hidden under the names fetch keeps for itself. The bucket's
/// contents decide these names, so they are checked like any input.
pub(crate) fn safe_relative(relative: &str) -> bool {
    !relative.is_empty()
        && relative.len() <= 1024
        && relative != JOURNAL
        && relative != MARKER
        && !relative.starts_with(&format!("{JOURNAL}."))
        && relative
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'))
        && !relative.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_that_would_leave_the_destination_are_refused() {
        for good in [
            "config.json",
            "model-00001-of-00002.safetensors",
            "a/b/c.bin",
        ] {
            assert!(safe_relative(good), "{good}");
        }
        for bad in [
            "",
            "../etc/passwd",
            "a/../../b",
            "/abs",
            "a//b",
            "./x",
            "a\\..\\b",
            MARKER,
            JOURNAL,
        ] {
            assert!(!safe_relative(bad), "{bad}");
        }
    }

    #[test]
    fn the_partial_directory_is_a_sibling() {
        assert_eq!(
            partial_dir(Path::new("/models/llama")),
            PathBuf::from("/models/llama.partial")
        );
    }
}
