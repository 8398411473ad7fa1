//! Deployments as the hub tracks them, and admission against the quota.
//!
//! Quota use is never stored: it is summed from the tenant's live rows
//! (`deleted_at IS NULL`) inside the same transaction that inserts or grows
//! a row, after taking the tenant's lock (`quotas::lock_tenant`), so two
//! admissions can never both see the room that only one of them fits in.

use chrono::{DateTime, Utc};
use modelfleet_core::accelerator::Accelerator;
use modelfleet_core::crd::{Phase, PodWeights};
use modelfleet_core::fleet::is_dns_label;
use modelfleet_core::model::ParamCount;
use modelfleet_core::money::Money;
use modelfleet_core::precision::Precision;
use modelfleet_core::quota::{Footprint, check_admission, check_resize};
use serde::{Deserialize, Serialize};

use super::quotas::{db_int, load_quota, load_usage, lock_tenant, parse_currency};
use super::{Store, StoreError, Tx, now, on_conn, visible};
use crate::identity::{Permission, Scope};
use crate::ids::{DeploymentId, TenantId};

/// A condition of a deployment's ModelDeployment, as its cluster last
/// reported it (`metav1.Condition`'s fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    /// When the status last changed, RFC 3339.
    pub since: String,
}

/// Where a deployment came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Admitted by the hub (REST API or console).
    Api,
    /// Applied into a cluster directly (`kubectl apply`) and found by sync.
    Cluster,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Cluster => "cluster",
        }
    }
}

/// A placed deployment to admit: the planner's choice plus its name.
#[derive(Debug, Clone)]
pub struct DeploymentRequest {
    pub name: String,
    pub model: String,
    pub model_params: ParamCount,
    pub cluster: String,
    pub namespace: String,
    pub pool: String,
    pub accelerator: String,
    pub devices_per_replica: u32,
    pub replicas: u32,
    pub precision: Precision,
    pub replica_cost_per_hour: Money,
    pub source: Source,
    /// The ModelDeployment's `metadata.uid`, when it already exists.
    pub resource_uid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    pub id: DeploymentId,
    pub tenant: TenantId,
    pub name: String,
    pub model: String,
    pub model_params: ParamCount,
    pub cluster: String,
    pub namespace: String,
    pub pool: String,
    pub accelerator: String,
    pub devices_per_replica: u32,
    pub replicas: u32,
    pub precision: Precision,
    pub replica_cost_per_hour: Money,
    pub source: Source,
    pub phase: Phase,
    pub ready_replicas: u32,
    pub status_message: Option<String>,
    pub resource_uid: Option<String>,
    /// The ModelDeployment's conditions as cluster sync last saw them.
    pub conditions: Vec<LiveCondition>,
    /// Where the model answers inside its cluster, once it does.
    pub endpoint: Option<String>,
    /// Where each started pod's weights came from (downloaded, the node's
    /// cache, its own volume), as cluster sync last saw it.
    pub weights: Vec<PodWeights>,
    /// Bumped on every change: an ETag, and a guard for sync's updates.
    pub revision: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Since when sync has seen its pods unschedulable; failover acts on it.
    pub unschedulable_since: Option<DateTime<Utc>>,
}

impl Deployment {
    pub fn footprint(&self) -> Footprint {
        Footprint {
            accelerator: self.accelerator.clone(),
            devices_per_replica: self.devices_per_replica,
            replicas: self.replicas,
            model_params: self.model_params,
            replica_cost_per_hour: self.replica_cost_per_hour,
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: DeploymentId,
    tenant_id: TenantId,
    name: String,
    model: String,
    model_params: i64,
    cluster: String,
    namespace: String,
    pool: String,
    accelerator: String,
    devices_per_replica: i64,
    replicas: i64,
    precision: String,
    replica_cost_micros: i64,
    currency: String,
    source: String,
    phase: String,
    ready_replicas: i64,
    status_message: Option<String>,
    resource_uid: Option<String>,
    revision: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
    unschedulable_since: Option<DateTime<Utc>>,
    conditions: String,
    endpoint: Option<String>,
    weights: Option<String>,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, tenant_id, name, model, model_params, cluster, namespace, pool, \
             accelerator, devices_per_replica, replicas, precision, replica_cost_micros, \
             currency, source, phase, ready_replicas, status_message, resource_uid, revision, \
             created_at, updated_at, deleted_at, unschedulable_since, conditions, endpoint, \
             weights FROM deployments ",
            $tail
        )
    };
}

