//! What cluster sync and failover write about a deployment: the status
//! sync observed (guarded by the row's revision, so an observation of the
//! old state never overwrites a newer one) and a move to another placement,
//! re-admitted against the quota in the same transaction; and the queries
//! they start from.

use modelfleet_core::accelerator::Accelerator;
use modelfleet_core::money::Money;
use modelfleet_core::precision::Precision;
use modelfleet_core::quota::{Footprint, check_admission};

use super::super::quotas::{load_quota, load_usage, lock_tenant};
use super::super::{Conn, Store, StoreError, Tx, now, on_conn};
use modelfleet_core::crd::{Phase, PodWeights};

use super::{Deployment, LiveCondition, Row};
use crate::identity::Permission;
use crate::ids::DeploymentId;
use uuid::Uuid;

/// Where failover moves a deployment: a plan's pool and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relocation {
    pub cluster: String,
    pub pool: String,
    pub accelerator: String,
    pub devices_per_replica: u32,
    pub precision: Precision,
    pub replica_cost_per_hour: Money,
}

/// What cluster sync observed of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentStatus {
    pub phase: Phase,
    pub ready_replicas: u32,
    pub message: Option<String>,
    pub resource_uid: Option<String>,
    /// The ModelDeployment's conditions; `None` keeps those recorded.
    pub conditions: Option<Vec<LiveCondition>>,
    /// Where the model answers; `None` keeps the one recorded.
    pub endpoint: Option<String>,
    /// Its pods cannot be scheduled (the operator's `WorkloadReady`
    /// condition says `Unschedulable`).
    pub unschedulable: bool,
    /// Where each started pod's weights came from; `None` keeps those
    /// recorded.
    pub weights: Option<Vec<PodWeights>>,
}

impl Tx {
    /// Records what cluster sync observed. `resource_uid` is kept when
    /// `None` is given.
    pub async fn record_deployment_status(
        &mut self,
        id: DeploymentId,
        status: &DeploymentStatus,
    ) -> Result<Deployment, StoreError> {
        self.write_status(id, status, None)
            .await?
            .ok_or(StoreError::NotFound("deployment"))
    }

