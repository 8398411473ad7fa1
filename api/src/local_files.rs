//! The files a hub keeps on its own disk, in its data directory: the key
//! that seals secrets (see [`crate::secret`]), the first credentials, the
//! embedded clusters' kubeconfigs and the SQLite database. Only the user
//! the hub runs as may read them, and nobody else may put anything there.
//!
//! Hence a data directory that others can enter is refused rather than
//! used (anyone who can write into it can plant a link where the hub
//! writes, or read the key), and the hub's files are created new, never
//! written through whatever already stands at their path.

use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot create the data directory {dir}")]
    Create {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the data directory {dir} is not a directory")]
    NotADirectory { dir: PathBuf },
    #[error(
        "the data directory {dir} is open to other users (mode {mode:03o}); it holds the key that \
         seals every secret, so only its owner may use it: run `chmod 700 {dir}`"
    )]
    Permissions { dir: PathBuf, mode: u32 },
}

/// The data directory `dir`: created (with its missing parents) for its
/// owner only, or, when it exists, refused unless only its owner may read,
/// write or enter it.
pub fn open_data_dir(dir: &Path) -> Result<(), DataDirError> {
    let created = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    if let Err(source) = created {
        return Err(match std::fs::metadata(dir) {
            Ok(meta) if !meta.is_dir() => DataDirError::NotADirectory {
                dir: dir.to_owned(),
            },
            _ => DataDirError::Create {
                dir: dir.to_owned(),
                source,
            },
        });
    }
    // Follows a link: a data directory may be one (onto a volume, say);
    // what counts is the directory it leads to.
    let meta = std::fs::metadata(dir).map_err(|source| DataDirError::Create {
        dir: dir.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(DataDirError::Permissions {
            dir: dir.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Writes `text` to a new file at `path` that only its owner can read.
///
/// Refuses when anything already stands at `path`, a symbolic link above
/// all: `create_new` is `O_CREAT | O_EXCL`, which fails on a link, even
/// one to a file that does not exist, rather than follow it.
pub fn write_private(path: &Path, text: &[u8]) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{} already exists; the hub writes it only as a new file, never through \
                         what stands there: move it away and start again",
                        path.display()
                    ),
                )
            } else {
                e
            }
        })?;
    file.write_all(text)?;
    file.sync_all()
}

/// Writes `text` to `path` as a new file only its owner can read, in place
/// of whatever was there: a file written again on each start (a
/// kubeconfig). What stood there is removed first, a link as a link (its
/// target untouched).
pub fn replace_private(path: &Path, text: &[u8]) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    write_private(path, text)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn a_file_written_again_replaces_a_planted_link_not_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, "untouched").unwrap();
        let path = dir.path().join("cluster.kubeconfig");
        symlink(&target, &path).unwrap();
        replace_private(&path, b"apiVersion: v1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "apiVersion: v1\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        replace_private(&path, b"again\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "again\n");
    }
}
