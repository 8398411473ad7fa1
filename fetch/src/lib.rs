//! `modelfleet fetch`: a model's weights from an object store into the
//! directory a pod's engine loads them from.
//!
//! Every object under the source's prefix is downloaded with parallel
//! ranged GETs of [`Tuning::chunk_size`] bytes, at most
//! [`Tuning::concurrency`] at once across all files, each written at its
//! offset into a file preallocated to the object's size — memory stays at
//! a few buffers per request whatever the model's size. Each ranged GET is
//! pinned to the listed ETag (`If-Match`), so a file is never stitched from
//! two versions of an object. A chunk resumes where it stopped after a
//! transient error or a stalled connection (no bytes for
//! [`Tuning::stall_after`]), with backoff and jitter; a refusal (403, no
//! such bucket or object) ends the fetch at once with one line saying what
//! to do. The download goes into `<dest>.partial/` with a journal of the
//! chunks on disk ([`journal`]), so a fetch interrupted and run again
//! continues; the directory is renamed to `<dest>` only once every file is
//! complete and its size checked.
//!
//! Sources: `s3://`, `oss://`, `obs://` and `cos://` (each cloud's
//! endpoint from [`endpoint::resolve`]); `hf://org/model[@revision]`
//! from Hugging Face or a mirror (`HF_ENDPOINT`, `HF_TOKEN`), whose
//! published SHA-256 is checked for every LFS file;
//! `modelscope://org/model[@revision]` from ModelScope or a mirror
//! (`MODELSCOPE_ENDPOINT`, `MODELSCOPE_API_TOKEN`), every file with a
//! published SHA-256 checked; and `https://host[:port]/path/to/file`, one
//! file from any server that honours `Range`, pinned by its ETag, saved as
//! `<dest>/<last path segment>`. The HTTP sources trust the system's CAs
//! and those of [`Env::ca_file`] (`--ca-file`, `MODELFLEET_FETCH_CA_FILE`).
//! `pvc://` is a mount, not a fetch.

mod cache;
mod download;
pub mod endpoint;
mod guard;
mod http;
mod https;
mod hub;
pub mod identity;
mod inspect;
pub mod journal;
mod modelscope;
mod s3;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use modelfleet_core::contract::fetch::{FetchSummary, WeightsOrigin};

pub use crate::cache::{Cache, cache_key, fetch_through_cache};
use crate::endpoint::{EndpointOverrides, Environment};
pub use crate::guard::ConnectGuard;
pub use crate::inspect::{Inspected, MAX_HEADERS_BYTES, MAX_SHARDS, inspect};
use crate::journal::{FileState, Journal, MARKER, Marker, MarkerFile, partial_dir, safe_relative};
pub use crate::store::CredentialSource;
use crate::store::Plan;

/// How hard and how patiently to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// Bytes per ranged GET.
    pub chunk_size: u64,
    /// Ranged GETs in flight at once, over all files.
    pub concurrency: usize,
    /// A connection that delivers no bytes for this long is dropped and
    /// the chunk resumed on a new one.
    pub stall_after: Duration,
    /// Failures in a row, without a byte of progress, before a chunk
    /// gives up.
    pub attempts: u32,
    /// The first retry's wait; each next one doubles, with jitter.
    pub backoff: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            chunk_size: 16 * 1024 * 1024,
            concurrency: 16,
            stall_after: Duration::from_secs(30),
            attempts: 6,
            backoff: Duration::from_millis(250),
        }
    }
}

/// One fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub source: String,
    pub dest: PathBuf,
    pub endpoint: EndpointOverrides,
    pub tuning: Tuning,
    pub env: Env,
}

/// What the fetch reads from its environment, as the AWS SDKs do: the
/// endpoint and region, and the keys (shown as `…` when debug-printed).
#[derive(Clone, Default)]
pub struct Env {
    pub endpoint: Environment,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// A Hugging Face mirror [default: https://huggingface.co].
    pub hf_endpoint: Option<String>,
    pub hf_token: Option<String>,
    /// A ModelScope mirror [default: https://www.modelscope.cn].
    pub modelscope_endpoint: Option<String>,
    pub modelscope_token: Option<String>,
    /// PEM certificates of CAs to trust, besides the system's, for the
    /// sources fetched over HTTP (`hf://`, `modelscope://`, `https://`).
    pub ca_file: Option<PathBuf>,
    /// The pod's identity, used for an object store when no keys are set.
    pub identity: identity::IdentityEnv,
    /// Where an object store may be reached, for one who reads on
    /// someone else's behalf (the hub, for a tenant): checked, pinned and
    /// without a proxy ([`ConnectGuard`]). `None`: the SDK's own client.
    pub connect_guard: Option<ConnectGuard>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "…"),
            )
            .field("session_token", &self.session_token.as_ref().map(|_| "…"))
            .field("hf_endpoint", &self.hf_endpoint)
            .field("hf_token", &self.hf_token.as_ref().map(|_| "…"))
            .field("modelscope_endpoint", &self.modelscope_endpoint)
            .field(
                "modelscope_token",
                &self.modelscope_token.as_ref().map(|_| "…"),
            )
            .field("ca_file", &self.ca_file)
            .field("identity", &self.identity)
            .field("connect_guard", &self.connect_guard)
            .finish()
    }
}