    /// Keeps the ModelDeployment the hub applied for deployment `id` (as
    /// JSON, before sealing): what it applies again if the object goes
    /// missing from its cluster.
    pub async fn record_applied_object(
        &mut self,
        id: DeploymentId,
        object: &str,
    ) -> Result<(), StoreError> {
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE deployments SET applied_object = $2 WHERE id = $1",
        ).bind(id).bind(object).execute(c).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Forgets the uid of deployment `id`'s ModelDeployment (gone from its
    /// cluster), so that the one the hub applies next is taken as the
    /// hub's own while it is written: only if the row is still at
    /// `revision`. `false` when it changed meanwhile.
    pub async fn forget_resource_uid(
        &mut self,
        id: DeploymentId,
        revision: u64,
    ) -> Result<bool, StoreError> {
        self.live_tenant_of(id, Permission::Deploy).await?;
        let revision =
            i64::try_from(revision).map_err(|_| StoreError::invalid("revision", "out of range"))?;
        let changed = on_conn!(self.conn(), c => sqlx::query(
            "UPDATE deployments SET resource_uid = NULL, revision = revision + 1, updated_at = $3 \
             WHERE id = $1 AND revision = $2 AND deleted_at IS NULL",
        ).bind(id).bind(revision).bind(now()).execute(c).await.map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }

    /// Records what cluster sync observed of the row as it read it: only
    /// if the row is still at `revision`. `None` when it changed meanwhile
    /// (moved by failover, resized, released), so that an observation of
    /// the old state never overwrites the new one; the next pass looks
    /// again.
    pub async fn record_synced_status(
        &mut self,
        id: DeploymentId,
        revision: u64,
        status: &DeploymentStatus,
    ) -> Result<Option<Deployment>, StoreError> {
        self.write_status(id, status, Some(revision)).await
    }

    async fn write_status(
        &mut self,
        id: DeploymentId,
        status: &DeploymentStatus,
        revision: Option<u64>,
    ) -> Result<Option<Deployment>, StoreError> {
        let current = self.any(id).await?;
        self.actor()
            .check(current.tenant, Permission::Deploy)
            .map_err(|d| StoreError::denied(d, "deployment"))?;
        let DeploymentStatus {
            phase,
            ready_replicas,
            message,
            resource_uid,
            conditions,
            endpoint,
            unschedulable,
            weights,
        } = status;
        let weights = weights
            .as_ref()
            .map(|w| {
                serde_json::to_string(w)
                    .map_err(|_| StoreError::invalid("weights", "cannot be encoded"))
            })
            .transpose()?;
        let conditions = conditions
            .as_ref()
            .map(|c| {
                serde_json::to_string(c)
                    .map_err(|_| StoreError::invalid("conditions", "cannot be encoded"))
            })
            .transpose()?;
        let revision = revision
            .map(|r| i64::try_from(r).map_err(|_| StoreError::invalid("revision", "out of range")))
            .transpose()?;
        let changed = on_conn!(self.conn(), c => sqlx::query(
            "UPDATE deployments SET phase = $2, ready_replicas = $3, status_message = $4, \
             resource_uid = COALESCE($5, resource_uid), revision = revision + 1, updated_at = $6, \
             unschedulable_since = CASE WHEN $7 THEN COALESCE(unschedulable_since, $6) ELSE NULL END, \
             conditions = COALESCE($9, conditions), endpoint = COALESCE($10, endpoint), \
             weights = COALESCE($11, weights) \
             WHERE id = $1 AND ($8 IS NULL OR revision = $8)",
        ).bind(id).bind(phase.as_str()).bind(i64::from(*ready_replicas)).bind(message)
        .bind(resource_uid).bind(now()).bind(*unschedulable).bind(revision)
        .bind(conditions).bind(endpoint).bind(weights)
        .execute(c).await.map(|r| r.rows_affected()))?;
        if changed == 0 {
            return Ok(None);
        }
        self.note(
            "update",
            "deployments/status",
            Some(current.tenant),
            id.0,
            &current.name,
        );
        self.any(id).await.map(Some)
    }

    /// Moves a live deployment to another placement (failover): in this
    /// transaction, under the tenant's lock, its current footprint is
    /// released and the new one admitted against the quota, so the move
    /// never needs the old and the new devices at once, and two admissions
    /// cannot both count the room it frees. A rejection is
    /// [`StoreError::Quota`]; roll the transaction back then.
    ///
    /// With `revision`, the row must still be at that revision (unchanged
    /// since the caller decided to move it), else [`StoreError::Conflict`].
    pub async fn move_deployment(
        &mut self,
        id: DeploymentId,
        revision: Option<u64>,
        to: &Relocation,
    ) -> Result<Deployment, StoreError> {
        let tenant = self.live_tenant_of(id, Permission::Deploy).await?;
        lock_tenant(self, tenant).await?;
        let current = self.live(id).await?;
        if revision.is_some_and(|r| r != current.revision) {
            return Err(StoreError::Conflict {
                kind: "deployment revision",
                name: current.name,
            });
        }
        let Relocation {
            cluster,
            pool,
            accelerator,
            devices_per_replica,
            precision,
            replica_cost_per_hour,
        } = to;
        if Accelerator::find(accelerator).is_none() || *devices_per_replica == 0 {
            return Err(StoreError::invalid(
                "placement",
                "a placement needs a known accelerator and at least one device",
            ));
        }
        let at = now();
        // Out of the sum for the check, back in with its new shape below.
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE deployments SET deleted_at = $2 WHERE id = $1",
        ).bind(id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
        let quota = load_quota(self.conn(), tenant).await?;
        let usage = load_usage(self.conn(), tenant).await?;
        let moved = Footprint {
            accelerator: accelerator.clone(),
            devices_per_replica: *devices_per_replica,
            replicas: current.replicas,
            model_params: current.model_params,
            replica_cost_per_hour: *replica_cost_per_hour,
        };
        check_admission(&quota, &usage, &moved)?;
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE deployments SET deleted_at = NULL, cluster = $2, pool = $3, accelerator = $4, \
             devices_per_replica = $5, precision = $6, replica_cost_micros = $7, currency = $8, \
             phase = $9, ready_replicas = 0, status_message = NULL, resource_uid = NULL, \
             conditions = '[]', endpoint = NULL, unschedulable_since = NULL, revision = revision + 1, updated_at = $10 WHERE id = $1",
        ).bind(id).bind(cluster).bind(pool).bind(accelerator).bind(i64::from(*devices_per_replica))
        .bind(precision.name()).bind(replica_cost_per_hour.micros())
        .bind(replica_cost_per_hour.currency().code()).bind(Phase::Pending.as_str()).bind(at)
        .execute(c).await.map(|r| r.rows_affected()))?;
        self.note(
            "update",
            "deployments/placement",
            Some(tenant),
            id.0,
            &current.name,
        );
        self.live(id).await
    }
}

