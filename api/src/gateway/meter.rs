//! Metering: each answered request's tokens become one `token_usage` row,
//! without a database transaction per request. Requests hand their
//! record to [`Metering::record`], which only appends it — to memory, or
//! to a spool file when the gateway has a spool directory — and a flusher
//! writes what has gathered at least once a second, or as soon as a batch
//! is full, in one statement per [`MAX_TOKEN_BATCH`] rows.
//!
//! Each record carries the request id the gateway gave the request, and
//! the table keeps the first row of an id, so writing a batch twice (its
//! acknowledgement was lost; a restarted gateway replays a spool file
//! whose rows were partly written) counts each request once.
//!
//! With a spool directory, a record reaches the file (the kernel's page
//! cache: a killed process loses nothing, a crashed machine may lose the
//! last moments) before the answer's last byte reaches the client. The
//! flusher turns the current file into a batch file, writes batch files
//! to the database oldest first and deletes each once written; a gateway
//! that starts finds its predecessor's files and writes them first.
//! Without one, records wait in memory, and [`Metering::flush`] writes
//! them when the process stops cleanly.
//!
//! When the database cannot take records, they wait; once
//! [`MAX_PENDING`] wait, new inference requests are refused (503) until
//! the backlog drains — a request that cannot be metered is not served.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::warn;

use crate::store::{MAX_TOKEN_BATCH, Store, StoreError, TokenRecord};

/// Why records could not be written now; they wait and are tried again.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the spool directory: {0}")]
    Spool(#[from] std::io::Error),
}

/// How often the flusher writes what has gathered.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Records waiting to be written beyond which requests are refused.
pub const MAX_PENDING: usize = 200_000;
/// The file records are appended to.
const CURRENT: &str = "current.jsonl";
/// Files turned over for writing: `batch-<nanoseconds>-<n>.jsonl`.
const BATCH_PREFIX: &str = "batch-";

/// The gateway's meter; clones share it.
#[derive(Clone)]
pub struct Metering {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    sink: Sink,
    /// Records appended but not yet written.
    pending: AtomicU64,
    wake: Arc<Notify>,
    /// One flush at a time.
    flushing: tokio::sync::Mutex<()>,
}

enum Sink {
    Memory(Mutex<Vec<TokenRecord>>),
    Spool(Spool),
}

struct Spool {
    dir: PathBuf,
    current: Mutex<std::fs::File>,
    turned: AtomicU64,
}

impl std::fmt::Debug for Metering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metering")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

fn open_current(dir: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(CURRENT))
}

impl Metering {
    /// A meter writing to `store`, spooling in `spool` when given, with
    /// its flusher running on the current Tokio runtime (if any).
    pub fn new(store: Store, spool: Option<&Path>) -> std::io::Result<Metering> {
        let sink = match spool {
            None => Sink::Memory(Mutex::default()),
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                Sink::Spool(Spool {
                    dir: dir.to_owned(),
                    current: Mutex::new(open_current(dir)?),
                    turned: AtomicU64::new(0),
                })
            }
        };
        let metering = Metering {
            inner: Arc::new(Inner {
                store,
                sink,
                pending: AtomicU64::new(0),
                wake: Arc::new(Notify::new()),
                flushing: tokio::sync::Mutex::new(()),
            }),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // The flusher holds the meter only while it writes: it ends
            // once the last clone of the meter is gone.
            let weak = Arc::downgrade(&metering.inner);
            let wake = metering.inner.wake.clone();
            runtime.spawn(async move {
                let mut failures = 0u32;
                loop {
                    let wait = FLUSH_EVERY * 2u32.saturating_pow(failures.min(5));
                    tokio::select! {
                        () = wake.notified() => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                    let Some(inner) = weak.upgrade() else { return };
                    match (Metering { inner }).flush().await {
                        Ok(_) => failures = 0,
                        Err(e) => {
                            failures += 1;
                            warn!(error = %e, "writing metered tokens; they wait and are written later");
                        }
                    }
                }
            });
        }
        Ok(metering)
    }

