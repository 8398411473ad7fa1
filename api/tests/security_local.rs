//! Issue 16, finding 8: what a local attacker could do.
//!
//! - The data directory holds the key that seals every secret and the
//!   first credentials: one that others can read is refused, with the
//!   command that fixes it; a new one is created for its owner only.
//! - The first credentials and the key file are never written through a
//!   symbolic link planted where they go.

use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::Path;

use modelfleet_api::SecretKey;
use modelfleet_api::local_files::{self, DataDirError};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_data_directory_others_can_read_is_refused_with_the_fix() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    for open in [0o755, 0o750, 0o701, 0o770] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(open)).unwrap();
        let error = local_files::open_data_dir(&dir).unwrap_err();
        assert!(
            matches!(error, DataDirError::Permissions { .. }),
            "{open:o}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("chmod 700 {}", dir.display())),
            "{open:o}: {message}"
        );
        assert_eq!(mode(&dir), open, "the hub changed the mode itself");
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    local_files::open_data_dir(&dir).unwrap();

    // A new one, parents and all, is the owner's only.
    let new = parent.path().join("a/b/data");
    local_files::open_data_dir(&new).unwrap();
    assert_eq!(mode(&new), 0o700);

    // A file where the directory should be is refused too.
    let file = parent.path().join("file");
    std::fs::write(&file, "x").unwrap();
    assert!(local_files::open_data_dir(&file).is_err());
}

/// A private data directory with a file `target` outside it that an
/// attacker would like the hub to overwrite.
fn planted() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    local_files::open_data_dir(&dir).unwrap();
    let target = root.path().join("victim");
    std::fs::write(&target, "untouched").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    (root, dir, target)
}

#[test]
fn the_first_credentials_are_not_written_through_a_planted_link() {
    let (_root, dir, target) = planted();
    let credentials = dir.join("initial-credentials");
    symlink(&target, &credentials).unwrap();
    let error = local_files::write_private(&credentials, b"admin_password=hunter2\n").unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
    assert_eq!(mode(&target), 0o644);

    // A link to a file that does not exist yet is not followed either.
    let absent = dir.parent().unwrap().join("absent");
    std::fs::remove_file(&credentials).unwrap();
    symlink(&absent, &credentials).unwrap();
    assert!(local_files::write_private(&credentials, b"x").is_err());
    assert!(!absent.exists(), "the link was followed");

    // Where nothing is, the file is created for its owner only.
    std::fs::remove_file(&credentials).unwrap();
    local_files::write_private(&credentials, b"admin_password=x\n").unwrap();
    assert_eq!(mode(&credentials), 0o600);
}

#[test]
fn the_key_file_is_not_created_through_a_planted_link() {
    let (_root, dir, _target) = planted();
    let key_file = dir.join("secret.key");
    let absent = dir.parent().unwrap().join("absent.key");
    symlink(&absent, &key_file).unwrap();
    let error = SecretKey::load_or_create(&key_file).unwrap_err();
    assert!(error.to_string().contains("symbolic link"), "{error}");
    assert!(!absent.exists(), "the key was written through the link");
}