impl Store {
    /// The ModelDeployment the hub last applied for deployment `id`, as
    /// JSON; `None` when it applied none (kubectl did, or the row predates
    /// keeping it).
    pub async fn applied_object(&self, id: DeploymentId) -> Result<Option<String>, StoreError> {
        let mut reader = self.reader().await?;
        let found: Option<(Option<String>,)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT applied_object FROM deployments WHERE id = $1",
        ).bind(id).fetch_optional(c).await)?;
        Ok(found.and_then(|(object,)| object))
    }

    /// Live deployments placed on `cluster`, every tenant's: what cluster
    /// sync compares the cluster's ModelDeployments with.
    pub async fn cluster_deployments(&self, cluster: &str) -> Result<Vec<Deployment>, StoreError> {
        let mut reader = self.reader().await?;
        let rows: Vec<Row> = on_conn!(reader.conn(), c => sqlx::query_as(
            select!("WHERE cluster = $1 AND deleted_at IS NULL ORDER BY tenant_id, name"))
            .bind(cluster).fetch_all(c).await)?;
        rows.into_iter().map(Deployment::try_from).collect()
    }

    /// The deployments of `ids`, every tenant's, released ones included,
    /// in no particular order; an id with no row is left out. One query
    /// however many ids: what a cluster sync pass reads the rows with that
    /// its ModelDeployments name and [`Store::cluster_deployments`] did not
    /// return (released, or moved to another cluster), instead of one
    /// query per object.
    pub async fn deployments_by_id(
        &self,
        ids: &[DeploymentId],
    ) -> Result<Vec<Deployment>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut reader = self.reader().await?;
        // The ids travel as one parameter, so no list nears either
        // database's limit on parameters and the statement text never
        // changes: an array on PostgreSQL; on SQLite, which has no arrays,
        // a JSON array of the ids as the column stores them (hyphenated
        // text, as `Display` writes them) that `json_each` unpacks.
        let rows: Vec<Row> = match reader.conn() {
            Conn::Postgres(c) => {
                let ids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
                sqlx::query_as(select!("WHERE id = ANY($1)"))
                    .bind(ids)
                    .fetch_all(c)
                    .await?
            }
            Conn::Sqlite(c) => {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                let ids = serde_json::Value::from(ids).to_string();
                sqlx::query_as(select!("WHERE id IN (SELECT value FROM json_each($1))"))
                    .bind(ids)
                    .fetch_all(c)
                    .await?
            }
        };
        rows.into_iter().map(Deployment::try_from).collect()
    }

    /// Live deployments whose pods sync has seen unschedulable, longest
    /// first: failover's candidates.
    pub async fn unschedulable_deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        let mut reader = self.reader().await?;
        let rows: Vec<Row> = on_conn!(reader.conn(), c => sqlx::query_as(
            select!("WHERE unschedulable_since IS NOT NULL AND deleted_at IS NULL \
                     ORDER BY unschedulable_since"))
            .fetch_all(c).await)?;
        rows.into_iter().map(Deployment::try_from).collect()
    }
}
