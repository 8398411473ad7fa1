//! The billing loop `serve` runs next to cluster sync: every
//! [`BILLING_EVERY`] it issues the invoices of months that are due, checks
//! every budget against this month's spend, and starts delivering the
//! alerts that are due to their webhooks ([`super::alerts`]) — without
//! waiting for them, so no receiver holds up invoicing or the next pass.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::webhook::{Retry, WebhookSender};
use super::{check_budgets, dispatch_alerts, finalize_due};
use crate::service::Hub;

/// How often the loop runs.
pub const BILLING_EVERY: Duration = Duration::from_secs(30);

/// One pass: what is due is done; a failure is logged and retried on the
/// next pass. Returns the alert deliveries it started, which go on after
/// it returns (one per tenant with alerts due).
pub async fn pass(state: &Hub, sender: &WebhookSender) -> Vec<JoinHandle<()>> {
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
    dispatch_alerts(state, sender).await.unwrap_or_else(|e| {
        warn!(error = %e, "cannot deliver budget alerts");
        Vec::new()
    })
}

/// Runs [`pass`] every [`BILLING_EVERY`] until `stop` becomes `true`;
/// deliveries still going then are stopped (their alerts are posted again
/// once their claims run out).
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
        let mut deliveries: Vec<JoinHandle<()>> = Vec::new();
        loop {
            deliveries.retain(|d| !d.is_finished());
            deliveries.extend(pass(&state, &sender).await);
            tokio::select! {
                () = tokio::time::sleep(BILLING_EVERY) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        for delivery in deliveries {
            delivery.abort();
        }
    })
}
