//! Monthly budgets in the database: a tenant's budget (with its webhook's
//! secret sealed by the keyring), and the alerts raised against it with
//! their delivery state. Every budget change is audited with its
//! transaction; alerts are raised once per tenant, month and threshold.

use chrono::{DateTime, Utc};
use modelfleet_core::billing::{BillingPeriod, minor_unit_micros};
use modelfleet_core::money::{Currency, Money};
use serde::Serialize;

use super::quotas::db_int;
use super::{Store, StoreError, Tx, now, on_conn, visible};
use crate::identity::{Permission, Scope};
use crate::ids::{AlertId, TenantId};
use crate::secret::{Keyring, Sealed, Secret};

/// The longest webhook URL accepted.
const MAX_URL_LEN: usize = 2048;

fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// A tenant's monthly budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub tenant: TenantId,
    pub per_month: Money,
    /// Refuse new deployments once the month's spend reaches the budget.
    pub refuse_at_limit: bool,
    /// Where alerts are posted; the secret that signs them stays sealed.
    pub webhook_url: Option<String>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! select_budgets {
    ($tail:literal) => {
        concat!(
            "SELECT tenant_id, currency, micros_per_month, refuse_at_limit, webhook_url, \
             updated_at FROM tenant_budgets ",
            $tail
        )
    };
}

#[derive(sqlx::FromRow)]
struct BudgetRow {
    tenant_id: TenantId,
    currency: String,
    micros_per_month: i64,
    refuse_at_limit: bool,
    webhook_url: Option<String>,
    updated_at: DateTime<Utc>,
}

impl BudgetRow {
    fn into_budget(self) -> Result<Budget, StoreError> {
        let currency: Currency = self
            .currency
            .parse()
            .map_err(|_| StoreError::Corrupt("budget currency"))?;
        Ok(Budget {
            tenant: self.tenant_id,
            per_month: Money::from_micros(self.micros_per_month, currency),
            refuse_at_limit: self.refuse_at_limit,
            webhook_url: self.webhook_url,
            updated_at: self.updated_at,
        })
    }
}

/// A budget to set. The webhook needs a secret to sign with.
#[derive(Debug, Clone)]
pub struct NewBudget {
    pub per_month: Money,
    pub refuse_at_limit: bool,
    pub webhook: Option<(String, Secret)>,
}

/// An alert raised when a month's spend reached a share of the budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct BudgetAlert {
    pub id: AlertId,
    pub tenant_id: TenantId,
    pub period: String,
    /// 80 or 100 (% of the budget).
    pub threshold: i32,
    pub currency: String,
    pub spent_micros: i64,
    pub budget_micros: i64,
    pub raised_at: DateTime<Utc>,
    /// `none` (no webhook), `pending`, `delivered` or `failed`.
    pub delivery: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// When a `pending` alert is next posted (empty: at once).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// What became of one pass at delivering an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertOutcome {
    Delivered,
    /// Not tried again: the receiver refused it, or it was tried for long
    /// enough.
    Failed(String),
    /// Still `pending`: tried again from `at`.
    RetryAt {
        error: String,
        at: DateTime<Utc>,
    },
}

macro_rules! select_alerts {
    ($tail:literal) => {
        concat!(
            "SELECT id, tenant_id, period, threshold, currency, spent_micros, budget_micros, \
             raised_at, delivery, attempts, last_error, delivered_at, next_attempt_at \
             FROM budget_alerts ",
            $tail
        )
    };
}

fn webhook_context(tenant: TenantId) -> String {
    format!("budget-webhook:{tenant}")
}

/// Checks a webhook URL: http(s), a host, no credentials in it.
pub fn check_webhook_url(url: &str) -> Result<(), StoreError> {
    let example = "write it like https://hooks.example.com/modelfleet";
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid("webhookUrl", format!("it is not a URL; {example}")));
    };
    if !matches!(scheme, "http" | "https") {
        return Err(invalid(
            "webhookUrl",
            format!("only http and https are delivered to; {example}"),
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(invalid(
            "webhookUrl",
            format!("it names no host; {example}"),
        ));
    }
    if authority.contains('@') {
        return Err(invalid(
            "webhookUrl",
            "do not put credentials in the URL; the secret signs every delivery",
        ));
    }
    if url.len() > MAX_URL_LEN || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "webhookUrl",
            format!("at most {MAX_URL_LEN} characters, without spaces"),
        ));
    }
    Ok(())
}

/// A budget is above zero, in whole minor units.
fn check_amount(per_month: Money) -> Result<(), StoreError> {
    if per_month.micros() <= 0 {
        return Err(invalid(
            "amount",
            "a budget must be above zero; to stop budget checks, delete the budget",
        ));
    }
    let minor = minor_unit_micros(per_month.currency());
    if per_month.micros() % minor != 0 {
        return Err(invalid(
            "amount",
            "give the budget in whole cents (USD) or fen (CNY)",
        ));
    }
    Ok(())
}

