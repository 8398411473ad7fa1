//! Monthly budgets: what a tenant has spent this month against its budget,
//! the alerts at 80 % and 100 % (recorded once per month and threshold;
//! [`super::alerts`] posts them to the tenant's webhook), and the optional
//! refusal of new deployments once the budget is spent.
//!
//! "Spent" is the month's draft invoice total in the budget's currency,
//! after discounts and adjustments: what the tenant would pay if the month
//! ended now. Usage priced in another currency does not count against it.

use modelfleet_core::billing::{BillingPeriod, UnixSeconds};
use modelfleet_core::money::Money;
use serde::Serialize;
use tracing::warn;

use super::webhook;
use super::{BillingServiceError, actor, rate_month};
use crate::identity::Scope;
use crate::ids::{AlertId, TenantId};
use crate::store::{Budget, Store, now};

/// The shares of the budget that raise an alert, in percent.
pub const THRESHOLDS: [i32; 2] = [80, 100];

/// A budget with this month's spend against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    pub period: String,
    pub budget: Money,
    pub spent: Money,
    /// Spent as a share of the budget, in whole percent (rounded down).
    pub percent_used: i64,
    pub refuse_at_limit: bool,
    /// Where alerts are posted, masked to scheme and host
    /// (`https://hooks.example.com/…`): the path of a Slack-style URL is
    /// what lets anyone post to the channel, so it is never shown. Only
    /// for those who may manage the tenant; see [`BudgetStatus::for_viewer`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

impl BudgetStatus {
    /// The status as someone who reads the tenant but may not manage it
    /// sees it: without the webhook.
    pub fn for_viewer(self) -> BudgetStatus {
        BudgetStatus {
            webhook: None,
            ..self
        }
    }
}

/// What a budget check did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetCheck {
    /// Alerts raised by this check (not those raised before).
    pub raised: Vec<AlertId>,
}

fn current_period() -> BillingPeriod {
    BillingPeriod::containing(UnixSeconds(now().timestamp()))
}

/// What `tenant` has spent in the current month, in `budget`'s currency.
async fn spent(store: &Store, budget: &Budget) -> Result<Money, BillingServiceError> {
    let currency = budget.per_month.currency();
    let invoices = rate_month(store, budget.tenant, current_period(), now()).await?;
    Ok(invoices
        .iter()
        .find(|i| i.currency == currency)
        .map_or(Money::zero(currency), |i| i.total))
}

fn percent_used(spent: Money, budget: Money) -> i64 {
    let budget = i128::from(budget.micros().max(1));
    let used = i128::from(spent.micros().max(0)) * 100 / budget;
    i64::try_from(used).unwrap_or(i64::MAX)
}

/// A tenant's budget and this month's spend, if it has a budget.
pub async fn budget_status(
    store: &Store,
    scope: Scope,
    tenant: TenantId,
) -> Result<Option<BudgetStatus>, BillingServiceError> {
    let Some(budget) = store.budget(scope, tenant).await? else {
        return Ok(None);
    };
    let spent = spent(store, &budget).await?;
    Ok(Some(BudgetStatus {
        period: current_period().to_string(),
        budget: budget.per_month,
        spent,
        percent_used: percent_used(spent, budget.per_month),
        refuse_at_limit: budget.refuse_at_limit,
        webhook: budget.webhook_url.as_deref().map(webhook::masked),
    }))
}

/// Why a new deployment of `tenant` is refused, if its budget says so: it
/// asks to refuse at the limit, and this month's spend has reached it.
pub async fn budget_refusal(
    store: &Store,
    tenant: TenantId,
) -> Result<Option<String>, BillingServiceError> {
    let Some(budget) = store.budget(Scope::All, tenant).await? else {
        return Ok(None);
    };
    if !budget.refuse_at_limit {
        return Ok(None);
    }
    let spent = spent(store, &budget).await?;
    if spent.micros() < budget.per_month.micros() {
        return Ok(None);
    }
    Ok(Some(format!(
        "this month's budget of {} is spent ({spent} so far in {}); a tenant admin can raise \
         the budget or turn off refusing at the limit",
        budget.per_month,
        current_period()
    )))
}

/// Compares every budget with its tenant's spend this month and records
/// each alert threshold newly reached.
pub async fn check_budgets(store: &Store) -> Result<BudgetCheck, BillingServiceError> {
    let period = current_period();
    let mut check = BudgetCheck::default();
    for budget in store.budgets().await? {
        let spent = match spent(store, &budget).await {
            Ok(spent) => spent,
            Err(e) => {
                warn!(tenant = %budget.tenant, error = %e, "cannot rate this month's usage for the budget check");
                continue;
            }
        };
        let used = percent_used(spent, budget.per_month);
        for threshold in THRESHOLDS {
            if used < i64::from(threshold) {
                continue;
            }
            let mut tx = store.begin(&actor()).await?;
            let raised = tx
                .raise_budget_alert(
                    &budget,
                    period,
                    threshold,
                    spent,
                    budget.webhook_url.is_some(),
                )
                .await?;
            tx.commit().await?;
            check.raised.extend(raised);
        }
    }
    Ok(check)
}
