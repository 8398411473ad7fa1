//! Whether the hub can reach its clusters. Cluster sync records each
//! complete look it takes at a cluster (`last_seen_at`); a cluster that
//! stays unreachable for longer than the hub's setting is declared lost:
//! its open replica intervals are closed at the last time the hub saw
//! their pods, and its deployments stop counting as running (marked
//! unschedulable, which failover acts on). When it answers again, sync
//! picks up what it finds there, and that is recorded too.

use chrono::{DateTime, Utc};
use modelfleet_core::crd::Phase;

use super::deployments::DeploymentStatus;
use super::{AuditEntry, StoreError, Tx, on_conn};
use crate::identity::Permission;
use crate::ids::{ClusterId, DeploymentId, IntervalId, TenantId};

/// What declaring a cluster lost changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostCluster {
    pub id: ClusterId,
    /// When the hub last saw it completely; its open intervals were closed
    /// then (or at the declaration, when it was never seen).
    pub last_seen_at: Option<DateTime<Utc>>,
    pub intervals_closed: u64,
    pub deployments: u64,
}

impl Tx {
    /// Records that cluster sync looked at `cluster` completely, starting
    /// at `at`. When it had been lost it no longer is, and that is
    /// recorded in the audit trail; returns since when it had been.
    pub async fn cluster_seen(
        &mut self,
        cluster: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<(ClusterId, DateTime<Utc>)>, StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "cluster"))?;
        let found: Option<(ClusterId, Option<DateTime<Utc>>)> = on_conn!(self.conn(), c =>
            sqlx::query_as("SELECT id, lost_at FROM clusters WHERE name = $1")
                .bind(cluster).fetch_optional(c).await)?;
        let (id, lost_at) = found.ok_or(StoreError::NotFound("cluster"))?;
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE clusters SET last_seen_at = $2, lost_at = NULL WHERE id = $1 \
             AND (last_seen_at IS NULL OR last_seen_at <= $2)",
        ).bind(id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
        if let Some(since) = lost_at {
            self.audit_as(cluster_entry(
                cluster,
                id,
                format!(
                    "answers again (lost since {}); cluster sync resumes with what runs there",
                    since.to_rfc3339()
                ),
            ));
        }
        Ok(lost_at.map(|since| (id, since)))
    }

    /// Declares `cluster` lost at `at`, unreachable for more than
    /// `after_seconds`: its open replica intervals are closed at the last
    /// time it was seen (marked `lost`, so that a pod seen again later
    /// gets a new interval from then), and each of its live deployments is
    /// shown as not running (phase `Failed`, no ready replicas, a message
    /// saying why) and marked unschedulable, which failover acts on; one
    /// audit record says all of it. `None` when it already is lost.
    /// Platform rights (the system).
    pub async fn lose_cluster(
        &mut self,
        cluster: &str,
        at: DateTime<Utc>,
        after_seconds: u64,
    ) -> Result<Option<LostCluster>, StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "cluster"))?;
        type Found = (ClusterId, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let found: Option<Found> = on_conn!(self.conn(), c => sqlx::query_as(
                "SELECT id, last_seen_at, lost_at FROM clusters WHERE name = $1",
            ).bind(cluster).fetch_optional(c).await)?;
        let (id, last_seen_at, lost_at) = found.ok_or(StoreError::NotFound("cluster"))?;
        if lost_at.is_some() {
            return Ok(None);
        }
        let closed_at = last_seen_at.unwrap_or(at);
        let seen = last_seen_at.map_or_else(|| "never".to_owned(), |t| t.to_rfc3339());
        let message = format!(
            "cluster {cluster} has not answered for more than {after_seconds} s (last seen: \
             {seen}); nothing there is counted as running until it answers again"
        );
        let open: Vec<(IntervalId, TenantId, String)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT id, tenant_id, pod_name FROM replica_intervals \
             WHERE cluster = $1 AND released_at IS NULL ORDER BY allocated_at",
        ).bind(cluster).fetch_all(c).await)?;
        for (interval, tenant, pod_name) in &open {
            on_conn!(self.conn(), c => sqlx::query(
                "UPDATE replica_intervals SET lost = TRUE, released_at = \
                 CASE WHEN allocated_at > $2 THEN allocated_at ELSE $2 END \
                 WHERE id = $1 AND released_at IS NULL",
            ).bind(interval).bind(closed_at).execute(c).await.map(|r| r.rows_affected()))?;
            self.note("update", "intervals", Some(*tenant), interval.0, pod_name);
        }
        let live: Vec<(DeploymentId,)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT id FROM deployments WHERE cluster = $1 AND deleted_at IS NULL ORDER BY id",
        ).bind(cluster).fetch_all(c).await)?;
        for (deployment,) in &live {
            self.record_deployment_status(
                *deployment,
                &DeploymentStatus {
                    phase: Phase::Failed,
                    ready_replicas: 0,
                    message: Some(message.clone()),
                    resource_uid: None,
                    conditions: None,
                    endpoint: None,
                    unschedulable: true,
                    weights: None,
                },
            )
            .await?;
        }
        on_conn!(self.conn(), c => sqlx::query("UPDATE clusters SET lost_at = $2 WHERE id = $1")
            .bind(id).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
        self.audit_as(cluster_entry(
            cluster,
            id,
            format!(
                "lost: unreachable for more than {after_seconds} s (last seen: {seen}); {} open \
                 replica interval(s) closed at {}; {} deployment(s) marked unreachable, and \
                 those the hub placed fail over where their placement allows",
                open.len(),
                closed_at.to_rfc3339(),
                live.len()
            ),
        ));
        Ok(Some(LostCluster {
            id,
            last_seen_at,
            intervals_closed: open.len() as u64,
            deployments: live.len() as u64,
        }))
    }
}

/// The one audit record of a change in a cluster's reachability, by the
/// system (the transaction's actor).
fn cluster_entry(cluster: &str, id: ClusterId, message: String) -> AuditEntry {
    AuditEntry {
        verb: "update".to_owned(),
        resource: "clusters".to_owned(),
        tenant: None,
        name: Some(cluster.to_owned()),
        uid: Some(id.to_string()),
        code: None,
        message: Some(message),
        annotations: Default::default(),
    }
}
