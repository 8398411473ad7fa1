//! The node's model cache: `modelfleet fetch --cache DIR` keeps each
//! source once in `DIR/<key>` (see [`cache_key`]) and links the pod's
//! destination to it.
//!
//! - **Once per node.** Every fetch of a source takes the entry's lock
//!   (`DIR/.locks/<key>`, an exclusive `flock`) for as long as it works on
//!   the entry: a second pod of the node, or a second worker of a
//!   multi-node group landing there, waits for the first and then finds
//!   the entry complete.
//! - **Verified, every time.** A complete entry is used only if the
//!   source's listing, made with this pod's own credentials, names the
//!   same files with the same sizes and ETags, and every file on disk
//!   still has its size. So a pod that cannot read the source cannot use
//!   the cache either, and an object changed at the source is fetched
//!   again. The listing is one request; no object is read.
//! - **Bounded.** Before a download, entries are evicted, least recently
//!   used first, until the new model fits in [`Cache::max_bytes`]; an
//!   entry another fetch holds the lock of is never evicted. An engine
//!   that already loaded an evicted model keeps running (its open files
//!   stay readable); a pod started later fetches it again.
//! - **Linked.** The destination becomes a symbolic link to the entry, so
//!   the engine, which mounts the cache at the same path, reads it there.
//!
//! The operator mounts a per-namespace directory of the node's cache (a
//! `hostPath` PersistentVolume bound to one claim in the tenant's
//! namespace), so entries are never shared between tenants.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::journal::{MARKER, Marker, partial_dir};
use crate::store::Plan;
use crate::{FetchError, FetchOptions, Fetched, Object, Progress};

/// A node's model cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    pub dir: PathBuf,
    /// Bytes of complete models the cache may hold.
    pub max_bytes: u64,
}

const LOCKS: &str = ".locks";
/// Beside each entry's lock: touched at every use, for eviction.
const USED_SUFFIX: &str = ".used";

/// The entry's directory name for `source`: the source made readable as
/// one path segment, with a digest of the exact text so that no two
/// sources share an entry: `hf://Qwen/Qwen3-8B@main` →
/// `hf~Qwen~Qwen3-8B@main-3f9c0a1b22d4`.
pub fn cache_key(source: &str) -> String {
    use sha2::{Digest, Sha256};
    let readable: String = source
        .replacen("://", "~", 1)
        .chars()
        .map(|c| match c {
            '/' | '~' => '~',
            c if c.is_ascii_alphanumeric() || "._-@".contains(c) => c,
            _ => '_',
        })
        .take(96)
        .collect();
    let digest = hex::encode(Sha256::digest(source.as_bytes()));
    format!("{readable}-{}", &digest[..12])
}

/// Fetches `options.source` through `cache`: from the cache when it holds
/// the source unchanged, else downloaded into it; `options.dest` is then
/// a link to the entry.
pub async fn fetch_through_cache(
    options: &FetchOptions,
    cache: &Cache,
    every: Duration,
    progress: impl Fn(Progress) + Send + Sync,
) -> Result<Fetched, FetchError> {
    let plan = Plan::of(&options.source)?;
    let io = |what: String, e: std::io::Error| FetchError::Io(format!("cannot {what}: {e}"));
    let dest = options.dest.as_path();
    if dest.exists() && !dest.is_symlink() {
        return Err(FetchError::Destination(format!(
            "{} exists and is not a link into the cache; remove it, or give another --dest",
            dest.display()
        )));
    }
    let key = cache_key(&options.source);
    let locks = cache.dir.join(LOCKS);
    tokio::fs::create_dir_all(&locks)
        .await
        .map_err(|e| io(format!("create {}", locks.display()), e))?;
    let lock_path = locks.join(&key);
    let lock = lock(&lock_path).await?;

    let entry = cache.dir.join(&key);
    let (store, objects, from) = plan.connect(options).await?;
    let fetched = if holds(&entry, &options.source, &objects).await {
        Fetched {
            files: objects.len(),
            bytes: objects.iter().map(|o| o.size).sum(),
            resumed_bytes: 0,
            resumed_chunks: 0,
            already_there: false,
            from_cache: true,
        }
    } else {
        if entry.exists() {
            // Stale (the source changed) or damaged: fetched again whole.
            tokio::fs::remove_dir_all(&entry)
                .await
                .map_err(|e| io(format!("remove the stale {}", entry.display()), e))?;
        }
        let need: u64 = objects.iter().map(|o| o.size).sum();
        if need > cache.max_bytes {
            return Err(FetchError::Destination(format!(
                "{} is {need} bytes, more than the node cache's {} bytes; raise the pool's \
                 modelfleet.io/model-cache-size or deploy it on a pool without a cache",
                options.source, cache.max_bytes
            )));
        }
        evict(&cache.dir, &key, need, cache.max_bytes).await?;
        crate::download(options, &entry, &store, &objects, &from, every, &progress).await?
    };
    touch(&locks.join(format!("{key}{USED_SUFFIX}"))).await?;
    link(&entry, dest).await?;
    drop(lock);
    Ok(fetched)
}