    /// Records not yet in the database.
    pub fn pending(&self) -> u64 {
        self.inner.pending.load(Ordering::Relaxed)
    }

    /// Whether so many records wait that new requests must be refused.
    pub fn is_backed_up(&self) -> bool {
        self.pending() >= MAX_PENDING as u64
    }

    /// Takes one request's record; written within about a second.
    pub fn record(&self, record: TokenRecord) {
        match &self.inner.sink {
            Sink::Memory(records) => {
                records
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(record);
            }
            Sink::Spool(spool) => {
                let mut line = serde_json::to_vec(&record).expect("a token record serialises");
                line.push(b'\n');
                let written = spool
                    .current
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .write_all(&line);
                if let Err(e) = written {
                    // The spool is where records survive a crash; without
                    // it they still reach the database from memory.
                    warn!(error = %e, "appending a metered request to the spool");
                    return self.fallback(record);
                }
            }
        }
        let pending = self.inner.pending.fetch_add(1, Ordering::Relaxed) + 1;
        if pending.is_multiple_of(MAX_TOKEN_BATCH as u64) {
            self.inner.wake.notify_one();
        }
    }

    fn fallback(&self, record: TokenRecord) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            if let Err(e) = inner.store.record_tokens(&[record]).await {
                warn!(error = %e, "writing a metered request the spool could not take");
            }
        });
    }

    /// Writes every record taken so far; how many rows were new.
    pub async fn flush(&self) -> Result<u64, FlushError> {
        let _one = self.inner.flushing.lock().await;
        match &self.inner.sink {
            Sink::Memory(records) => {
                let batch =
                    std::mem::take(&mut *records.lock().unwrap_or_else(PoisonError::into_inner));
                if batch.is_empty() {
                    return Ok(0);
                }
                match self.inner.store.record_tokens(&batch).await {
                    Ok(added) => {
                        self.written(batch.len());
                        Ok(added)
                    }
                    Err(e) => {
                        // Back in front of what came meanwhile.
                        let mut records = records.lock().unwrap_or_else(PoisonError::into_inner);
                        let newer = std::mem::replace(&mut *records, batch);
                        records.extend(newer);
                        Err(e.into())
                    }
                }
            }
            Sink::Spool(spool) => self.flush_spool(spool).await,
        }
    }

    fn written(&self, n: usize) {
        let n = n as u64;
        let _ = self
            .inner
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(p.saturating_sub(n))
            });
    }

    async fn flush_spool(&self, spool: &Spool) -> Result<u64, FlushError> {
        spool.turn()?;
        let mut batches: Vec<PathBuf> = std::fs::read_dir(&spool.dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(BATCH_PREFIX) && n.ends_with(".jsonl"))
            })
            .collect();
        batches.sort();
        let mut added = 0;
        for path in batches {
            let records = read_batch(&path)?;
            added += self.inner.store.record_tokens(&records).await?;
            std::fs::remove_file(&path)?;
            self.written(records.len());
        }
        Ok(added)
    }
}

impl Spool {
    /// Turns the current file, if it has anything, into a batch file.
    fn turn(&self) -> std::io::Result<()> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.metadata()?.len() == 0 {
            return Ok(());
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let n = self.turned.fetch_add(1, Ordering::Relaxed);
        let batch = self
            .dir
            .join(format!("{BATCH_PREFIX}{nanos:024}-{n:08}.jsonl"));
        std::fs::rename(self.dir.join(CURRENT), batch)?;
        *current = open_current(&self.dir)?;
        Ok(())
    }
}

/// A batch file's records. A last line cut short (the process died while
/// appending it) is skipped: its request's answer had not ended.
fn read_batch(path: &Path) -> std::io::Result<Vec<TokenRecord>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut records = Vec::new();
    for line in file.lines() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(record) => records.push(record),
            Err(e) => {
                warn!(file = %path.display(), error = %e, "skipping an unreadable spooled record")
            }
        }
    }
    Ok(records)
}
