//! One chunk of one object into its file: a ranged read written at its
//! offset, resumed mid-chunk after a transient error or a stalled
//! connection (with backoff and jitter), given up after
//! [`Tuning::attempts`] failures in a row without progress, and synced
//! before it counts as done.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::store::{CredentialSource, Store, advice};
use crate::{FetchError, Object, Tuning};

/// Downloads bytes `[offset, offset + len)` of `object` into `path` at
/// the same offset; `done` counts every byte written, for progress.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn chunk(
    store: &Store,
    uri: &str,
    object: &Object,
    path: &Path,
    offset: u64,
    len: u64,
    tuning: &Tuning,
    credentials: &CredentialSource,
    done: &Arc<AtomicU64>,
) -> Result<(), FetchError> {
    let what = || format!("cannot read {uri} (object {})", object.key);
    let io = |what: &str, e: std::io::Error| {
        FetchError::Io(format!("cannot {what} {}: {e}", path.display()))
    };
    let mut got = 0u64;
    let mut failures = 0u32;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .await
        .map_err(|e| io("open", e))?;
    while got < len {
        let start = offset + got;
        let before = got;
        let error = match store.open(object, start, offset + len - 1).await {
            Ok(mut body) => {
                file.seek(std::io::SeekFrom::Start(start))
                    .await
                    .map_err(|e| io("seek", e))?;
                let mut error = None;
                while got < len {
                    match tokio::time::timeout(tuning.stall_after, body.next()).await {
                        Err(_) => {
                            error = Some(format!(
                                "no bytes for {} s (stalled)",
                                tuning.stall_after.as_secs()
                            ));
                            break;
                        }
                        Ok(None) => {
                            error = Some("the connection ended early".to_owned());
                            break;
                        }
                        Ok(Some(Err(e))) => {
                            error = Some(e);
                            break;
                        }
                        Ok(Some(Ok(bytes))) => {
                            let n = (bytes.len() as u64).min(len - got);
                            file.write_all(&bytes[..n as usize])
                                .await
                                .map_err(|e| io("write", e))?;
                            got += n;
                            done.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                }
                error
            }
            Err(f) if !f.transient => {
                return Err(FetchError::Source(advice(
                    &f.detail,
                    &what(),
                    credentials,
                    store.denied_fix(),
                )));
            }
            Err(f) => Some(f.detail),
        };
        if let Some(detail) = error {
            // Progress made resets the count: a slow but moving download
            // is not given up on.
            failures = if got > before { 1 } else { failures + 1 };
            if failures > tuning.attempts {
                return Err(FetchError::Source(format!(
                    "{}: {detail} ({} attempts without progress)",
                    what(),
                    tuning.attempts
                )));
            }
            tokio::time::sleep(backoff(failures, tuning.backoff)).await;
        }
    }
    file.flush().await.map_err(|e| io("write", e))?;
    file.sync_data().await.map_err(|e| io("sync", e))
}

/// Exponential backoff from `base`, at most 30 s, with up to half again of
/// jitter so that many pods retrying at once spread out.
pub(crate) fn backoff(failures: u32, base: Duration) -> Duration {
    let exp = base
        .saturating_mul(1 << failures.min(10))
        .min(Duration::from_secs(30));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    exp + exp.mul_f64(f64::from(nanos % 500) / 1000.0)
}