/// Takes the exclusive lock at `path`, waiting for another holder.
async fn lock(path: &Path) -> Result<std::fs::File, FetchError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| FetchError::Io(format!("cannot open the lock {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!(
                "fetch: another fetch on this node is downloading the same model; waiting for it"
            );
            tokio::task::spawn_blocking(move || file.lock().map(|()| file))
                .await
                .map_err(|e| FetchError::Io(format!("cannot wait for the lock: {e}")))?
                .map_err(|e| FetchError::Io(format!("cannot lock {}: {e}", path.display())))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(FetchError::Io(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// Whether `entry` is a complete fetch of `source` holding exactly
/// `objects`, each file still of its size.
async fn holds(entry: &Path, source: &str, objects: &[Object]) -> bool {
    let Some(marker) = Marker::load(entry).await else {
        return false;
    };
    if marker.source != source || marker.files.len() != objects.len() {
        return false;
    }
    for o in objects {
        let Some(file) = marker.files.iter().find(|f| f.path == o.relative) else {
            return false;
        };
        if file.size != o.size || file.etag != o.etag {
            return false;
        }
        match tokio::fs::metadata(entry.join(&o.relative)).await {
            Ok(m) if m.len() == o.size => {}
            _ => return false,
        }
    }
    true
}

/// Marks a use of an entry now.
async fn touch(path: &Path) -> Result<(), FetchError> {
    tokio::fs::write(path, b"")
        .await
        .map_err(|e| FetchError::Io(format!("cannot write {}: {e}", path.display())))
}

/// One complete entry of the cache.
struct Entry {
    key: String,
    bytes: u64,
    used: SystemTime,
}

/// The complete entries in `dir`, with their sizes from their markers.
async fn entries(dir: &Path) -> Result<Vec<Entry>, FetchError> {
    let mut out = Vec::new();
    let mut read = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| FetchError::Io(format!("cannot read {}: {e}", dir.display())))?;
    while let Ok(Some(item)) = read.next_entry().await {
        let key = item.file_name().to_string_lossy().into_owned();
        if key.starts_with('.') || key.ends_with(".partial") {
            continue;
        }
        let Some(marker) = Marker::load(&item.path()).await else {
            continue;
        };
        let used_at = dir.join(LOCKS).join(format!("{key}{USED_SUFFIX}"));
        let used = match tokio::fs::metadata(&used_at).await {
            Ok(m) => m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            Err(_) => tokio::fs::metadata(item.path().join(MARKER))
                .await
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH),
        };
        out.push(Entry {
            key,
            bytes: marker.files.iter().map(|f| f.size).sum(),
            used,
        });
    }
    Ok(out)
}

/// Removes entries, least recently used first, until `need` more bytes
/// fit under `max_bytes`; `keep`, and any entry whose lock another fetch
/// holds, stay. Partial downloads of other sources count too, and go
/// first: a fetch that was abandoned leaves one behind.
async fn evict(dir: &Path, keep: &str, need: u64, max_bytes: u64) -> Result<(), FetchError> {
    let mut all = entries(dir).await?;
    let partials = partial_bytes(dir, keep).await;
    let mut used: u64 =
        all.iter().map(|e| e.bytes).sum::<u64>() + partials.iter().map(|p| p.1).sum::<u64>();
    for (path, bytes) in partials {
        if used.saturating_add(need) <= max_bytes {
            return Ok(());
        }
        if let Some(_held) = try_lock_entry(dir, &path)
            && tokio::fs::remove_dir_all(dir.join(&path)).await.is_ok()
        {
            used = used.saturating_sub(bytes);
        }
    }
    all.sort_by_key(|e| e.used);
    for entry in all {
        if used.saturating_add(need) <= max_bytes {
            break;
        }
        if entry.key == keep {
            continue;
        }
        let Some(_held) = try_lock_entry(dir, &entry.key) else {
            continue;
        };
        let path = dir.join(&entry.key);
        // Renamed first, so that the entry disappears at once and whole.
        let doomed = dir.join(format!(".evicted-{}", entry.key));
        if tokio::fs::rename(&path, &doomed).await.is_ok() {
            let _ = tokio::fs::remove_dir_all(&doomed).await;
            let _ =
                tokio::fs::remove_file(dir.join(LOCKS).join(format!("{}{USED_SUFFIX}", entry.key)))
                    .await;
            eprintln!(
                "fetch: evicted {} ({} bytes) from the node cache to make room",
                entry.key, entry.bytes
            );
            used = used.saturating_sub(entry.bytes);
        }
    }
    Ok(())
}

/// Partial downloads of sources other than `keep`: (directory name, bytes).
async fn partial_bytes(dir: &Path, keep: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(mut read) = tokio::fs::read_dir(dir).await else {
        return out;
    };
    let own = partial_dir(&dir.join(keep));
    while let Ok(Some(item)) = read.next_entry().await {
        let name = item.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".partial") || item.path() == own {
            continue;
        }
        let bytes = tokio::task::spawn_blocking({
            let path = item.path();
            move || disk_bytes(&path)
        })
        .await
        .unwrap_or(0);
        out.push((name, bytes));
    }
    out
}