impl Store {
    /// A tenant's budget, if one is set.
    pub async fn budget(
        &self,
        scope: Scope,
        tenant: TenantId,
    ) -> Result<Option<Budget>, StoreError> {
        visible(scope, tenant, "tenant")?;
        let mut reader = self.reader().await?;
        let row: Option<BudgetRow> = on_conn!(reader.conn(), c => sqlx::query_as(
            select_budgets!("WHERE tenant_id = $1")).bind(tenant).fetch_optional(c).await)?;
        row.map(BudgetRow::into_budget).transpose()
    }

    /// Every budget, for the hub's budget check.
    pub async fn budgets(&self) -> Result<Vec<Budget>, StoreError> {
        let mut reader = self.reader().await?;
        let rows: Vec<BudgetRow> = on_conn!(reader.conn(), c => sqlx::query_as(
            select_budgets!("ORDER BY tenant_id")).fetch_all(c).await)?;
        rows.into_iter().map(BudgetRow::into_budget).collect()
    }

    /// The webhook URL and its opened secret, for delivering an alert.
    pub async fn budget_webhook(
        &self,
        keyring: &Keyring,
        tenant: TenantId,
    ) -> Result<Option<(String, Secret)>, StoreError> {
        let mut reader = self.reader().await?;
        let row: Option<(Option<String>, Option<Vec<u8>>)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT webhook_url, webhook_secret FROM tenant_budgets WHERE tenant_id = $1")
            .bind(tenant).fetch_optional(c).await)?;
        match row {
            Some((Some(url), Some(sealed))) => {
                let secret =
                    keyring.open(&Sealed::from_stored(sealed)?, &webhook_context(tenant))?;
                Ok(Some((url, secret)))
            }
            _ => Ok(None),
        }
    }

    /// A tenant's budget alerts, newest first.
    pub async fn budget_alerts(
        &self,
        scope: Scope,
        tenant: TenantId,
    ) -> Result<Vec<BudgetAlert>, StoreError> {
        visible(scope, tenant, "tenant")?;
        let mut reader = self.reader().await?;
        on_conn!(reader.conn(), c => sqlx::query_as(
            select_alerts!("WHERE tenant_id = $1 ORDER BY raised_at DESC, threshold DESC"))
            .bind(tenant).fetch_all(c).await)
        .map_err(StoreError::from)
    }

    /// Alerts whose webhook delivery has neither succeeded nor been given
    /// up on, and whose time to be posted has come by `at`: by tenant, each
    /// tenant's in the order they were raised.
    pub async fn due_alerts(&self, at: DateTime<Utc>) -> Result<Vec<BudgetAlert>, StoreError> {
        let mut reader = self.reader().await?;
        on_conn!(reader.conn(), c => sqlx::query_as(
            select_alerts!("WHERE delivery = 'pending' \
             AND (next_attempt_at IS NULL OR next_attempt_at <= $1) \
             ORDER BY tenant_id, raised_at, threshold"))
            .bind(at).fetch_all(c).await)
        .map_err(StoreError::from)
    }
}

