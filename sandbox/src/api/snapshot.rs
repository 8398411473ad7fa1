//! One API server's objects kept in a file, as etcd keeps a real
//! server's: every stored object as it is (uid, resourceVersion, owner
//! references, finalizers, status), the resourceVersion counter and the
//! next service IP. Not kept: the watch history (a restored server
//! answers 410 Gone to a watch from before the snapshot, as a real one
//! does after its watch cache is rebuilt, and its clients list again) and
//! the bearer tokens (issued anew at each start; ServiceAccount tokens
//! are issued for accounts the snapshot holds).
//!
//! The file is JSON, written whole to a temporary file in the same
//! directory (mode 0600), synced, and renamed over the old one, so a
//! crash leaves either the old snapshot or the new one. It holds the
//! cluster's Secrets in plain text: keep it where the server's owner
//! alone can read.
//!
//! ```no_run
//! # async fn demo() -> Result<(), modelfleet_sandbox::api::SnapshotError> {
//! use std::time::Duration;
//! use modelfleet_sandbox::api::{ApiServer, ApiServerOptions};
//!
//! let path = std::path::Path::new("/var/lib/sandbox/cluster.json");
//! let server = ApiServer::load(ApiServerOptions::default(), path)?
//!     .unwrap_or_else(ApiServer::new);
//! let keeper = server.keep_snapshot(path.to_owned(), Duration::from_secs(10));
//! // ... serve ...
//! keeper.stop().await?; // one last snapshot
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::ops::{self, meta};
use super::registry::GroupResource;
use super::store::ObjectKey;
use super::{ApiServer, ApiServerOptions, Faults, Shared};
use crate::logs::PodLogs;

/// The layout this version writes and reads.
pub const FORMAT: u32 = 1;

/// Why a snapshot could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "cannot read the sandbox snapshot {path}: {source}; fix its permissions, or move it \
         away to start this cluster empty"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the sandbox snapshot {path} cannot be loaded: {reason}. It was left as it is: move it \
         away (or delete it) to start this cluster empty, or restore a good copy"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write the sandbox snapshot {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileOut<'a> {
    format: u32,
    resource_version: String,
    next_service_ip: u32,
    resources: Vec<ResourceOut<'a>>,
}

#[derive(Serialize)]
struct ResourceOut<'a> {
    group: &'a str,
    resource: &'a str,
    objects: Vec<&'a Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileIn {
    format: u32,
    resource_version: String,
    next_service_ip: u32,
    resources: Vec<ResourceIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceIn {
    group: String,
    resource: String,
    objects: Vec<Value>,
}

/// What a snapshot holds, checked and ready to be put back.
#[derive(Debug)]
pub struct Restored {
    pub rv: u64,
    pub next_service_ip: u32,
    pub objects: Vec<(GroupResource, ObjectKey, Value)>,
}

fn version_of(obj: &Value) -> Option<u64> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
}

/// The snapshot in `bytes`, or why it is not one this version can load.
pub fn parse(bytes: &[u8]) -> Result<Restored, String> {
    let file: FileIn = serde_json::from_slice(bytes).map_err(|e| format!("not a snapshot: {e}"))?;
    if file.format != FORMAT {
        return Err(format!(
            "it is in format {}, this version reads format {FORMAT}",
            file.format
        ));
    }
    let rv: u64 = file
        .resource_version
        .parse()
        .map_err(|_| format!("invalid resourceVersion {:?}", file.resource_version))?;
    let mut objects = Vec::new();
    let mut keys = BTreeSet::new();
    let mut uids = BTreeSet::new();
    for resource in file.resources {
        let gr = GroupResource::new(&resource.group, &resource.resource);
        let what = if gr.group.is_empty() {
            gr.resource.clone()
        } else {
            format!("{}.{}", gr.resource, gr.group)
        };
        for obj in resource.objects {
            let (Some(name), Some(uid), Some(_)) =
                (meta(&obj, "name"), meta(&obj, "uid"), version_of(&obj))
            else {
                return Err(format!(
                    "an object of {what} lacks a name, a uid or a resourceVersion"
                ));
            };
            let key = (
                meta(&obj, "namespace").unwrap_or_default().to_owned(),
                name.to_owned(),
            );
            if !keys.insert((gr.clone(), key.clone())) {
                return Err(format!("{what} {}/{} is in it twice", key.0, key.1));
            }
            if !uids.insert(uid.to_owned()) {
                return Err(format!("uid {uid} is in it twice"));
            }
            objects.push((gr.clone(), key, obj));
        }
    }
    Ok(Restored {
        rv,
        next_service_ip: file.next_service_ip,
        objects,
    })
}