// After `select!`, which it uses.
mod observed;

pub use observed::{DeploymentStatus, Relocation};

impl TryFrom<Row> for Deployment {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        let corrupt = |_| StoreError::Corrupt("deployment");
        Ok(Deployment {
            id: r.id,
            tenant: r.tenant_id,
            name: r.name,
            model: r.model,
            model_params: ParamCount(u64::try_from(r.model_params).map_err(corrupt)?),
            cluster: r.cluster,
            namespace: r.namespace,
            pool: r.pool,
            accelerator: r.accelerator,
            devices_per_replica: u32::try_from(r.devices_per_replica).map_err(corrupt)?,
            replicas: u32::try_from(r.replicas).map_err(corrupt)?,
            precision: r
                .precision
                .parse()
                .map_err(|_| StoreError::Corrupt("precision"))?,
            replica_cost_per_hour: Money::from_micros(
                r.replica_cost_micros,
                parse_currency(&r.currency)?,
            ),
            source: match r.source.as_str() {
                "api" => Source::Api,
                "cluster" => Source::Cluster,
                _ => return Err(StoreError::Corrupt("deployment source")),
            },
            phase: Phase::parse(&r.phase).ok_or(StoreError::Corrupt("deployment phase"))?,
            ready_replicas: u32::try_from(r.ready_replicas).map_err(corrupt)?,
            status_message: r.status_message,
            resource_uid: r.resource_uid,
            conditions: serde_json::from_str(&r.conditions)
                .map_err(|_| StoreError::Corrupt("deployment conditions"))?,
            endpoint: r.endpoint,
            weights: r
                .weights
                .map(|w| serde_json::from_str(&w))
                .transpose()
                .map_err(|_| StoreError::Corrupt("deployment weights"))?
                .unwrap_or_default(),
            revision: u64::try_from(r.revision).map_err(corrupt)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
            deleted_at: r.deleted_at,
            unschedulable_since: r.unschedulable_since,
        })
    }
}

fn validate(r: &DeploymentRequest) -> Result<(), StoreError> {
    if !is_dns_label(&r.name) {
        return Err(StoreError::invalid(
            "name",
            format!(
                "{:?} must be at most 63 lower-case letters, digits and '-'",
                r.name
            ),
        ));
    }
    for (field, value) in [
        ("model", &r.model),
        ("cluster", &r.cluster),
        ("namespace", &r.namespace),
        ("pool", &r.pool),
    ] {
        if value.trim().is_empty() || value.len() > 253 {
            return Err(StoreError::invalid(field, "must be 1 to 253 characters"));
        }
    }
    if Accelerator::find(&r.accelerator).is_none() {
        return Err(StoreError::invalid(
            "accelerator",
            format!("unknown {:?}; known: {}", r.accelerator, Accelerator::ids()),
        ));
    }
    if r.devices_per_replica == 0 || r.replicas == 0 {
        return Err(StoreError::invalid(
            "replicas",
            "a deployment needs at least one replica of at least one device",
        ));
    }
    if r.replica_cost_per_hour.micros() < 0 {
        return Err(StoreError::invalid("cost", "cannot be negative"));
    }
    db_int(r.model_params.0, "model_params")?;
    Ok(())
}