/// The lock of the entry named `name` (or of its partial download), if
/// no other fetch holds it.
fn try_lock_entry(dir: &Path, name: &str) -> Option<std::fs::File> {
    let key = name.strip_suffix(".partial").unwrap_or(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCKS).join(key))
        .ok()?;
    file.try_lock().ok().map(|()| file)
}

/// Bytes of the files below `path`.
fn disk_bytes(path: &Path) -> u64 {
    let Ok(read) = std::fs::read_dir(path) else {
        return 0;
    };
    read.flatten()
        .map(|item| match item.file_type() {
            Ok(t) if t.is_dir() => disk_bytes(&item.path()),
            Ok(_) => item.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Makes `dest` a link to `entry`, replacing an earlier link in one step.
async fn link(entry: &Path, dest: &Path) -> Result<(), FetchError> {
    let io = |what: String, e: std::io::Error| FetchError::Io(format!("cannot {what}: {e}"));
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| io(format!("create {}", parent.display()), e))?;
    }
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".link");
    let tmp = dest.with_file_name(name);
    let _ = tokio::fs::remove_file(&tmp).await;
    tokio::fs::symlink(entry, &tmp)
        .await
        .map_err(|e| io(format!("link {} to {}", tmp.display(), entry.display()), e))?;
    tokio::fs::rename(&tmp, dest)
        .await
        .map_err(|e| io(format!("rename {} to {}", tmp.display(), dest.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_has_its_own_readable_key() {
        let a = cache_key("hf://Qwen/Qwen3-8B@main");
        assert!(a.starts_with("hf~Qwen~Qwen3-8B@main-"), "{a}");
        assert_eq!(a.len(), "hf~Qwen~Qwen3-8B@main-".len() + 12);
        // Sources that read alike once made one segment still differ.
        assert_ne!(cache_key("s3://b/a_b"), cache_key("s3://b/a b"));
        assert_ne!(cache_key("s3://b/m"), cache_key("oss://b/m"));
        for source in ["s3://b/../../etc", "https://h/a/.hidden", "s3://b/x\0y"] {
            let key = cache_key(source);
            assert!(
                !key.contains('/') && !key.starts_with('.') && !key.contains('\0'),
                "{source} → {key}"
            );
        }
        assert!(cache_key(&format!("s3://b/{}", "x".repeat(500))).len() <= 96 + 13);
    }
}
