//! What `modelfleet fetch` prints while it downloads, which the operator
//! reads back from the fetch container's log to show a replica's progress
//! in the ModelDeployment's status (and the sandbox's simulated kubelet
//! prints the same for a download it only pretends to do).
//!
//! A progress line reads well to a person and ends in the exact figures:
//!
//! ```text
//! fetch s3://models/llama: 1.20 of 4.00 GiB (29%), 4 files, 950 MiB/s; bytes 1288490188/4294967296
//! ```

/// The name of the init container that downloads the weights.
pub const CONTAINER: &str = "fetch-weights";

/// Bytes downloaded so far and in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchProgress {
    pub done: u64,
    pub total: u64,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// One progress line: `files` files of `source`, at `bytes_per_second`.
pub fn progress_line(
    source: &str,
    progress: FetchProgress,
    files: usize,
    bytes_per_second: f64,
) -> String {
    let FetchProgress { done, total } = progress;
    let percent = if total == 0 {
        100
    } else {
        u128::from(done.min(total)) * 100 / u128::from(total)
    };
    format!(
        "fetch {source}: {:.2} of {:.2} GiB ({percent}%), {files} files, {:.0} MiB/s; bytes {done}/{total}",
        done as f64 / GIB,
        total as f64 / GIB,
        bytes_per_second / 1024.0 / 1024.0,
    )
}

/// The figures at the end of a progress line; `None` for any other line.
pub fn parse_progress(line: &str) -> Option<FetchProgress> {
    let line = line.trim_end();
    if !line.starts_with("fetch ") {
        return None;
    }
    let (_, figures) = line.rsplit_once("; bytes ")?;
    let (done, total) = figures.split_once('/')?;
    let progress = FetchProgress {
        done: done.parse().ok()?,
        total: total.parse().ok()?,
    };
    (progress.done <= progress.total).then_some(progress)
}

/// How a pod got its weights, as the fetch container's termination
/// message says it (`kubectl describe pod` shows it; the operator reads
/// it from the pod's status into the deployment's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchSummary {
    pub files: usize,
    pub bytes: u64,
    pub origin: WeightsOrigin,
}

/// Where a pod's weights came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsOrigin {
    /// Downloaded from the source (into the node cache, if the pool has one).
    Downloaded,
    /// The node's cache held them.
    NodeCache,
    /// The pod's volume held them already (a restarted pod).
    AlreadyThere,
}

impl WeightsOrigin {
    fn words(self) -> &'static str {
        match self {
            WeightsOrigin::Downloaded => "downloaded",
            WeightsOrigin::NodeCache => "from the node cache",
            WeightsOrigin::AlreadyThere => "already there",
        }
    }
}

/// The termination message: `weights: 3 files, 8388657 bytes, from the node cache`.
pub fn summary_line(summary: FetchSummary) -> String {
    format!(
        "weights: {} files, {} bytes, {}",
        summary.files,
        summary.bytes,
        summary.origin.words()
    )
}

/// The summary a termination message gives; `None` for any other text.
pub fn parse_summary(text: &str) -> Option<FetchSummary> {
    let rest = text.trim().strip_prefix("weights: ")?;
    let (files, rest) = rest.split_once(" files, ")?;
    let (bytes, origin) = rest.split_once(" bytes, ")?;
    let origin = [
        WeightsOrigin::Downloaded,
        WeightsOrigin::NodeCache,
        WeightsOrigin::AlreadyThere,
    ]
    .into_iter()
    .find(|o| o.words() == origin)?;
    Some(FetchSummary {
        files: files.parse().ok()?,
        bytes: bytes.parse().ok()?,
        origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_reads_back_and_other_text_does_not() {
        for origin in [
            WeightsOrigin::Downloaded,
            WeightsOrigin::NodeCache,
            WeightsOrigin::AlreadyThere,
        ] {
            let summary = FetchSummary {
                files: 3,
                bytes: 8_388_657,
                origin,
            };
            let line = summary_line(summary);
            assert_eq!(parse_summary(&format!("{line}\n")), Some(summary), "{line}");
        }
        assert_eq!(
            summary_line(FetchSummary {
                files: 3,
                bytes: 8_388_657,
                origin: WeightsOrigin::NodeCache
            }),
            "weights: 3 files, 8388657 bytes, from the node cache"
        );
        for other in [
            "",
            "weights: x files, 1 bytes, downloaded",
            "weights: 1 files, 1 bytes, from somewhere",
            "access denied",
        ] {
            assert_eq!(parse_summary(other), None, "{other:?}");
        }
    }

    #[test]
    fn a_progress_line_reads_back_as_its_figures() {
        let p = FetchProgress {
            done: 1_288_490_188,
            total: 4_294_967_296,
        };
        let line = progress_line("s3://models/llama", p, 4, 950.0 * 1024.0 * 1024.0);
        assert_eq!(
            line,
            "fetch s3://models/llama: 1.20 of 4.00 GiB (29%), 4 files, 950 MiB/s; bytes 1288490188/4294967296"
        );
        assert_eq!(parse_progress(&line), Some(p));
        // As `kubectl logs --timestamps` would not show it, but a log line
        // with a trailing newline.
        assert_eq!(parse_progress(&format!("{line}\n")), Some(p));
    }

    #[test]
    fn other_lines_are_not_progress() {
        for line in [
            "",
            "fetch: 4 files, 4.00 GiB into /models/llama in 4.1 s",
            "engine: bytes 1/2",
            "fetch s3://x: 1 of 2; bytes 3/2",
            "fetch s3://x: bytes; bytes a/b",
        ] {
            assert_eq!(parse_progress(line), None, "{line:?}");
        }
    }
}
