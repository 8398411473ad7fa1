//! Posting raised budget alerts to their tenants' webhooks, beside the
//! billing loop rather than in it: each pass starts one task per tenant
//! with alerts due and returns, so a receiver that is slow or never
//! answers holds up neither invoicing nor another tenant's alerts.
//!
//! A task first claims its alerts in the database until its deliveries,
//! one after another, must be over (each: every attempt's timeout and
//! wait, [`Retry::longest`], and a margin): no other pass, on this hub or
//! another, posts them meanwhile, and if the hub dies mid-delivery they
//! are due again when the claim runs out. Receivers tell a repeated post
//! by its delivery id.
//!
//! An alert whose attempts run out in one pass stays `pending` and is
//! tried again by a later one, after a wait that starts at
//! [`Retry::max_backoff`] and grows with the alert's age up to
//! [`LONGEST_WAIT`]; after [`REDELIVER_FOR`] it is given up on. A receiver
//! that refuses it (a 4xx other than 408 and 429, a redirect) or an
//! address the hub may not post to fails it at once: asking again would
//! get the same answer.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use modelfleet_core::money::Money;
use serde_json::json;
use tokio::task::JoinHandle;
use tracing::warn;

use super::webhook::{Retry, WebhookError, WebhookSender};
use super::{BillingServiceError, actor};
use crate::ids::TenantId;
use crate::service::Hub;
use crate::store::{AlertOutcome, BudgetAlert, now};

/// How long after it was raised an alert is still posted.
pub const REDELIVER_FOR: Duration = Duration::from_secs(24 * 3600);
/// The longest wait between two passes at the same alert.
pub const LONGEST_WAIT: Duration = Duration::from_secs(3600);
/// What a claim adds to [`Retry::longest`]: resolving the receiver's name
/// and recording the outcome.
const CLAIM_MARGIN: Duration = Duration::from_secs(60);

/// The JSON posted for an alert.
pub fn alert_body(alert: &BudgetAlert) -> serde_json::Value {
    let money = |micros: i64| -> serde_json::Value {
        match alert.currency.parse() {
            Ok(currency) => json!(Money::from_micros(micros, currency)),
            Err(_) => json!(micros),
        }
    };
    json!({
        "type": "budget.threshold_reached",
        "alertId": alert.id,
        "tenantId": alert.tenant_id,
        "period": alert.period,
        "thresholdPercent": alert.threshold,
        "spent": money(alert.spent_micros),
        "budget": money(alert.budget_micros),
        "raisedAt": alert.raised_at,
    })
}

/// Starts posting every alert that is due, one task per tenant, and
/// returns the tasks without waiting for them.
pub async fn dispatch_alerts(
    hub: &Hub,
    sender: &WebhookSender,
) -> Result<Vec<JoinHandle<()>>, BillingServiceError> {
    let at = now();
    let mut by_tenant: BTreeMap<TenantId, Vec<BudgetAlert>> = BTreeMap::new();
    for alert in hub.store().due_alerts(at).await? {
        by_tenant.entry(alert.tenant_id).or_default().push(alert);
    }
    let one = sender.retry().longest().saturating_add(CLAIM_MARGIN);
    let mut tasks = Vec::new();
    for (tenant, alerts) in by_tenant {
        // The task posts them one after another: the claim covers them all.
        let count = u32::try_from(alerts.len()).unwrap_or(u32::MAX);
        let until = at + delta(one.saturating_mul(count));
        let mut claimed = Vec::new();
        let mut tx = hub.store().begin(&actor()).await?;
        for alert in alerts {
            if tx.claim_alert(alert.id, at, until).await? {
                claimed.push(alert);
            }
        }
        tx.commit().await?;
        if claimed.is_empty() {
            continue;
        }
        let (hub, sender) = (hub.clone(), sender.clone());
        tasks.push(tokio::spawn(async move {
            for alert in claimed {
                if let Err(e) = deliver(&hub, &sender, &alert).await {
                    warn!(%tenant, alert = %alert.id, error = %e,
                        "cannot deliver a budget alert; it is tried again once its claim runs out");
                }
            }
        }));
    }
    Ok(tasks)
}

