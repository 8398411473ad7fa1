//! Replica device intervals: when each pod of a deployment held its
//! devices. Cluster sync opens one when it sees a pod bound to a node and
//! closes it when it sees the pod gone or finished; billing (accelerator-
//! seconds) is summed from these rows.
//!
//! A pod is recorded once — opening adds nothing when the pod has an
//! interval already — so a restarted sync that sees the same pods again
//! adds nothing, and closing only touches open rows, so an interval's end
//! is never moved once written. The one exception is a pod whose interval
//! was closed because its cluster was lost (`lost`): seen running again
//! once the cluster answers, it gets a new interval from that moment, so
//! the time nobody could see it is not billed. At most one interval per
//! pod is open (a unique index on the open rows).

use chrono::{DateTime, Utc};
use modelfleet_core::billing::Capacity;
use modelfleet_core::fleet::Cloud;
use serde::Serialize;

use super::quotas::db_int;
use super::{Store, StoreError, Tx, now, on_conn, visible};
use crate::identity::{Permission, Scope};
use crate::ids::{DeploymentId, IntervalId, TenantId};

/// A pod bound to a node, as sync saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInterval {
    pub deployment: DeploymentId,
    pub tenant: TenantId,
    pub cluster: String,
    pub namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub node: String,
    pub pool: String,
    pub accelerator: String,
    pub devices: u32,
    /// When the pod was bound to its node.
    pub allocated_at: DateTime<Utc>,
    /// Where the pool is and how it is bought: the price key. `None` when
    /// sync could not list the cluster's pools; billing then takes the
    /// cluster's registered cloud and region, at on-demand prices.
    pub location: Option<PoolLocation>,
}

/// The cloud, region and capacity type of a pool when an interval opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLocation {
    pub cloud: Cloud,
    pub region: String,
    pub capacity: Capacity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ReplicaInterval {
    pub id: IntervalId,
    pub deployment_id: DeploymentId,
    pub tenant_id: TenantId,
    pub cluster: String,
    pub namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub node: String,
    pub pool: String,
    pub accelerator: String,
    pub devices: i64,
    pub allocated_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
    pub cloud: Option<String>,
    pub region: Option<String>,
    pub capacity: Option<String>,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, deployment_id, tenant_id, cluster, namespace, pod_name, pod_uid, node, \
             pool, accelerator, devices, allocated_at, released_at, cloud, region, capacity \
             FROM replica_intervals ",
            $tail
        )
    };
}

impl Tx {
    /// Records that a pod holds its devices. Returns whether a row was
    /// added: `false` when this pod (cluster and uid) is already recorded.
    pub async fn open_interval(&mut self, new: &NewInterval) -> Result<bool, StoreError> {
        self.actor()
            .check(new.tenant, Permission::Deploy)
            .map_err(|d| StoreError::denied(d, "deployment"))?;
        let last: Option<(Option<DateTime<Utc>>, bool)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT released_at, lost FROM replica_intervals WHERE cluster = $1 AND pod_uid = $2 \
             ORDER BY allocated_at DESC LIMIT 1",
        ).bind(&new.cluster).bind(&new.pod_uid).fetch_optional(c).await)?;
        let allocated_at = match last {
            None => new.allocated_at,
            // Seen again after its cluster was lost: from now on.
            Some((Some(released), true)) => new.allocated_at.max(released).max(now()),
            // Open, or ended: recorded already.
            Some(_) => return Ok(false),
        };
        let id = IntervalId::new();
        let added = on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO replica_intervals (id, deployment_id, tenant_id, cluster, namespace, \
             pod_name, pod_uid, node, pool, accelerator, devices, allocated_at, cloud, region, \
             capacity) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (cluster, pod_uid) WHERE released_at IS NULL DO NOTHING",
        )
        .bind(id).bind(new.deployment).bind(new.tenant).bind(&new.cluster).bind(&new.namespace)
        .bind(&new.pod_name).bind(&new.pod_uid).bind(&new.node).bind(&new.pool)
        .bind(&new.accelerator).bind(db_int(u64::from(new.devices), "devices")?)
        .bind(allocated_at)
        .bind(new.location.as_ref().map(|l| l.cloud.to_string()))
        .bind(new.location.as_ref().map(|l| l.region.clone()))
        .bind(new.location.as_ref().map(|l| l.capacity.name()))
        .execute(c).await.map(|r| r.rows_affected()))?;
        if added == 1 {
            self.note("create", "intervals", Some(new.tenant), id.0, &new.pod_name);
        }
        Ok(added == 1)
    }

    /// Closes the open interval of a pod at `at` (or at its start, if the
    /// clock says earlier). Returns whether one was open.
    pub async fn close_interval(
        &mut self,
        cluster: &str,
        pod_uid: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let open: Option<(IntervalId, TenantId, String, DateTime<Utc>)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT id, tenant_id, pod_name, allocated_at FROM replica_intervals \
             WHERE cluster = $1 AND pod_uid = $2 AND released_at IS NULL",
        ).bind(cluster).bind(pod_uid).fetch_optional(c).await)?;
        let Some((id, tenant, pod_name, allocated_at)) = open else {
            return Ok(false);
        };
        self.actor()
            .check(tenant, Permission::Deploy)
            .map_err(|d| StoreError::denied(d, "deployment"))?;
        let at = at.max(allocated_at);
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE replica_intervals SET released_at = $2 WHERE id = $1 AND released_at IS NULL",
        ).bind(id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
        self.note("update", "intervals", Some(tenant), id.0, &pod_name);
        Ok(true)
    }
}

impl Store {
    /// The intervals still open in `cluster`: what a (re)starting sync
    /// checks against the pods that run.
    pub async fn open_intervals(&self, cluster: &str) -> Result<Vec<ReplicaInterval>, StoreError> {
        let mut reader = self.reader().await?;
        on_conn!(reader.conn(), c => sqlx::query_as(
            select!("WHERE cluster = $1 AND released_at IS NULL ORDER BY allocated_at"))
            .bind(cluster).fetch_all(c).await)
        .map_err(StoreError::from)
    }

    /// A deployment's intervals, oldest first.
    pub async fn deployment_intervals(
        &self,
        scope: Scope,
        tenant: TenantId,
        deployment: DeploymentId,
    ) -> Result<Vec<ReplicaInterval>, StoreError> {
        visible(scope, tenant, "deployment")?;
        let mut reader = self.reader().await?;
        on_conn!(reader.conn(), c => sqlx::query_as(
            select!("WHERE deployment_id = $1 AND tenant_id = $2 ORDER BY allocated_at, pod_uid"))
            .bind(deployment).bind(tenant).fetch_all(c).await)
        .map_err(StoreError::from)
    }
}
