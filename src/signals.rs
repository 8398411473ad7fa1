//! How the long-running subcommands (`api`, `serve`, `operator`,
//! `sandbox`) are told to stop: Ctrl-C (SIGINT) or SIGTERM, which
//! Kubernetes sends a pod it stops.

use anyhow::Context as _;

/// Waits for SIGINT or SIGTERM.
pub async fn stopped() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot wait for SIGTERM")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("cannot wait for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
