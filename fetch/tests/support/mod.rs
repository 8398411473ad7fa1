//! What both fetch tests use: model-like bytes, and tuning small enough
//! that a few MiB take many ranged requests and failures end quickly.

use std::time::Duration;

use modelfleet_fetch::{FetchOptions, Tuning, fetch};

pub const MIB: usize = 1024 * 1024;

/// Deterministic bytes that differ from offset to offset.
pub fn content(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u64)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(u64::from(seed)) as u8
        })
        .collect()
}

/// 1 MiB chunks, 4 at once, two attempts with a short backoff.
pub fn tuning() -> Tuning {
    Tuning {
        chunk_size: MIB as u64,
        concurrency: 4,
        stall_after: Duration::from_secs(10),
        attempts: 2,
        backoff: Duration::from_millis(10),
    }
}

/// Runs a fetch that must fail; its error, as the command would print it.
pub async fn refusal(options: &FetchOptions) -> String {
    fetch(options, Duration::from_secs(1), |_| {})
        .await
        .expect_err("the fetch was refused")
        .to_string()
}