impl Env {
    /// `AWS_ENDPOINT_URL(_S3)`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `HF_ENDPOINT`,
    /// `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`), `MODELSCOPE_ENDPOINT`,
    /// `MODELSCOPE_API_TOKEN` and `MODELFLEET_FETCH_CA_FILE` of this
    /// process.
    pub fn from_process() -> Env {
        Env {
            endpoint: Environment::from_process(),
            access_key_id: std::env::var("AWS_ACCESS_KEY_ID").ok(),
            secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY").ok(),
            session_token: std::env::var("AWS_SESSION_TOKEN").ok(),
            hf_endpoint: std::env::var("HF_ENDPOINT").ok(),
            hf_token: std::env::var("HF_TOKEN")
                .or_else(|_| std::env::var("HUGGING_FACE_HUB_TOKEN"))
                .ok(),
            modelscope_endpoint: std::env::var("MODELSCOPE_ENDPOINT").ok(),
            modelscope_token: std::env::var("MODELSCOPE_API_TOKEN").ok(),
            ca_file: std::env::var_os("MODELFLEET_FETCH_CA_FILE")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            identity: identity::IdentityEnv::from_vars(|name| std::env::var(name).ok()),
            connect_guard: None,
        }
    }
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub files: usize,
    pub bytes: u64,
    /// Bytes already on disk from an interrupted fetch, not fetched again,
    /// and in how many chunks.
    pub resumed_bytes: u64,
    pub resumed_chunks: usize,
    /// The destination was complete already (a restarted pod).
    pub already_there: bool,
    /// The node's cache held the model, checked against the source's
    /// listing: nothing was downloaded.
    pub from_cache: bool,
}

impl Fetched {
    /// What the fetch's summary line says of this.
    pub fn summary(&self) -> FetchSummary {
        FetchSummary {
            files: self.files,
            bytes: self.bytes,
            origin: if self.from_cache {
                WeightsOrigin::NodeCache
            } else if self.already_there {
                WeightsOrigin::AlreadyThere
            } else {
                WeightsOrigin::Downloaded
            },
        }
    }
}

/// Bytes done and total, as progress reports see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub files: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    BadSource(String),
    #[error(transparent)]
    Endpoint(#[from] endpoint::EndpointError),
    #[error("{0}")]
    Credentials(String),
    /// The store refused, or kept failing.
    #[error("{0}")]
    Source(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Destination(String),
}

/// One object to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Object {
    pub key: String,
    /// Its path below the destination.
    pub relative: String,
    pub size: u64,
    pub etag: Option<String>,
    /// The SHA-256 the source publishes for it (lower-case hex).
    pub sha256: Option<String>,
}

/// Fetches `options.source` into `options.dest`, calling `progress` about
/// every `every` while bytes arrive (and once at the end).
pub async fn fetch(
    options: &FetchOptions,
    every: Duration,
    progress: impl Fn(Progress) + Send + Sync,
) -> Result<Fetched, FetchError> {
    let plan = Plan::of(&options.source)?;
    let dest = options.dest.as_path();
    if let Some(marker) = Marker::load(dest).await
        && marker.source == options.source
    {
        return Ok(Fetched {
            files: marker.files.len(),
            bytes: marker.files.iter().map(|f| f.size).sum(),
            resumed_bytes: 0,
            resumed_chunks: 0,
            already_there: true,
            from_cache: false,
        });
    }
    if dest.exists() {
        return Err(FetchError::Destination(format!(
            "{} exists and is not a complete fetch of {}; remove it, or give another --dest",
            dest.display(),
            options.source
        )));
    }

    let (store, objects, from) = plan.connect(options).await?;
    download(options, dest, &store, &objects, &from, every, &progress).await
}

