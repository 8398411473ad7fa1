//! Reading what sizes a model from its source without its weights: the
//! `config.json`, and from each `*.safetensors` shard two ranged reads —
//! the 8-byte header length, then the header. A 140 GB model costs a few
//! megabytes of requests.

use std::sync::atomic::{AtomicU64, Ordering};

use modelfleet_core::checkpoint::{self, Checkpoint, MAX_CONFIG_BYTES, Tensor};

use crate::download::backoff;
use crate::endpoint::EndpointOverrides;
use crate::store::{CredentialSource, Plan, Store, advice};
use crate::{Env, FetchError, FetchOptions, Object, Tuning};

/// Shard headers read at once: DeepSeek-V3's 163 shards in 11 rounds.
const CONCURRENCY: usize = 16;
/// A source with more shards than this is not a model modelfleet sizes
/// (the largest published checkpoints have a few hundred).
pub const MAX_SHARDS: usize = 2048;
/// The most all of a source's headers may take together: DeepSeek-V3's
/// 163 shards describe 90,000 tensors in about 14 MiB.
pub const MAX_HEADERS_BYTES: u64 = 64 * 1024 * 1024;

/// What was read from a source.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub checkpoint: Checkpoint,
    /// Shards whose headers were read.
    pub shards: usize,
    /// Bytes of every file under the source, as listed.
    pub listed_bytes: u64,
    /// Bytes actually requested.
    pub read_bytes: u64,
    /// Where the credentials came from.
    pub credentials: CredentialSource,
}

/// Reads `source`'s `config.json` and safetensors headers.
pub async fn inspect(
    source: &str,
    endpoint: &EndpointOverrides,
    env: &Env,
) -> Result<Inspected, FetchError> {
    let plan = Plan::of(source)?;
    if matches!(plan, Plan::Https { .. }) {
        return Err(FetchError::BadSource(format!(
            "{source} is one file; a model is sized from its config.json and safetensors \
             headers: give an hf://, modelscope:// or object-store source that holds them"
        )));
    }
    let options = FetchOptions {
        source: source.to_owned(),
        dest: Default::default(),
        endpoint: endpoint.clone(),
        tuning: Tuning::default(),
        env: env.clone(),
    };
    let (store, objects, credentials) = plan.connect(&options).await?;
    let config = objects
        .iter()
        .find(|o| o.relative == "config.json")
        .ok_or_else(|| {
            FetchError::Source(format!(
                "{source} has no config.json at its top; it names a model's directory \
                 (config.json beside the *.safetensors shards), or give the architecture \
                 by hand"
            ))
        })?;
    if config.size > MAX_CONFIG_BYTES {
        return Err(FetchError::Source(format!(
            "{source}: config.json is {} bytes, more than any model's config ({MAX_CONFIG_BYTES})",
            config.size
        )));
    }
    let shards: Vec<&Object> = objects
        .iter()
        .filter(|o| o.relative.ends_with(".safetensors") && !o.relative.contains('/'))
        .collect();
    if shards.len() > MAX_SHARDS {
        return Err(FetchError::Source(format!(
            "{source} holds {} safetensors files, more than the {MAX_SHARDS} a model is read from",
            shards.len()
        )));
    }
    let reader = Reader {
        store: &store,
        source,
        credentials: &credentials,
        budget: AtomicU64::new(MAX_HEADERS_BYTES),
    };
    let config_json = reader.read(config, 0, config.size).await?;
    let mut tensors = Vec::new();
    let mut read_bytes = config.size;
    // In groups rather than a stream of borrowing closures, so that the
    // future stays Send for the hub's handlers.
    for group in shards.chunks(CONCURRENCY) {
        let reads: Vec<_> = group.iter().map(|shard| reader.header(shard)).collect();
        for header in futures::future::join_all(reads).await {
            let (mut t, n) = header?;
            tensors.append(&mut t);
            read_bytes += n;
        }
    }
    let checkpoint = Checkpoint::new(&config_json, tensors)
        .map_err(|e| FetchError::Source(format!("{source}: {e}")))?;
    Ok(Inspected {
        checkpoint,
        shards: shards.len(),
        listed_bytes: objects.iter().map(|o| o.size).sum(),
        read_bytes,
        credentials,
    })
}

struct Reader<'a> {
    store: &'a Store,
    source: &'a str,
    credentials: &'a CredentialSource,
    /// Header bytes still allowed ([`MAX_HEADERS_BYTES`] in all).
    budget: AtomicU64,
}

impl Reader<'_> {
    /// The tensors of one shard, and the bytes read for them.
    async fn header(&self, shard: &Object) -> Result<(Vec<Tensor>, u64), FetchError> {
        let bad =
            |e: String| FetchError::Source(format!("{}: {}: {e}", self.source, shard.relative));
        let first = self.read(shard, 0, 8.min(shard.size)).await?;
        let n = checkpoint::header_length(&first, shard.size).map_err(bad)?;
        let spent = self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(n)
            });
        if spent.is_err() {
            return Err(bad(format!(
                "its header of {n} bytes takes the source's headers past {} MiB together; \
                 that is not a model modelfleet sizes",
                MAX_HEADERS_BYTES >> 20
            )));
        }
        let header = self.read(shard, 8, n).await?;
        let tensors = checkpoint::parse_header(&header, shard.size).map_err(bad)?;
        Ok((tensors, 8 + n))
    }

    /// Bytes `[start, start + len)` of `object`, retrying what may pass.
    async fn read(&self, object: &Object, start: u64, len: u64) -> Result<Vec<u8>, FetchError> {
        let tuning = Tuning::default();
        let what = || format!("cannot read {} (object {})", self.source, object.key);
        if len == 0 {
            return Ok(Vec::new());
        }
        let mut failures = 0;
        loop {
            let detail = match self.store.open(object, start, start + len - 1).await {
                Ok(mut body) => {
                    let mut bytes = Vec::with_capacity(len as usize);
                    let mut error = None;
                    while (bytes.len() as u64) < len {
                        match tokio::time::timeout(tuning.stall_after, body.next()).await {
                            Err(_) => error = Some("no bytes for 30 s (stalled)".to_owned()),
                            Ok(None) => error = Some("the connection ended early".to_owned()),
                            Ok(Some(Err(e))) => error = Some(e),
                            Ok(Some(Ok(chunk))) => {
                                let room = len as usize - bytes.len();
                                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                                continue;
                            }
                        }
                        break;
                    }
                    match error {
                        None => return Ok(bytes),
                        Some(e) => e,
                    }
                }
                Err(f) if !f.transient => {
                    return Err(FetchError::Source(advice(
                        &f.detail,
                        &what(),
                        self.credentials,
                        self.store.denied_fix(),
                    )));
                }
                Err(f) => f.detail,
            };
            failures += 1;
            if failures > tuning.attempts {
                return Err(FetchError::Source(format!(
                    "{}: {detail} ({} attempts)",
                    what(),
                    tuning.attempts
                )));
            }
            tokio::time::sleep(backoff(failures, tuning.backoff)).await;
        }
    }
}