/// Posts one claimed alert and records what became of it.
async fn deliver(
    hub: &Hub,
    sender: &WebhookSender,
    alert: &BudgetAlert,
) -> Result<(), BillingServiceError> {
    let store = hub.store();
    let Some((url, secret)) = store.budget_webhook(hub.keyring(), alert.tenant_id).await? else {
        let mut tx = store.begin(&actor()).await?;
        let gone = AlertOutcome::Failed("the budget no longer has a webhook".into());
        tx.record_alert_delivery(alert.id, 0, gone).await?;
        tx.commit().await?;
        return Ok(());
    };
    let body = alert_body(alert).to_string();
    let retry = sender.retry();
    // The attempts are bounded; this also bounds resolving the name.
    let outcome = tokio::time::timeout(
        retry.longest().saturating_add(CLAIM_MARGIN / 2),
        sender.deliver(
            &url,
            secret.expose().as_bytes(),
            &alert.id.to_string(),
            body.as_bytes(),
        ),
    )
    .await
    .unwrap_or_else(|_| {
        Err(WebhookError::GaveUp {
            attempts: 0,
            last: "the delivery took too long".to_owned(),
        })
    });
    let (attempts, outcome) = match outcome {
        Ok(done) => (done.attempts, AlertOutcome::Delivered),
        Err(e) => {
            warn!(tenant = %alert.tenant_id, alert = %alert.id, error = %e,
                "budget alert not delivered");
            (attempts_of(&e), judge(&e, retry, alert.raised_at, now()))
        }
    };
    let mut tx = store.begin(&actor()).await?;
    tx.record_alert_delivery(alert.id, attempts, outcome)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// What a failed pass means for the alert: tried again later while the
/// receiver may yet take it and [`REDELIVER_FOR`] has not passed.
fn judge(
    e: &WebhookError,
    retry: &Retry,
    raised: DateTime<Utc>,
    at: DateTime<Utc>,
) -> AlertOutcome {
    let error = e.to_string();
    if !matches!(e, WebhookError::GaveUp { .. }) {
        return AlertOutcome::Failed(error);
    }
    let age = (at - raised).to_std().unwrap_or_default();
    if age >= REDELIVER_FOR {
        return AlertOutcome::Failed(format!(
            "{error}; given up {} hours after the alert was raised",
            REDELIVER_FOR.as_secs() / 3600
        ));
    }
    let wait = age.clamp(retry.max_backoff.min(LONGEST_WAIT), LONGEST_WAIT);
    AlertOutcome::RetryAt {
        error,
        at: at + delta(wait),
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

fn attempts_of(e: &WebhookError) -> u32 {
    match e {
        WebhookError::Refused { attempts, .. } | WebhookError::GaveUp { attempts, .. } => *attempts,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry() -> Retry {
        Retry::default()
    }

    fn gave_up() -> WebhookError {
        WebhookError::GaveUp {
            attempts: 5,
            last: "HTTP 503".into(),
        }
    }

    fn raised() -> DateTime<Utc> {
        "2026-11-05T10:00:00Z".parse().unwrap()
    }

    fn retry_at(after: TimeDelta) -> Option<DateTime<Utc>> {
        match judge(&gave_up(), &retry(), raised(), raised() + after) {
            AlertOutcome::RetryAt { at, .. } => Some(at),
            _ => None,
        }
    }

    #[test]
    fn a_receiver_that_was_down_is_asked_again_less_and_less_often() {
        // First a minute (the longest wait within a pass), then as long as
        // the alert has waited so far, up to an hour.
        let at = |after| retry_at(after).map(|at| at - raised() - after);
        assert_eq!(at(TimeDelta::seconds(15)), Some(TimeDelta::minutes(1)));
        assert_eq!(at(TimeDelta::minutes(10)), Some(TimeDelta::minutes(10)));
        assert_eq!(at(TimeDelta::hours(5)), Some(TimeDelta::hours(1)));
        assert_eq!(at(TimeDelta::hours(24)), None, "given up after a day");
    }

    #[test]
    fn a_refusal_is_not_asked_again() {
        let refused = WebhookError::Refused {
            status: 404,
            attempts: 1,
        };
        let private = WebhookError::InvalidUrl("resolves to 10.0.0.1".into());
        for e in [refused, private] {
            assert!(matches!(
                judge(&e, &retry(), raised(), raised()),
                AlertOutcome::Failed(_)
            ));
        }
        let AlertOutcome::Failed(why) = judge(
            &gave_up(),
            &retry(),
            raised(),
            raised() + TimeDelta::days(2),
        ) else {
            panic!("a two-day-old alert is still tried")
        };
        assert!(why.contains("given up 24 hours after"), "{why}");
    }
}