impl Tx {
    /// Admits a deployment if it fits the tenant's quota next to the
    /// tenant's live deployments, and records it, in this transaction.
    /// A rejection is [`StoreError::Quota`] and changes nothing; the
    /// transaction stays usable (e.g. to audit the rejection and commit).
    pub async fn admit_deployment(
        &mut self,
        tenant: TenantId,
        request: DeploymentRequest,
    ) -> Result<Deployment, StoreError> {
        self.actor()
            .check(tenant, Permission::Deploy)
            .map_err(|d| StoreError::denied(d, "tenant"))?;
        validate(&request)?;
        lock_tenant(self, tenant).await?;
        let taken: Option<(DeploymentId,)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT id FROM deployments WHERE tenant_id = $1 AND name = $2 AND deleted_at IS NULL",
        ).bind(tenant).bind(&request.name).fetch_optional(c).await)?;
        if taken.is_some() {
            return Err(StoreError::Conflict {
                kind: "deployment",
                name: request.name,
            });
        }
        let quota = load_quota(self.conn(), tenant).await?;
        let usage = load_usage(self.conn(), tenant).await?;
        let DeploymentRequest {
            name,
            model,
            model_params,
            cluster,
            namespace,
            pool,
            accelerator,
            devices_per_replica,
            replicas,
            precision,
            replica_cost_per_hour,
            source,
            resource_uid,
        } = request;
        let at = now();
        let deployment = Deployment {
            id: DeploymentId::new(),
            tenant,
            name,
            model,
            model_params,
            cluster,
            namespace,
            pool,
            accelerator,
            devices_per_replica,
            replicas,
            precision,
            replica_cost_per_hour,
            source,
            phase: Phase::Pending,
            ready_replicas: 0,
            status_message: None,
            resource_uid,
            conditions: Vec::new(),
            endpoint: None,
            weights: Vec::new(),
            revision: 1,
            created_at: at,
            updated_at: at,
            deleted_at: None,
            unschedulable_since: None,
        };
        check_admission(&quota, &usage, &deployment.footprint())?;
        let d = &deployment;
        on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO deployments (id, tenant_id, name, model, model_params, cluster, namespace, \
             pool, accelerator, devices_per_replica, replicas, precision, replica_cost_micros, \
             currency, source, phase, ready_replicas, resource_uid, revision, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0, $17, 1, $18, $18)",
        )
        .bind(d.id).bind(tenant).bind(&d.name).bind(&d.model).bind(db_int(d.model_params.0, "model_params")?)
        .bind(&d.cluster).bind(&d.namespace).bind(&d.pool).bind(&d.accelerator)
        .bind(i64::from(d.devices_per_replica)).bind(i64::from(d.replicas)).bind(d.precision.name())
        .bind(d.replica_cost_per_hour.micros()).bind(d.replica_cost_per_hour.currency().code())
        .bind(d.source.name()).bind(d.phase.as_str()).bind(&d.resource_uid).bind(at)
        .execute(c).await.map(|r| r.rows_affected()))
        .map_err(StoreError::unique("deployment", &d.name))?;
        self.note("create", "deployments", Some(tenant), d.id.0, &d.name);
        Ok(deployment)
    }

    /// Changes the replica count. Growth is checked against the quota under
    /// the tenant's lock, like admission; shrinking always succeeds.
    pub async fn resize_deployment(
        &mut self,
        id: DeploymentId,
        replicas: u32,
    ) -> Result<Deployment, StoreError> {
        let tenant = self.live_tenant_of(id, Permission::Deploy).await?;
        lock_tenant(self, tenant).await?;
        // Read again under the lock: a concurrent resize may have won.
        let current = self.live(id).await?;
        if current.replicas == replicas {
            return Ok(current);
        }
        let quota = load_quota(self.conn(), tenant).await?;
        let usage = load_usage(self.conn(), tenant).await?;
        check_resize(&quota, &usage, &current.footprint(), replicas)?;
        let at = now();
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE deployments SET replicas = $2, revision = revision + 1, updated_at = $3 WHERE id = $1",
        ).bind(id).bind(i64::from(replicas)).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
        self.note("update", "deployments", Some(tenant), id.0, &current.name);
        self.live(id).await
    }

    /// Marks a deployment deleted: it stops counting against the quota now,
    /// and cluster sync removes it from its cluster.
    pub async fn release_deployment(&mut self, id: DeploymentId) -> Result<Deployment, StoreError> {
        let tenant = self.live_tenant_of(id, Permission::Deploy).await?;
        let at = now();
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE deployments SET deleted_at = $2, phase = $3, revision = revision + 1, updated_at = $2 \
             WHERE id = $1 AND deleted_at IS NULL",
        ).bind(id).bind(at).bind(Phase::Deleting.as_str()).execute(c).await.map(|r| r.rows_affected()))?;
        let released = self.any(id).await?;
        self.note("delete", "deployments", Some(tenant), id.0, &released.name);
        Ok(released)
    }

    /// Releases deployment `id` as [`Tx::release_deployment`] does, but only
    /// if it is still at `revision` (not moved, resized or released since it
    /// was read): `None` when it changed.
    pub async fn release_unchanged(
        &mut self,
        id: DeploymentId,
        revision: u64,
    ) -> Result<Option<Deployment>, StoreError> {
        let tenant = self.live_tenant_of(id, Permission::Deploy).await?;
        let at = now();
        let revision = i64::try_from(revision).map_err(|_| StoreError::NotFound("deployment"))?;
        let changed = on_conn!(self.conn(), c => sqlx::query(
            "UPDATE deployments SET deleted_at = $2, phase = $3, revision = revision + 1, updated_at = $2 \
             WHERE id = $1 AND deleted_at IS NULL AND revision = $4",
        ).bind(id).bind(at).bind(Phase::Deleting.as_str()).bind(revision).execute(c).await.map(|r| r.rows_affected()))?;
        if changed == 0 {
            return Ok(None);
        }
        let released = self.any(id).await?;
        self.note("delete", "deployments", Some(tenant), id.0, &released.name);
        Ok(Some(released))
    }

    /// The tenant of a live deployment the actor may act on with `permission`.
    async fn live_tenant_of(
        &mut self,
        id: DeploymentId,
        permission: Permission,
    ) -> Result<TenantId, StoreError> {
        let found: Option<(TenantId,)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT tenant_id FROM deployments WHERE id = $1 AND deleted_at IS NULL",
        ).bind(id).fetch_optional(c).await)?;
        let (tenant,) = found.ok_or(StoreError::NotFound("deployment"))?;
        self.actor()
            .check(tenant, permission)
            .map_err(|d| StoreError::denied(d, "deployment"))?;
        Ok(tenant)
    }

    async fn live(&mut self, id: DeploymentId) -> Result<Deployment, StoreError> {
        let row: Option<Row> = on_conn!(self.conn(), c => sqlx::query_as(
            select!("WHERE id = $1 AND deleted_at IS NULL")).bind(id).fetch_optional(c).await)?;
        row.ok_or(StoreError::NotFound("deployment"))?.try_into()
    }

    async fn any(&mut self, id: DeploymentId) -> Result<Deployment, StoreError> {
        let row: Option<Row> = on_conn!(self.conn(), c => sqlx::query_as(
            select!("WHERE id = $1")).bind(id).fetch_optional(c).await)?;
        row.ok_or(StoreError::NotFound("deployment"))?.try_into()
    }
}

