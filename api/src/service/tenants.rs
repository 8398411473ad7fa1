//! Tenants and their quotas: platform admins create tenants and set their
//! limits; a tenant's own callers see only their tenant.

use std::collections::BTreeMap;

use http::StatusCode;
use modelfleet_core::model::ParamCount;
use modelfleet_core::money::{Currency, Money};
use modelfleet_core::quota::{Amount, Limit, Quota, Usage};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Caller, Error, Hub, Result};
use crate::identity::Permission;
use crate::ids::TenantId;
use crate::store::{NewTenant, Tenant};

/// A tenant's limits as callers write them. Absent means "no limit of
/// this kind".
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaLimits {
    /// Devices per accelerator class, by catalog id: `{"h100-80gb": 16}`.
    #[serde(default)]
    pub devices_per_accelerator: BTreeMap<String, u64>,
    /// Devices of all classes together.
    pub total_devices: Option<u64>,
    /// Deployments that exist at once.
    pub deployments: Option<u64>,
    /// The largest model, in parameters; requests may also write text such
    /// as `"70B"`.
    #[schema(value_type = Option<u64>)]
    pub max_model_params: Option<ParamCount>,
    /// What all live deployments may cost per hour, at most one per currency.
    #[serde(default)]
    #[schema(value_type = Vec<crate::http::schema::MoneySchema>)]
    pub spend_per_hour: Vec<Money>,
}

impl QuotaLimits {
    pub fn into_quota(self) -> Result<Quota> {
        let QuotaLimits {
            devices_per_accelerator,
            total_devices,
            deployments,
            max_model_params,
            spend_per_hour,
        } = self;
        let mut spend: BTreeMap<Currency, Money> = BTreeMap::new();
        for ceiling in spend_per_hour {
            if spend.insert(ceiling.currency(), ceiling).is_some() {
                return Err(Error::invalid(
                    "quota.spendPerHour",
                    format!(
                        "{} is given twice; give one ceiling per currency",
                        ceiling.currency()
                    ),
                ));
            }
        }
        Ok(Quota {
            devices_per_accelerator,
            total_devices,
            deployments,
            max_model_params,
            spend_per_hour: spend,
        })
    }
}

impl From<Quota> for QuotaLimits {
    fn from(q: Quota) -> Self {
        QuotaLimits {
            devices_per_accelerator: q.devices_per_accelerator,
            total_devices: q.total_devices,
            deployments: q.deployments,
            max_model_params: q.max_model_params,
            spend_per_hour: q.spend_per_hour.into_values().collect(),
        }
    }
}

/// A request to create a tenant.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenant {
    /// At most 40 lower-case letters, digits and '-'.
    pub name: String,
    /// Defaults to the name.
    #[serde(default)]
    pub display_name: String,
    /// Defaults to nothing at all: no deployments until limits are set.
    pub quota: Option<QuotaLimits>,
}

/// A tenant's limits and what its live deployments hold against them.
#[derive(Debug, Clone)]
pub struct QuotaStatus {
    pub tenant: TenantId,
    pub quota: Quota,
    pub usage: Usage,
}

/// One limit that is set, with what is in use against it.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitUse {
    pub limit: Limit,
    pub in_use: Amount,
    pub allowed: Amount,
}

