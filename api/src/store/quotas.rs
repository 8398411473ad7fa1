//! Quota limits per tenant and the live use they are checked against. The
//! arithmetic is `modelfleet_core::quota`; this module reads and writes the
//! rows, and takes the per-tenant lock admission runs under.

use std::collections::BTreeMap;

use modelfleet_core::accelerator::Accelerator;
use modelfleet_core::model::ParamCount;
use modelfleet_core::money::{Currency, Money};
use modelfleet_core::quota::{Quota, Usage};

use super::{Backend, Conn, Store, StoreError, Tx, now, on_conn, visible};
use crate::identity::{Permission, Scope};
use crate::ids::TenantId;

impl Tx {
    /// Replaces a tenant's quota. Platform admins only. Lowering a limit
    /// below current use stops new admissions; nothing running is stopped.
    pub async fn set_quota(&mut self, tenant: TenantId, quota: &Quota) -> Result<(), StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "tenant"))?;
        validate(quota)?;
        lock_tenant(self, tenant).await?;
        write(self, tenant, quota).await?;
        self.note("update", "quotas", Some(tenant), tenant.0, "quota");
        Ok(())
    }
}

impl Store {
    pub async fn quota(&self, scope: Scope, tenant: TenantId) -> Result<Quota, StoreError> {
        visible(scope, tenant, "tenant")?;
        let mut reader = self.reader().await?;
        load_quota(reader.conn(), tenant).await
    }

    /// What the tenant's live deployments hold now.
    pub async fn usage(&self, scope: Scope, tenant: TenantId) -> Result<Usage, StoreError> {
        visible(scope, tenant, "tenant")?;
        let mut reader = self.reader().await?;
        load_usage(reader.conn(), tenant).await
    }
}

/// Serialises admissions of one tenant until the transaction ends: a row
/// lock on PostgreSQL; on SQLite the `BEGIN IMMEDIATE` write transaction
/// already excludes every other writer. `NotFound` if there is no tenant.
pub(crate) async fn lock_tenant(tx: &mut Tx, tenant: TenantId) -> Result<(), StoreError> {
    let found: Option<(TenantId,)> = match tx.backend() {
        Backend::Postgres => on_conn!(tx.conn(), c => sqlx::query_as(
            "SELECT tenant_id FROM tenant_quotas WHERE tenant_id = $1 FOR UPDATE",
        ).bind(tenant).fetch_optional(c).await)?,
        Backend::Sqlite => on_conn!(tx.conn(), c => sqlx::query_as(
            "SELECT tenant_id FROM tenant_quotas WHERE tenant_id = $1",
        ).bind(tenant).fetch_optional(c).await)?,
    };
    found.map(|_| ()).ok_or(StoreError::NotFound("tenant"))
}

pub(crate) fn validate(quota: &Quota) -> Result<(), StoreError> {
    let Quota {
        devices_per_accelerator,
        total_devices,
        deployments,
        max_model_params,
        spend_per_hour,
    } = quota;
    for (accelerator, &devices) in devices_per_accelerator {
        if Accelerator::find(accelerator).is_none() {
            return Err(StoreError::invalid(
                "quota",
                format!(
                    "unknown accelerator {accelerator:?}; known: {}",
                    Accelerator::ids()
                ),
            ));
        }
        db_int(devices, "quota")?;
    }
    for n in [*total_devices, *deployments, max_model_params.map(|p| p.0)]
        .into_iter()
        .flatten()
    {
        db_int(n, "quota")?;
    }
    if spend_per_hour.values().any(|m| m.micros() < 0) {
        return Err(StoreError::invalid(
            "quota",
            "a spend ceiling cannot be negative",
        ));
    }
    Ok(())
}

pub(crate) fn db_int(n: u64, field: &'static str) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::invalid(field, format!("{n} is too large")))
}

fn count(n: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(what))
}