/// The snapshot of `state`, as the file holds it.
fn render(state: &ops::State) -> Vec<u8> {
    let mut resources: Vec<ResourceOut<'_>> = state
        .store
        .resources()
        .map(|(gr, map)| ResourceOut {
            group: &gr.group,
            resource: &gr.resource,
            objects: map.values().collect(),
        })
        .collect();
    resources.sort_by(|a, b| (a.group, a.resource).cmp(&(b.group, b.resource)));
    let file = FileOut {
        format: FORMAT,
        resource_version: state.store.current_rv().to_string(),
        next_service_ip: state.next_service_ip(),
        resources,
    };
    serde_json::to_vec(&file).expect("JSON values serialize")
}

/// Writes `bytes` to `path` through a new temporary file beside it (mode
/// 0600, synced) renamed over it; then syncs the directory, so the rename
/// outlives a crash too.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let temporary = dir.join(format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()
}

fn write(shared: &Shared, path: &Path) -> Result<u64, SnapshotError> {
    let (rv, bytes) = {
        let state = shared.lock();
        (state.store.current_rv(), render(&state))
    };
    write_atomically(path, &bytes).map_err(|source| SnapshotError::Write {
        path: path.to_owned(),
        source,
    })?;
    Ok(rv)
}

impl ApiServer {
    /// The server the snapshot at `path` kept, with `options`; `None` when
    /// there is no file at `path`. A file that cannot be read or is no
    /// snapshot is an error naming it, never taken for an empty cluster.
    pub fn load(
        options: ApiServerOptions,
        path: &Path,
    ) -> Result<Option<ApiServer>, SnapshotError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SnapshotError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let restored = parse(&bytes).map_err(|reason| SnapshotError::Corrupt {
            path: path.to_owned(),
            reason,
        })?;
        let state = ops::State::restored(
            options.history_limit,
            options.watch_buffer,
            options.seed,
            restored,
        );
        Ok(Some(ApiServer::from_state(state, options)))
    }

    /// Writes a snapshot of every object to `path` (see the module
    /// documentation); returns the resourceVersion it holds.
    pub fn write_snapshot(&self, path: &Path) -> Result<u64, SnapshotError> {
        write(&self.shared, path)
    }

    /// Writes a snapshot to `path` every `every` while objects change (and
    /// once soon after this call), until [`SnapshotKeeper::stop`] writes the
    /// last one. Must be called inside a tokio runtime.
    pub fn keep_snapshot(&self, path: PathBuf, every: Duration) -> SnapshotKeeper {
        let (stop, mut stopped) = oneshot::channel();
        let shared = self.shared.clone();
        let looping = (shared.clone(), path.clone());
        let task = tokio::spawn(async move {
            let (shared, path) = looping;
            let mut written = None;
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = ticks.tick() => {}
                }
                let current = shared.lock().store.current_rv();
                if written == Some(current) {
                    continue;
                }
                let (shared, path) = (shared.clone(), path.clone());
                match tokio::task::spawn_blocking(move || write(&shared, &path)).await {
                    Ok(Ok(rv)) => written = Some(rv),
                    Ok(Err(error)) => tracing::warn!(%error, "the sandbox snapshot is not current"),
                    Err(error) => tracing::warn!(%error, "the sandbox snapshot writer failed"),
                }
            }
        });
        SnapshotKeeper {
            shared,
            path,
            stop: Some(stop),
            task,
        }
    }

    pub(super) fn from_state(state: ops::State, options: ApiServerOptions) -> ApiServer {
        ApiServer {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                faults: Faults::default(),
                logs: PodLogs::default(),
                options,
            }),
        }
    }
}

/// Keeps a server's snapshot current; see [`ApiServer::keep_snapshot`].
/// Dropping it stops the periodic writes without a last one.
#[derive(Debug)]
pub struct SnapshotKeeper {
    shared: Arc<Shared>,
    path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl SnapshotKeeper {
    /// Where the snapshot is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the periodic writes (after one in progress) and writes the
    /// last snapshot; returns the resourceVersion it holds.
    pub async fn stop(mut self) -> Result<u64, SnapshotError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        let (shared, path) = (self.shared.clone(), self.path.clone());
        match tokio::task::spawn_blocking(move || write(&shared, &path)).await {
            Ok(written) => written,
            Err(e) => Err(SnapshotError::Write {
                path: self.path.clone(),
                source: io::Error::other(e),
            }),
        }
    }
}

impl Drop for SnapshotKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
