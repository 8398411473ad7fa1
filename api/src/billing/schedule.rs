//! The billing loop `serve` runs next to cluster sync: every
//! [`BILLING_EVERY`] it issues the invoices of months that are due, checks
//! every budget against this month's spend, and delivers pending alerts to
//! their webhooks.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::webhook::{Retry, WebhookSender};
use super::{check_budgets, deliver_alerts, finalize_due};
use crate::service::Hub;

/// How often the loop runs.
pub const BILLING_EVERY: Duration = Duration::from_secs(30);

/// One pass: what is due is done; a failure is logged and retried on the
/// next pass.
pub async fn pass(state: &Hub, sender: &WebhookSender) {
    match finalize_due(state.store()).await {
        Ok(0) => {}
        Ok(n) => info!(tenants = n, "issued final invoices"),
        Err(e) => warn!(error = %e, "cannot issue the invoices that are due"),
    }
    match check_budgets(state.store()).await {
        Ok(check) if !check.raised.is_empty() => {
            info!(alerts = check.raised.len(), "budget alerts raised");
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot check budgets"),
    }
    if let Err(e) = deliver_alerts(state.store(), state.keyring(), sender).await {
        warn!(error = %e, "cannot deliver budget alerts");
    }
}

/// Runs [`pass`] every [`BILLING_EVERY`] until `stop` becomes `true`.
pub fn spawn(state: Hub, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let sender = match WebhookSender::new(Retry::default()) {
            Ok(sender) if state.settings().webhook_allow_private_addresses => {
                sender.allowing_private_addresses()
            }
            Ok(sender) => sender,
            Err(e) => {
                warn!(error = %e, "no webhook client; billing loop not started");
                return;
            }
        };
        loop {
            pass(&state, &sender).await;
            tokio::select! {
                () = tokio::time::sleep(BILLING_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}