impl Tx {
    /// Sets a tenant's monthly budget. Tenant admins of the tenant, and
    /// platform admins.
    pub async fn set_budget(
        &mut self,
        keyring: &Keyring,
        tenant: TenantId,
        budget: &NewBudget,
    ) -> Result<Budget, StoreError> {
        self.actor()
            .check(tenant, Permission::ManageTenant)
            .map_err(|d| StoreError::denied(d, "budget"))?;
        check_amount(budget.per_month)?;
        let sealed = match &budget.webhook {
            Some((url, secret)) => {
                check_webhook_url(url)?;
                if secret.expose().len() < 16 {
                    return Err(invalid(
                        "webhookSecret",
                        "use at least 16 characters; receivers check signatures with it",
                    ));
                }
                Some(keyring.seal(secret, &webhook_context(tenant))?)
            }
            None => None,
        };
        let name = self.tenant_name(tenant).await?;
        let at = now();
        let url = budget.webhook.as_ref().map(|(u, _)| u.clone());
        on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO tenant_budgets (tenant_id, currency, micros_per_month, refuse_at_limit, \
             webhook_url, webhook_secret, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id) DO UPDATE SET currency = excluded.currency, \
             micros_per_month = excluded.micros_per_month, \
             refuse_at_limit = excluded.refuse_at_limit, webhook_url = excluded.webhook_url, \
             webhook_secret = excluded.webhook_secret, updated_at = excluded.updated_at")
            .bind(tenant).bind(budget.per_month.currency().to_string())
            .bind(budget.per_month.micros()).bind(budget.refuse_at_limit).bind(&url)
            .bind(sealed.as_ref().map(Sealed::as_bytes)).bind(at)
            .execute(c).await.map(|_| ()))?;
        self.note("update", "budgets", Some(tenant), tenant.0, &name);
        Ok(Budget {
            tenant,
            per_month: budget.per_month,
            refuse_at_limit: budget.refuse_at_limit,
            webhook_url: url,
            updated_at: at,
        })
    }

    /// Sets a tenant's monthly budget and whether it refuses at the limit,
    /// and leaves its webhook as it is (none for a new budget): for a form
    /// that cannot show the webhook's URL or secret again. Tenant admins of
    /// the tenant, and platform admins.
    pub async fn set_budget_keeping_webhook(
        &mut self,
        tenant: TenantId,
        per_month: Money,
        refuse_at_limit: bool,
    ) -> Result<Budget, StoreError> {
        self.actor()
            .check(tenant, Permission::ManageTenant)
            .map_err(|d| StoreError::denied(d, "budget"))?;
        check_amount(per_month)?;
        let name = self.tenant_name(tenant).await?;
        let at = now();
        on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO tenant_budgets (tenant_id, currency, micros_per_month, refuse_at_limit, \
             updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id) DO UPDATE SET currency = excluded.currency, \
             micros_per_month = excluded.micros_per_month, \
             refuse_at_limit = excluded.refuse_at_limit, updated_at = excluded.updated_at")
            .bind(tenant).bind(per_month.currency().to_string())
            .bind(per_month.micros()).bind(refuse_at_limit).bind(at)
            .execute(c).await.map(|_| ()))?;
        self.note("update", "budgets", Some(tenant), tenant.0, &name);
        let row: BudgetRow = on_conn!(self.conn(), c => sqlx::query_as(
            select_budgets!("WHERE tenant_id = $1")).bind(tenant).fetch_one(c).await)?;
        row.into_budget()
    }

    /// Removes a tenant's budget. Returns whether there was one.
    pub async fn delete_budget(&mut self, tenant: TenantId) -> Result<bool, StoreError> {
        self.actor()
            .check(tenant, Permission::ManageTenant)
            .map_err(|d| StoreError::denied(d, "budget"))?;
        let name = self.tenant_name(tenant).await?;
        let removed = on_conn!(self.conn(), c => sqlx::query(
            "DELETE FROM tenant_budgets WHERE tenant_id = $1")
            .bind(tenant).execute(c).await.map(|r| r.rows_affected()))?;
        if removed > 0 {
            self.note("delete", "budgets", Some(tenant), tenant.0, &name);
        }
        Ok(removed > 0)
    }

    /// Records that a month's spend reached `threshold` % of the budget.
    /// Once per tenant, month and threshold: returns `None` when it was
    /// raised before.
    pub async fn raise_budget_alert(
        &mut self,
        budget: &Budget,
        period: BillingPeriod,
        threshold: i32,
        spent: Money,
        has_webhook: bool,
    ) -> Result<Option<AlertId>, StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "budget alert"))?;
        let id = AlertId::new();
        let delivery = if has_webhook { "pending" } else { "none" };
        let added = on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO budget_alerts (id, tenant_id, period, threshold, currency, spent_micros, \
             budget_micros, raised_at, delivery) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant_id, period, threshold) DO NOTHING")
            .bind(id).bind(budget.tenant).bind(period.to_string()).bind(threshold)
            .bind(budget.per_month.currency().to_string()).bind(spent.micros())
            .bind(budget.per_month.micros()).bind(now()).bind(delivery)
            .execute(c).await.map(|r| r.rows_affected()))?;
        if added == 0 {
            return Ok(None);
        }
        let name = format!("{period} {threshold}%");
        self.note("create", "budget-alerts", Some(budget.tenant), id.0, &name);
        Ok(Some(id))
    }

    /// Takes a due alert for one delivery: until `until` no other pass
    /// (of this hub or another) posts it. Returns whether it was still
    /// due at `at`; another pass may have taken it first.
    pub async fn claim_alert(
        &mut self,
        id: AlertId,
        at: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "budget alert"))?;
        let claimed = on_conn!(self.conn(), c => sqlx::query(
            "UPDATE budget_alerts SET next_attempt_at = $3 WHERE id = $1 \
             AND delivery = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= $2)")
            .bind(id).bind(at).bind(until)
            .execute(c).await.map(|r| r.rows_affected()))?;
        Ok(claimed == 1)
    }

    /// Records one pass at delivering an alert: `attempts` more posts.
    pub async fn record_alert_delivery(
        &mut self,
        id: AlertId,
        attempts: u32,
        outcome: AlertOutcome,
    ) -> Result<(), StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "budget alert"))?;
        let (delivery, error, delivered_at, next) = match outcome {
            AlertOutcome::Delivered => ("delivered", None, Some(now()), None),
            AlertOutcome::Failed(e) => ("failed", Some(e), None, None),
            AlertOutcome::RetryAt { error, at } => ("pending", Some(error), None, Some(at)),
        };
        let attempts = db_int(u64::from(attempts), "attempts")?;
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE budget_alerts SET delivery = $2, attempts = attempts + $3, last_error = $4, \
             delivered_at = $5, next_attempt_at = $6 WHERE id = $1")
            .bind(id).bind(delivery).bind(attempts).bind(error).bind(delivered_at).bind(next)
            .execute(c).await.map(|_| ()))?;
        Ok(())
    }
}