/// Downloads `objects` (what `options.source` lists) into `dest`, which
/// must not exist; resumes what an earlier run left in its partial
/// directory.
async fn download(
    options: &FetchOptions,
    dest: &Path,
    store: &store::Store,
    objects: &[Object],
    from: &CredentialSource,
    every: Duration,
    progress: &(impl Fn(Progress) + Send + Sync),
) -> Result<Fetched, FetchError> {
    if objects.is_empty() {
        return Err(FetchError::Source(format!(
            "{} holds no files; check the path (it names a prefix, like \
             s3://bucket/models/llama-3.1-8b, or a model, like hf://org/model)",
            options.source
        )));
    }
    if let Some(bad) = objects.iter().find(|o| !safe_relative(&o.relative)) {
        return Err(FetchError::Source(format!(
            "{}: object {:?} has a name that would be written outside {}; refusing it",
            options.source,
            bad.key,
            dest.display()
        )));
    }

    let work = partial_dir(dest);
    let (mut journal, resumed) = prepare(&work, &options.source, objects, &options.tuning).await?;
    let total: u64 = objects.iter().map(|o| o.size).sum();
    let done = Arc::new(AtomicU64::new(resumed));
    let chunks: Vec<(usize, u64)> = objects
        .iter()
        .enumerate()
        .flat_map(|(i, o)| {
            let state = &journal.files[&o.relative];
            chunk_count(o.size, state.chunk_size)
                .filter(|c| !state.done.contains(c))
                .map(move |c| (i, c))
                .collect::<Vec<_>>()
        })
        .collect();
    let resumed_chunks = journal.files.values().map(|f| f.done.len()).sum();

    let tuning = &options.tuning;
    let mut downloads = futures::stream::iter(chunks.into_iter().map(|(i, c)| {
        let (object, done) = (&objects[i], done.clone());
        let path = work.join(&object.relative);
        let uri = options.source.as_str();
        async move {
            let offset = c * tuning.chunk_size;
            let len = tuning.chunk_size.min(object.size - offset);
            download::chunk(store, uri, object, &path, offset, len, tuning, from, &done)
                .await
                .map(|()| (i, c))
        }
    }))
    .buffer_unordered(tuning.concurrency.max(1));

    let mut last_report = Instant::now();
    let mut last_save = Instant::now();
    // Chunks finished since the journal was last saved.
    let mut unsaved = false;
    let report = |done: u64| Progress {
        done,
        total,
        files: objects.len(),
    };
    loop {
        let next = tokio::time::timeout(every, downloads.next()).await;
        if last_report.elapsed() >= every {
            progress(report(done.load(Ordering::Relaxed)));
            last_report = Instant::now();
        }
        let (i, c) = match next {
            // No chunk finished for a while (the rest may be slow or
            // stalled): what did finish is kept, so a fetch killed now
            // resumes from it.
            Err(_) if unsaved => {
                journal
                    .save(&work)
                    .await
                    .map_err(|e| FetchError::Io(format!("cannot save the journal: {e}")))?;
                last_save = Instant::now();
                unsaved = false;
                continue;
            }
            Err(_) => continue,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                // What is on disk stays usable by the next run.
                let _ = journal.save(&work).await;
                return Err(e);
            }
            Ok(Some(Ok(finished))) => finished,
        };
        if let Some(state) = journal.files.get_mut(&objects[i].relative) {
            state.done.insert(c);
            unsaved = true;
        }
        if last_save.elapsed() >= Duration::from_secs(1) {
            journal
                .save(&work)
                .await
                .map_err(|e| FetchError::Io(format!("cannot save the journal: {e}")))?;
            last_save = Instant::now();
            unsaved = false;
        }
    }
    progress(report(done.load(Ordering::Relaxed)));
    publish(&work, dest, &options.source, objects).await?;
    Ok(Fetched {
        files: objects.len(),
        bytes: total,
        resumed_bytes: resumed,
        resumed_chunks,
        already_there: false,
        from_cache: false,
    })
}

fn chunk_count(size: u64, chunk_size: u64) -> std::ops::Range<u64> {
    0..size.div_ceil(chunk_size.max(1))
}

