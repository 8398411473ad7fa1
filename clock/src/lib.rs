//! The time every part of modelfleet reads.
//!
//! Normally this is the system clock. A test that needs a month to pass —
//! usage metered across a month end, a price change on the 14th, a hub
//! killed and restarted on the 20th — runs the hub and the sandbox clusters
//! on a **simulated clock** instead: a file holding whole Unix seconds,
//! named by the environment variable [`SIMULATED_CLOCK_ENV`] (or, in a
//! test process, by [`simulate`]). Every reading reads the file, so a test
//! moves time for every process at once by writing it with [`set`]; time
//! stands still between writes, which makes each timestamp the test
//! observes exactly the one it set.
//!
//! Only the parts whose times end up in records read this clock: the
//! sandbox's API server and controllers (pod binding, deletion, node
//! heartbeats), and the hub's store (interval starts and ends, price
//! effective times, unschedulable-since). Timers — how long a loop sleeps —
//! stay on the real clock.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The environment variable naming the simulated clock's file.
pub const SIMULATED_CLOCK_ENV: &str = "MODELFLEET_SIMULATED_CLOCK";

static SOURCE: OnceLock<Option<PathBuf>> = OnceLock::new();

fn source() -> &'static Option<PathBuf> {
    SOURCE.get_or_init(|| std::env::var_os(SIMULATED_CLOCK_ENV).map(PathBuf::from))
}

/// Now: the system time, or the simulated clock's.
///
/// # Panics
///
/// When a simulated clock is configured but its file cannot be read or
/// does not hold whole Unix seconds: a simulated run must not fall back to
/// the real time silently.
pub fn now() -> SystemTime {
    match source() {
        None => SystemTime::now(),
        Some(path) => read(path).unwrap_or_else(|e| {
            panic!("the simulated clock {} cannot be read: {e}", path.display())
        }),
    }
}

/// Whether time is simulated in this process.
pub fn is_simulated() -> bool {
    source().is_some()
}

/// Makes this process read its time from `path` (which [`set`] must have
/// written first). For a test process; must come before the first
/// [`now`], and once only.
pub fn simulate(path: &Path) -> io::Result<()> {
    read(path)?;
    SOURCE.set(Some(path.to_owned())).map_err(|_| {
        io::Error::other("the clock was read or configured before simulate() was called")
    })
}

/// Sets the simulated clock in `path` to `at` (whole seconds; anything
/// finer is dropped). The file is replaced atomically, so a reader sees
/// the old time or the new one, never a partial write.
pub fn set(path: &Path, at: SystemTime) -> io::Result<()> {
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| io::Error::other("the simulated clock cannot go before 1970"))?
        .as_secs();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{seconds}\n"))?;
    std::fs::rename(&tmp, path)
}

fn read(path: &Path) -> io::Result<SystemTime> {
    let text = std::fs::read_to_string(path)?;
    let seconds: u64 = text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("it holds {:?}, not whole Unix seconds", text.trim()),
        )
    })?;
    Ok(UNIX_EPOCH + Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_the_time_and_bad_contents_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock");
        let at = UNIX_EPOCH + Duration::from_secs(1_796_083_200);
        set(&path, at + Duration::from_millis(900)).unwrap();
        assert_eq!(read(&path).unwrap(), at, "sub-second parts are dropped");
        set(&path, at + Duration::from_secs(86_400)).unwrap();
        assert_eq!(read(&path).unwrap(), at + Duration::from_secs(86_400));
        std::fs::write(&path, "tomorrow").unwrap();
        let err = read(&path).unwrap_err();
        assert!(err.to_string().contains("\"tomorrow\""), "{err}");
        assert!(read(&dir.path().join("missing")).is_err());
    }
}
