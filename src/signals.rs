//! How the long-running subcommands (`api`, `serve`, `operator`,
//! `sandbox`) are told to stop: Ctrl-C (SIGINT) or SIGTERM, which
//! Kubernetes sends a pod it stops.
//!
//! The handlers are installed before the listener opens ([`Stop::install`]):
//! a SIGTERM that arrives between the first answered request and the
//! moment the process starts waiting for it still stops it cleanly,
//! instead of killing it.

use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT and SIGTERM, caught from the moment this is made.
#[derive(Debug)]
pub struct Stop {
    interrupt: Signal,
    terminate: Signal,
}

impl Stop {
    /// Catches SIGINT and SIGTERM from now on.
    pub fn install() -> anyhow::Result<Stop> {
        Ok(Stop {
            interrupt: signal(SignalKind::interrupt()).context("cannot catch Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
        })
    }

    /// Waits for either (at once when one came already).
    pub async fn wait(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