pub(crate) async fn write(tx: &mut Tx, tenant: TenantId, quota: &Quota) -> Result<(), StoreError> {
    let int = |n: Option<u64>| n.map(|n| db_int(n, "quota")).transpose();
    let total = int(quota.total_devices)?;
    let deployments = int(quota.deployments)?;
    let params = int(quota.max_model_params.map(|p| p.0))?;
    let at = now();
    on_conn!(tx.conn(), c => sqlx::query(
        "INSERT INTO tenant_quotas (tenant_id, total_devices, deployments, max_model_params, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id) DO UPDATE SET total_devices = excluded.total_devices, \
         deployments = excluded.deployments, max_model_params = excluded.max_model_params, \
         updated_at = excluded.updated_at",
    )
    .bind(tenant).bind(total).bind(deployments).bind(params).bind(at)
    .execute(c).await.map(|r| r.rows_affected()))?;
    on_conn!(tx.conn(), c => sqlx::query("DELETE FROM tenant_accelerator_quotas WHERE tenant_id = $1")
        .bind(tenant).execute(c).await.map(|r| r.rows_affected()))?;
    for (accelerator, &devices) in &quota.devices_per_accelerator {
        let devices = db_int(devices, "quota")?;
        on_conn!(tx.conn(), c => sqlx::query(
            "INSERT INTO tenant_accelerator_quotas (tenant_id, accelerator, devices) VALUES ($1, $2, $3)",
        ).bind(tenant).bind(accelerator).bind(devices).execute(c).await.map(|r| r.rows_affected()))?;
    }
    on_conn!(tx.conn(), c => sqlx::query("DELETE FROM tenant_spend_quotas WHERE tenant_id = $1")
        .bind(tenant).execute(c).await.map(|r| r.rows_affected()))?;
    for (currency, ceiling) in &quota.spend_per_hour {
        on_conn!(tx.conn(), c => sqlx::query(
            "INSERT INTO tenant_spend_quotas (tenant_id, currency, micros_per_hour) VALUES ($1, $2, $3)",
        ).bind(tenant).bind(currency.code()).bind(ceiling.micros()).execute(c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

pub(crate) async fn load_quota(mut conn: Conn<'_>, tenant: TenantId) -> Result<Quota, StoreError> {
    type Limits = (Option<i64>, Option<i64>, Option<i64>);
    let limits: Option<Limits> = on_conn!(conn.re(), c => sqlx::query_as(
        "SELECT total_devices, deployments, max_model_params FROM tenant_quotas WHERE tenant_id = $1",
    ).bind(tenant).fetch_optional(c).await)?;
    let (total, deployments, params) = limits.ok_or(StoreError::NotFound("tenant"))?;
    let classes: Vec<(String, i64)> = on_conn!(conn.re(), c => sqlx::query_as(
        "SELECT accelerator, devices FROM tenant_accelerator_quotas WHERE tenant_id = $1",
    ).bind(tenant).fetch_all(c).await)?;
    let spend: Vec<(String, i64)> = on_conn!(conn.re(), c => sqlx::query_as(
        "SELECT currency, micros_per_hour FROM tenant_spend_quotas WHERE tenant_id = $1",
    ).bind(tenant).fetch_all(c).await)?;
    let limit = |n: Option<i64>| n.map(|n| count(n, "quota")).transpose();
    Ok(Quota {
        devices_per_accelerator: classes
            .into_iter()
            .map(|(a, n)| Ok((a, count(n, "quota")?)))
            .collect::<Result<BTreeMap<_, _>, StoreError>>()?,
        total_devices: limit(total)?,
        deployments: limit(deployments)?,
        max_model_params: limit(params)?.map(ParamCount),
        spend_per_hour: spend
            .into_iter()
            .map(|(code, micros)| {
                let currency = parse_currency(&code)?;
                Ok((currency, Money::from_micros(micros, currency)))
            })
            .collect::<Result<_, StoreError>>()?,
    })
}

pub(crate) async fn load_usage(conn: Conn<'_>, tenant: TenantId) -> Result<Usage, StoreError> {
    type Row = (String, String, i64, i64, i64);
    let rows: Vec<Row> = on_conn!(conn, c => sqlx::query_as(
        "SELECT accelerator, currency, CAST(COUNT(*) AS BIGINT), \
         CAST(SUM(devices_per_replica * replicas) AS BIGINT), \
         CAST(SUM(replica_cost_micros * replicas) AS BIGINT) \
         FROM deployments WHERE tenant_id = $1 AND deleted_at IS NULL \
         GROUP BY accelerator, currency",
    ).bind(tenant).fetch_all(c).await)?;
    let mut usage = Usage::default();
    for (accelerator, currency, deployments, devices, cost) in rows {
        *usage
            .devices_per_accelerator
            .entry(accelerator)
            .or_default() += count(devices, "deployment")?;
        usage.deployments += count(deployments, "deployment")?;
        *usage
            .spend_micros_per_hour
            .entry(parse_currency(&currency)?)
            .or_default() += i128::from(cost);
    }
    Ok(usage)
}

pub(crate) fn parse_currency(code: &str) -> Result<Currency, StoreError> {
    code.parse().map_err(|_| StoreError::Corrupt("currency"))
}
