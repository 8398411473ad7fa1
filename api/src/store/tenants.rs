//! Tenants: the organisations that deploy models and are billed. Each has a
//! quota row from the moment it exists (admission locks that row).

use chrono::{DateTime, Utc};
use modelfleet_core::fleet::is_dns_label;
use modelfleet_core::quota::Quota;
use serde::Serialize;

use super::{Store, StoreError, Tx, now, on_conn, quotas, visible};
use crate::identity::{Permission, Role, Scope};
use crate::ids::TenantId;

/// Tenant names become parts of namespace names (`mf-<tenant>`), which
/// Kubernetes limits to 63 characters.
pub const MAX_NAME_LEN: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Tenant {
    pub id: TenantId,
    /// A DNS label, unique: `acme-bank`.
    pub name: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: String,
    pub display_name: String,
    pub quota: Quota,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, display_name, created_at FROM tenants ",
            $tail
        )
    };
}

impl Tx {
    /// Creates a tenant with its quota. Platform admins only.
    pub async fn create_tenant(&mut self, new: NewTenant) -> Result<Tenant, StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "tenant"))?;
        let NewTenant {
            name,
            display_name,
            quota,
        } = new;
        if !is_dns_label(&name) || name.len() > MAX_NAME_LEN {
            return Err(StoreError::invalid(
                "name",
                format!(
                    "{name:?} must be at most {MAX_NAME_LEN} lower-case letters, digits and '-', starting and ending with a letter or digit"
                ),
            ));
        }
        let display_name = display_name.trim().to_owned();
        if display_name.is_empty() || display_name.chars().count() > 200 {
            return Err(StoreError::invalid(
                "display_name",
                "must be 1 to 200 characters",
            ));
        }
        quotas::validate(&quota)?;
        let tenant = Tenant {
            id: TenantId::new(),
            name,
            display_name,
            created_at: now(),
        };
        on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO tenants (id, name, display_name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant.id)
        .bind(&tenant.name)
        .bind(&tenant.display_name)
        .bind(tenant.created_at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::unique("tenant", &tenant.name))?;
        quotas::write(self, tenant.id, &quota).await?;
        self.note(
            "create",
            "tenants",
            Some(tenant.id),
            tenant.id.0,
            &tenant.name,
        );
        Ok(tenant)
    }
}

impl Store {
    pub async fn tenant(&self, scope: Scope, id: TenantId) -> Result<Tenant, StoreError> {
        visible(scope, id, "tenant")?;
        let mut reader = self.reader().await?;
        on_conn!(reader.conn(), c => sqlx::query_as::<_, Tenant>(select!("WHERE id = $1")).bind(id).fetch_optional(c).await)?
            .ok_or(StoreError::NotFound("tenant"))
    }

    pub async fn tenant_by_name(&self, scope: Scope, name: &str) -> Result<Tenant, StoreError> {
        let mut reader = self.reader().await?;
        let tenant = on_conn!(reader.conn(), c => sqlx::query_as::<_, Tenant>(select!("WHERE name = $1")).bind(name).fetch_optional(c).await)?
            .ok_or(StoreError::NotFound("tenant"))?;
        visible(scope, tenant.id, "tenant")?;
        Ok(tenant)
    }

    /// Every tenant the scope can see, by name.
    pub async fn tenants(&self, scope: Scope) -> Result<Vec<Tenant>, StoreError> {
        let mut reader = self.reader().await?;
        Ok(on_conn!(reader.conn(), c => sqlx::query_as::<_, Tenant>(
            select!("WHERE ($1 IS NULL OR id = $1) ORDER BY name"))
            .bind(scope.tenant())
            .fetch_all(c)
            .await)?)
    }
}

/// The roles a tenant asks a second factor of, as stored: role names
/// separated by commas, `''` for none.
pub(super) fn parse_roles(list: &str) -> Result<Vec<Role>, StoreError> {
    list.split(',')
        .filter(|r| !r.is_empty())
        .map(|r| {
            r.parse()
                .map_err(|_| StoreError::Corrupt("tenant second-factor roles"))
        })
        .collect()
}

impl Tx {
    /// Sets the roles of a tenant's people who must sign in with a second
    /// factor (beyond the platform's `--second-factor-roles`). The
    /// tenant's own admins or platform admins; only roles a tenant's
    /// people can have.
    pub async fn set_second_factor_roles(
        &mut self,
        tenant: TenantId,
        roles: &[Role],
    ) -> Result<Vec<Role>, StoreError> {
        self.actor()
            .check(tenant, Permission::ManageTenant)
            .map_err(|d| StoreError::denied(d, "tenant"))?;
        if let Some(r) = roles.iter().find(|r| r.needs_tenant() == Some(false)) {
            return Err(StoreError::invalid(
                "roles",
                format!("a tenant's people cannot be {r}s; give tenant roles only"),
            ));
        }
        let mut roles = roles.to_vec();
        roles.sort_by_key(|r| r.name());
        roles.dedup();
        let list = roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(",");
        let name: Option<(String,)> = on_conn!(self.conn(), c => sqlx::query_as(
            "UPDATE tenants SET second_factor_roles = $2 WHERE id = $1 RETURNING name",
        ).bind(tenant).bind(&list).fetch_optional(c).await)?;
        let (name,) = name.ok_or(StoreError::NotFound("tenant"))?;
        self.note(
            "update",
            "tenants/second-factor",
            Some(tenant),
            tenant.0,
            &name,
        );
        Ok(roles)
    }
}

impl Store {
    /// The roles of a tenant's people who must sign in with a second
    /// factor because the tenant asks it.
    pub async fn second_factor_roles(
        &self,
        scope: Scope,
        tenant: TenantId,
    ) -> Result<Vec<Role>, StoreError> {
        visible(scope, tenant, "tenant")?;
        let mut reader = self.reader().await?;
        let row: Option<(String,)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT second_factor_roles FROM tenants WHERE id = $1").bind(tenant).fetch_optional(c).await)?;
        let (list,) = row.ok_or(StoreError::NotFound("tenant"))?;
        parse_roles(&list)
    }
}