/// Makes `work` ready for `objects`: the journal of an earlier run of the
/// same source is kept for every file whose object is unchanged (same
/// size, ETag and chunk size), every other file starts again,
/// preallocated. Returns the journal and the bytes already on disk.
async fn prepare(
    work: &Path,
    source: &str,
    objects: &[Object],
    tuning: &Tuning,
) -> Result<(Journal, u64), FetchError> {
    let io = |what: &str, e: std::io::Error| FetchError::Io(format!("cannot {what}: {e}"));
    // An earlier run of the same source over the same file names is
    // continued; anything else starts afresh, so that no file left from
    // another listing is published with this one.
    let earlier = Journal::load(work).await.filter(|j| {
        j.source == source
            && j.files.len() == objects.len()
            && objects.iter().all(|o| j.files.contains_key(&o.relative))
    });
    if earlier.is_none() && work.exists() {
        tokio::fs::remove_dir_all(work)
            .await
            .map_err(|e| io(&format!("clear {}", work.display()), e))?;
    }
    tokio::fs::create_dir_all(work)
        .await
        .map_err(|e| io(&format!("create {}", work.display()), e))?;
    let earlier = earlier.unwrap_or_default();
    let mut journal = Journal {
        source: source.to_owned(),
        files: Default::default(),
    };
    let mut resumed = 0;
    for o in objects {
        let path = work.join(&o.relative);
        let fresh = FileState {
            size: o.size,
            etag: o.etag.clone(),
            chunk_size: tuning.chunk_size,
            done: Default::default(),
        };
        let kept = earlier
            .files
            .get(&o.relative)
            .filter(|s| s.size == o.size && s.etag == o.etag && s.chunk_size == tuning.chunk_size);
        let on_disk = tokio::fs::metadata(&path).await.map(|m| m.len()).ok();
        let state = match kept {
            Some(state) if on_disk == Some(o.size) => state.clone(),
            _ => {
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|e| io(&format!("create {}", parent.display()), e))?;
                }
                let file = tokio::fs::File::create(&path)
                    .await
                    .map_err(|e| io(&format!("create {}", path.display()), e))?;
                file.set_len(o.size)
                    .await
                    .map_err(|e| io(&format!("preallocate {}", path.display()), e))?;
                fresh
            }
        };
        resumed += state
            .done
            .iter()
            .map(|c| tuning.chunk_size.min(o.size - c * tuning.chunk_size))
            .sum::<u64>();
        journal.files.insert(o.relative.clone(), state);
    }
    journal
        .save(work)
        .await
        .map_err(|e| io("save the journal", e))?;
    Ok((journal, resumed))
}

/// Checks every file's size, writes the marker in place of the journal and
/// renames `work` to `dest`.
async fn publish(
    work: &Path,
    dest: &Path,
    source: &str,
    objects: &[Object],
) -> Result<(), FetchError> {
    let io = |what: String, e: std::io::Error| FetchError::Io(format!("cannot {what}: {e}"));
    for o in objects {
        let path = work.join(&o.relative);
        let len = tokio::fs::metadata(&path)
            .await
            .map_err(|e| io(format!("read {}", path.display()), e))?
            .len();
        if len != o.size {
            return Err(FetchError::Source(format!(
                "{source}: {} is {len} bytes on disk but the object is {}; run the fetch again",
                o.relative, o.size
            )));
        }
        if let Some(expected) = &o.sha256 {
            let file = path.clone();
            let actual = tokio::task::spawn_blocking(move || sha256_of(&file))
                .await
                .map_err(|e| FetchError::Io(format!("cannot hash {}: {e}", path.display())))?
                .map_err(|e| io(format!("hash {}", path.display()), e))?;
            if &actual != expected {
                // Fetched again whole on the next run.
                let _ = tokio::fs::remove_file(&path).await;
                return Err(FetchError::Source(format!(
                    "{source}: {} does not match the SHA-256 the source publishes ({actual} \
                     instead of {expected}); it was removed: run the fetch again",
                    o.relative
                )));
            }
        }
    }
    let marker = Marker {
        source: source.to_owned(),
        files: objects
            .iter()
            .map(|o| MarkerFile {
                path: o.relative.clone(),
                size: o.size,
                etag: o.etag.clone(),
            })
            .collect(),
    };
    let text = serde_json::to_vec_pretty(&marker).map_err(|e| FetchError::Io(e.to_string()))?;
    tokio::fs::write(work.join(MARKER), text)
        .await
        .map_err(|e| io("write the marker".into(), e))?;
    let _ = tokio::fs::remove_file(work.join(journal::JOURNAL)).await;
    tokio::fs::rename(work, dest).await.map_err(|e| {
        io(
            format!("rename {} to {}", work.display(), dest.display()),
            e,
        )
    })
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
