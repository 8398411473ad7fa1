//! Deployment events: what happened to a deployment besides a user's own
//! create, resize and delete — today failover's steps. Each is written on
//! the transaction that makes the change it describes, so the record and
//! the change commit together.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError, Tx, now, on_conn, visible};
use crate::identity::{Permission, Scope};
use crate::ids::{DeploymentId, EventId, TenantId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// Re-placed from one cluster/pool to another (its row points there).
    FailoverPlaced,
    /// The ModelDeployment at the old placement was deleted.
    FailoverRemoved,
    /// It stays unschedulable: no other placement fits.
    FailoverStuck,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::FailoverPlaced => "failover-placed",
            EventKind::FailoverRemoved => "failover-removed",
            EventKind::FailoverStuck => "failover-stuck",
        }
    }

    fn parse(name: &str) -> Result<EventKind, StoreError> {
        Ok(match name {
            "failover-placed" => EventKind::FailoverPlaced,
            "failover-removed" => EventKind::FailoverRemoved,
            "failover-stuck" => EventKind::FailoverStuck,
            _ => return Err(StoreError::Corrupt("deployment event kind")),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub deployment: DeploymentId,
    pub tenant: TenantId,
    pub kind: EventKind,
    /// `(cluster, pool)` before, if it had one.
    pub from: Option<(String, String)>,
    /// `(cluster, pool)` after, if it has one.
    pub to: Option<(String, String)>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentEvent {
    pub id: EventId,
    pub deployment: DeploymentId,
    pub tenant: TenantId,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub from_cluster: Option<String>,
    pub from_pool: Option<String>,
    pub to_cluster: Option<String>,
    pub to_pool: Option<String>,
    pub reason: String,
}

type Row = (
    EventId,
    DeploymentId,
    TenantId,
    DateTime<Utc>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

impl Tx {
    pub async fn record_event(&mut self, event: &NewEvent) -> Result<DeploymentEvent, StoreError> {
        let NewEvent {
            deployment,
            tenant,
            kind,
            from,
            to,
            reason,
        } = event;
        self.actor()
            .check(*tenant, Permission::Deploy)
            .map_err(|d| StoreError::denied(d, "deployment"))?;
        let id = EventId::new();
        let at = now();
        let (from_cluster, from_pool) = from.clone().unzip();
        let (to_cluster, to_pool) = to.clone().unzip();
        on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO deployment_events (id, deployment_id, tenant_id, at, kind, from_cluster, \
             from_pool, to_cluster, to_pool, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id).bind(deployment).bind(tenant).bind(at).bind(kind.name())
        .bind(&from_cluster).bind(&from_pool).bind(&to_cluster).bind(&to_pool).bind(reason)
        .execute(c).await.map(|r| r.rows_affected()))?;
        self.note(
            "create",
            "deployments/events",
            Some(*tenant),
            id.0,
            kind.name(),
        );
        Ok(DeploymentEvent {
            id,
            deployment: *deployment,
            tenant: *tenant,
            at,
            kind: *kind,
            from_cluster,
            from_pool,
            to_cluster,
            to_pool,
            reason: reason.clone(),
        })
    }
}

impl Store {
    /// A deployment's events, oldest first.
    pub async fn deployment_events(
        &self,
        scope: Scope,
        tenant: TenantId,
        deployment: DeploymentId,
    ) -> Result<Vec<DeploymentEvent>, StoreError> {
        visible(scope, tenant, "deployment")?;
        let mut reader = self.reader().await?;
        let rows: Vec<Row> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT id, deployment_id, tenant_id, at, kind, from_cluster, from_pool, to_cluster, \
             to_pool, reason FROM deployment_events WHERE deployment_id = $1 AND tenant_id = $2 \
             ORDER BY at, id",
        ).bind(deployment).bind(tenant).fetch_all(c).await)?;
        rows.into_iter()
            .map(|r| {
                Ok(DeploymentEvent {
                    id: r.0,
                    deployment: r.1,
                    tenant: r.2,
                    at: r.3,
                    kind: EventKind::parse(&r.4)?,
                    from_cluster: r.5,
                    from_pool: r.6,
                    to_cluster: r.7,
                    to_pool: r.8,
                    reason: r.9,
                })
            })
            .collect()
    }
}