impl QuotaStatus {
    /// Every limit that is set, with what is in use against it.
    pub fn limits_in_use(&self) -> Vec<LimitUse> {
        let (quota, usage) = (&self.quota, &self.usage);
        let row = |limit, in_use, allowed| LimitUse {
            limit,
            in_use,
            allowed,
        };
        let mut rows = Vec::new();
        for (accelerator, &max) in &quota.devices_per_accelerator {
            rows.push(row(
                Limit::AcceleratorDevices(accelerator.clone()),
                Amount::Count(usage.devices_of(accelerator)),
                Amount::Count(max),
            ));
        }
        if let Some(max) = quota.total_devices {
            rows.push(row(
                Limit::TotalDevices,
                Amount::Count(usage.total_devices()),
                Amount::Count(max),
            ));
        }
        if let Some(max) = quota.deployments {
            rows.push(row(
                Limit::Deployments,
                Amount::Count(usage.deployments),
                Amount::Count(max),
            ));
        }
        if let Some(max) = quota.max_model_params {
            // A per-deployment limit: nothing accumulates against it.
            rows.push(row(Limit::ModelSize, Amount::Count(0), Amount::Params(max)));
        }
        for (&currency, &ceiling) in &quota.spend_per_hour {
            rows.push(row(
                Limit::SpendPerHour(currency),
                Amount::Money(spend_of(usage, currency)),
                Amount::Money(ceiling),
            ));
        }
        rows
    }
}

/// What live deployments cost per hour in `currency`.
pub fn spend_of(usage: &Usage, currency: Currency) -> Money {
    let micros = i64::try_from(usage.spend_of(currency)).unwrap_or(i64::MAX);
    Money::from_micros(micros, currency)
}

impl Hub {
    /// The tenants the caller can see, by name.
    pub async fn tenants(&self, caller: &Caller) -> Result<Vec<Tenant>> {
        caller.require(Permission::Read)?;
        Ok(self.store.tenants(caller.scope()).await?)
    }

    /// One tenant; another tenant's is "not found".
    pub async fn tenant(&self, caller: &Caller, id: TenantId) -> Result<Tenant> {
        caller.require(Permission::Read)?;
        Ok(self.store.tenant(caller.scope(), id).await?)
    }

    /// Creates a tenant (platform admins).
    pub async fn create_tenant(&self, caller: &Caller, request: CreateTenant) -> Result<Tenant> {
        let CreateTenant {
            name,
            display_name,
            quota,
        } = request;
        caller.require(Permission::ManagePlatform)?;
        let quota = match quota {
            Some(q) => q.into_quota()?,
            None => Quota::nothing(),
        };
        let mut tx = self.store.begin(&caller.actor).await?;
        let tenant = tx
            .create_tenant(NewTenant {
                display_name: if display_name.trim().is_empty() {
                    name.clone()
                } else {
                    display_name
                },
                name,
                quota,
            })
            .await?;
        tx.commit_with(StatusCode::CREATED).await?;
        Ok(tenant)
    }

    /// A tenant's limits and what is in use: the caller's own tenant, or
    /// the one platform staff name.
    pub async fn quota(&self, caller: &Caller, tenant: Option<TenantId>) -> Result<QuotaStatus> {
        caller.require(Permission::Read)?;
        let tenant = caller.tenant(tenant)?;
        self.quota_status(caller, tenant).await
    }

    /// Replaces a tenant's limits (platform admins). Lowering a limit below
    /// what is in use stops new deployments; nothing running is stopped.
    pub async fn set_quota(
        &self,
        caller: &Caller,
        tenant: TenantId,
        limits: QuotaLimits,
    ) -> Result<QuotaStatus> {
        // Another tenant's id is "not found" even to its admins' peers; a
        // tenant's own callers learn their role does not allow this.
        self.store.tenant(caller.scope(), tenant).await?;
        caller.require(Permission::ManagePlatform)?;
        let quota = limits.into_quota()?;
        let mut tx = self.store.begin(&caller.actor).await?;
        tx.set_quota(tenant, &quota).await?;
        tx.commit_with(StatusCode::OK).await?;
        self.quota_status(caller, tenant).await
    }

    async fn quota_status(&self, caller: &Caller, tenant: TenantId) -> Result<QuotaStatus> {
        let quota = self.store.quota(caller.scope(), tenant).await?;
        let usage = self.store.usage(caller.scope(), tenant).await?;
        Ok(QuotaStatus {
            tenant,
            quota,
            usage,
        })
    }
}
