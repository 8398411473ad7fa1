//! The scheduled export: the hub exports the audit trail on its own, by
//! default once a day, so records reach object storage (and can be pruned
//! from the database) without anyone remembering to.
//!
//! The next run is due one interval after the newest export was made, not
//! after the hub started, so a hub that restarts more often than the
//! interval still exports on time.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tracing::{info, warn};

use super::export::export;
use super::target::ExportTarget;
use crate::identity::Actor;
use crate::secret::Keyring;
use crate::store::Store;

/// How often the hub exports unless configured otherwise.
pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long to wait before trying again after a failure.
const RETRY_AFTER: Duration = Duration::from_secs(5 * 60);
/// The shortest interval accepted, so a misconfiguration cannot make the
/// hub export in a tight loop.
pub const MIN_EXPORT_INTERVAL: Duration = Duration::from_secs(60);
/// The longest interval accepted: a year.
pub const MAX_EXPORT_INTERVAL: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// Exports every `every` (clamped to [`MIN_EXPORT_INTERVAL`] ..=
/// [`MAX_EXPORT_INTERVAL`]) until `stop`
/// turns true, acting as `system:audit`. Failures are logged (they never
/// carry credentials) and retried after a few minutes.
pub async fn run_scheduled(
    store: Store,
    keyring: Arc<Keyring>,
    target: ExportTarget,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let every = every.clamp(MIN_EXPORT_INTERVAL, MAX_EXPORT_INTERVAL);
    let actor = Actor::system("audit");
    let location = target.location().to_string();
    loop {
        let wait = match store.last_audit_export().await {
            Ok(Some(last)) => chrono::Duration::from_std(every)
                .ok()
                .and_then(|every| last.created_at.checked_add_signed(every))
                .and_then(|due| (due - Utc::now()).to_std().ok())
                .unwrap_or(Duration::ZERO),
            Ok(None) => Duration::ZERO,
            Err(e) => {
                warn!(error = %e, "cannot read the last audit export; retrying");
                RETRY_AFTER
            }
        };
        if !wait.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        let wait = match export(&store, &keyring, &target, &actor, None, Utc::now()).await {
            Ok(summary) if summary.is_empty() => {
                info!(%location, "{summary}");
                // Nothing new: no row was written, so look again after a
                // full interval rather than at once.
                every
            }
            Ok(summary) => {
                info!(%location, "{summary}");
                Duration::ZERO
            }
            Err(e) => {
                warn!(%location, error = %e, "scheduled audit export failed; retrying");
                RETRY_AFTER.min(every)
            }
        };
        if !wait.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        if *stop.borrow() {
            return;
        }
    }
}