impl Store {
    /// A deployment by id, deleted ones included (`deleted_at` says so).
    pub async fn deployment(
        &self,
        scope: Scope,
        id: DeploymentId,
    ) -> Result<Deployment, StoreError> {
        let mut reader = self.reader().await?;
        let row: Option<Row> = on_conn!(reader.conn(), c => sqlx::query_as(select!("WHERE id = $1"))
            .bind(id).fetch_optional(c).await)?;
        let deployment: Deployment = row.ok_or(StoreError::NotFound("deployment"))?.try_into()?;
        visible(scope, deployment.tenant, "deployment")?;
        Ok(deployment)
    }

    /// A tenant's live deployment by name.
    pub async fn deployment_by_name(
        &self,
        scope: Scope,
        tenant: TenantId,
        name: &str,
    ) -> Result<Deployment, StoreError> {
        visible(scope, tenant, "deployment")?;
        let mut reader = self.reader().await?;
        let row: Option<Row> = on_conn!(reader.conn(), c => sqlx::query_as(
            select!("WHERE tenant_id = $1 AND name = $2 AND deleted_at IS NULL"))
            .bind(tenant).bind(name).fetch_optional(c).await)?;
        row.ok_or(StoreError::NotFound("deployment"))?.try_into()
    }

    /// The deployments a scope can see, by tenant and name.
    pub async fn deployments(
        &self,
        scope: Scope,
        include_deleted: bool,
    ) -> Result<Vec<Deployment>, StoreError> {
        let mut reader = self.reader().await?;
        let rows: Vec<Row> = on_conn!(reader.conn(), c => sqlx::query_as(
            select!("WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 OR deleted_at IS NULL) \
                     ORDER BY tenant_id, name, created_at"))
            .bind(scope.tenant()).bind(include_deleted).fetch_all(c).await)?;
        rows.into_iter().map(Deployment::try_from).collect()
    }
}
