//! Registered clusters and the hub's price for each of their node pools.
//!
//! Clusters belong to the platform, not to a tenant, so the reads here take
//! no [`Scope`](crate::Scope): the API lets only platform admins list them,
//! and placement reads them on every tenant's behalf. A cluster's kubeconfig
//! is sealed under the [`Keyring`] with the cluster's id in its context, so
//! a sealed kubeconfig copied onto another row does not open.

use chrono::{DateTime, Utc};
use modelfleet_core::fleet::{Cloud, is_dns_label};
use modelfleet_core::money::Money;
use serde::Serialize;

use super::quotas::parse_currency;
use super::{Store, StoreError, Tx, now, on_conn};
use crate::identity::Permission;
use crate::ids::ClusterId;
use crate::secret::{Keyring, Sealed, Secret};

/// Cluster names appear in pool references (`cluster/pool`) and labels.
pub const MAX_CLUSTER_NAME_LEN: usize = 63;
/// A kubeconfig larger than this is not a kubeconfig.
pub const MAX_KUBECONFIG_BYTES: usize = 256 * 1024;

/// How the hub reaches a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterKind {
    /// Through a kubeconfig stored sealed.
    Kubeconfig,
    /// Simulated in the hub's process; its client is handed in at start-up.
    Sandbox,
}

impl ClusterKind {
    pub fn name(self) -> &'static str {
        match self {
            ClusterKind::Kubeconfig => "kubeconfig",
            ClusterKind::Sandbox => "sandbox",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cluster {
    pub id: ClusterId,
    pub name: String,
    pub cloud: Cloud,
    pub region: String,
    pub kind: ClusterKind,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When cluster sync last looked at it completely (the start of that
    /// look); `None` until it has.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Since when the hub takes it as lost: unreachable for longer than
    /// its setting. Cleared when it answers again.
    pub lost_at: Option<DateTime<Utc>>,
}

/// A cluster to register. The kubeconfig is plaintext only until the store
/// seals it.
#[derive(Debug)]
pub struct NewCluster {
    pub name: String,
    pub cloud: Cloud,
    pub region: String,
    /// `None` registers a sandbox cluster.
    pub kubeconfig: Option<Secret>,
}

/// The hub's price for one pool of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolPrice {
    pub cluster: ClusterId,
    pub pool: String,
    pub price_per_device_hour: Money,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: ClusterId,
    name: String,
    cloud: String,
    region: String,
    kind: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_seen_at: Option<DateTime<Utc>>,
    lost_at: Option<DateTime<Utc>>,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, cloud, region, kind, created_at, updated_at, last_seen_at, \
             lost_at FROM clusters ",
            $tail
        )
    };
}

impl TryFrom<Row> for Cluster {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(Cluster {
            id: r.id,
            name: r.name,
            cloud: r.cloud.parse().map_err(|_| StoreError::Corrupt("cloud"))?,
            region: r.region,
            kind: match r.kind.as_str() {
                "kubeconfig" => ClusterKind::Kubeconfig,
                "sandbox" => ClusterKind::Sandbox,
                _ => return Err(StoreError::Corrupt("cluster kind")),
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_seen_at: r.last_seen_at,
            lost_at: r.lost_at,
        })
    }
}

fn kubeconfig_context(id: ClusterId) -> String {
    format!("cluster:{id}:kubeconfig")
}

fn validate(new: &NewCluster) -> Result<(), StoreError> {
    if !is_dns_label(&new.name) || new.name.len() > MAX_CLUSTER_NAME_LEN {
        return Err(StoreError::invalid(
            "name",
            format!(
                "{:?} must be at most {MAX_CLUSTER_NAME_LEN} lower-case letters, digits and '-', \
                 starting and ending with a letter or digit",
                new.name
            ),
        ));
    }
    if !is_dns_label(&new.region) {
        return Err(StoreError::invalid(
            "region",
            format!(
                "{:?} must be lower-case letters, digits and '-', like us-east-1",
                new.region
            ),
        ));
    }
    if let Some(kubeconfig) = &new.kubeconfig {
        let text = kubeconfig.expose();
        if text.trim().is_empty() || text.len() > MAX_KUBECONFIG_BYTES {
            return Err(StoreError::invalid(
                "kubeconfig",
                format!("must be a kubeconfig document of at most {MAX_KUBECONFIG_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

impl Tx {
    /// Registers a cluster, sealing its kubeconfig. Platform admins only.
    pub async fn register_cluster(
        &mut self,
        new: NewCluster,
        keyring: &Keyring,
    ) -> Result<Cluster, StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "cluster"))?;
        validate(&new)?;
        let NewCluster {
            name,
            cloud,
            region,
            kubeconfig,
        } = new;
        let id = ClusterId::new();
        let sealed = kubeconfig
            .map(|k| keyring.seal(&k, &kubeconfig_context(id)))
            .transpose()?;
        let at = now();
        let cluster = Cluster {
            id,
            name,
            cloud,
            region,
            kind: match sealed {
                Some(_) => ClusterKind::Kubeconfig,
                None => ClusterKind::Sandbox,
            },
            created_at: at,
            updated_at: at,
            last_seen_at: None,
            lost_at: None,
        };
        on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO clusters (id, name, cloud, region, kind, kubeconfig, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(id).bind(&cluster.name).bind(cluster.cloud.name()).bind(&cluster.region)
        .bind(cluster.kind.name()).bind(sealed.as_ref().map(Sealed::as_bytes)).bind(at)
        .execute(c).await.map(|r| r.rows_affected()))
        .map_err(StoreError::unique("cluster", &cluster.name))?;
        self.note("create", "clusters", None, id.0, &cluster.name);
        Ok(cluster)
    }

    /// Removes a cluster registered by kubeconfig that holds nothing: no
    /// live deployment, no replica interval still open (a deleted
    /// deployment's pods not yet seen gone). Its pool prices go with it;
    /// deployments' history keeps its name. Platform admins only.
    pub async fn remove_cluster(&mut self, id: ClusterId) -> Result<Cluster, StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "cluster"))?;
        let row: Option<Row> = on_conn!(self.conn(), c => sqlx::query_as(select!("WHERE id = $1"))
            .bind(id).fetch_optional(c).await)?;
        let cluster = Cluster::try_from(row.ok_or(StoreError::NotFound("cluster"))?)?;
        let in_use = |reason: String| StoreError::InUse {
            kind: "cluster",
            name: cluster.name.clone(),
            reason,
        };
        if cluster.kind == ClusterKind::Sandbox {
            return Err(in_use(
                "it is a sandbox cluster of `modelfleet serve`, which starts it from its fleet \
                 file; change the fleet file instead"
                    .to_owned(),
            ));
        }
        let live: Vec<(String, String)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT t.name, d.name FROM deployments d JOIN tenants t ON t.id = d.tenant_id \
             WHERE d.cluster = $1 AND d.deleted_at IS NULL ORDER BY t.name, d.name",
        ).bind(&cluster.name).fetch_all(c).await)?;
        if !live.is_empty() {
            let names: Vec<String> = live
                .iter()
                .take(5)
                .map(|(tenant, name)| format!("{tenant}/{name}"))
                .collect();
            return Err(in_use(format!(
                "it holds {} deployment(s) ({}{}); delete them, or let failover move them, first",
                live.len(),
                names.join(", "),
                if live.len() > names.len() {
                    ", …"
                } else {
                    ""
                }
            )));
        }
        let (open,): (i64,) = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT COUNT(*) FROM replica_intervals WHERE cluster = $1 AND released_at IS NULL",
        ).bind(&cluster.name).fetch_one(c).await)?;
        if open > 0 {
            return Err(in_use(format!(
                "{open} replica(s) of deleted deployments have not been seen gone yet; try again \
                 once cluster sync has seen their pods end"
            )));
        }
        on_conn!(self.conn(), c => sqlx::query("DELETE FROM clusters WHERE id = $1")
            .bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        self.note("delete", "clusters", None, id.0, &cluster.name);
        Ok(cluster)
    }

    /// Sets (or, with `None`, removes) the hub's price for a pool of a
    /// cluster. Platform admins only.
    pub async fn set_pool_price(
        &mut self,
        cluster: ClusterId,
        pool: &str,
        price: Option<Money>,
    ) -> Result<Option<PoolPrice>, StoreError> {
        self.actor()
            .check_role(Permission::ManagePlatform)
            .map_err(|d| StoreError::denied(d, "cluster"))?;
        if !is_dns_label(pool) {
            return Err(StoreError::invalid(
                "pool",
                format!("{pool:?} is not a pool name: lower-case letters, digits and '-'"),
            ));
        }
        if price.is_some_and(|p| p.micros() < 0) {
            return Err(StoreError::invalid("price", "cannot be negative"));
        }
        let found: Option<(String,)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT name FROM clusters WHERE id = $1").bind(cluster).fetch_optional(c).await)?;
        let (cluster_name,) = found.ok_or(StoreError::NotFound("cluster"))?;
        let at = now();
        let Some(price) = price else {
            on_conn!(self.conn(), c => sqlx::query(
                "DELETE FROM cluster_pool_prices WHERE cluster_id = $1 AND pool = $2",
            ).bind(cluster).bind(pool).execute(c).await.map(|r| r.rows_affected()))?;
            self.note(
                "delete",
                "prices",
                None,
                cluster.0,
                &format!("{cluster_name}/{pool}"),
            );
            return Ok(None);
        };
        on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO cluster_pool_prices (cluster_id, pool, micros_per_device_hour, currency, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (cluster_id, pool) DO UPDATE SET \
             micros_per_device_hour = excluded.micros_per_device_hour, \
             currency = excluded.currency, updated_at = excluded.updated_at",
        )
        .bind(cluster).bind(pool).bind(price.micros()).bind(price.currency().code()).bind(at)
        .execute(c).await.map(|r| r.rows_affected()))?;
        self.note(
            "update",
            "prices",
            None,
            cluster.0,
            &format!("{cluster_name}/{pool}"),
        );
        Ok(Some(PoolPrice {
            cluster,
            pool: pool.to_owned(),
            price_per_device_hour: price,
            updated_at: at,
        }))
    }
}

impl Store {
    /// Every registered cluster, by name.
    pub async fn clusters(&self) -> Result<Vec<Cluster>, StoreError> {
        let mut reader = self.reader().await?;
        let rows: Vec<Row> = on_conn!(reader.conn(), c => sqlx::query_as(select!("ORDER BY name"))
            .fetch_all(c).await)?;
        rows.into_iter().map(Cluster::try_from).collect()
    }

    pub async fn cluster(&self, id: ClusterId) -> Result<Cluster, StoreError> {
        let mut reader = self.reader().await?;
        let row: Option<Row> = on_conn!(reader.conn(), c => sqlx::query_as(select!("WHERE id = $1"))
            .bind(id).fetch_optional(c).await)?;
        row.ok_or(StoreError::NotFound("cluster"))?.try_into()
    }

    pub async fn cluster_by_name(&self, name: &str) -> Result<Cluster, StoreError> {
        let mut reader = self.reader().await?;
        let row: Option<Row> = on_conn!(reader.conn(), c => sqlx::query_as(select!("WHERE name = $1"))
            .bind(name).fetch_optional(c).await)?;
        row.ok_or(StoreError::NotFound("cluster"))?.try_into()
    }

    /// Opens a cluster's kubeconfig; `None` for sandbox clusters. Only the
    /// cluster registry calls this, to build the cluster's client.
    pub async fn cluster_kubeconfig(
        &self,
        id: ClusterId,
        keyring: &Keyring,
    ) -> Result<Option<Secret>, StoreError> {
        let mut reader = self.reader().await?;
        let row: Option<(Option<Vec<u8>>,)> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT kubeconfig FROM clusters WHERE id = $1").bind(id).fetch_optional(c).await)?;
        let (bytes,) = row.ok_or(StoreError::NotFound("cluster"))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let sealed = Sealed::from_stored(bytes).map_err(|_| StoreError::Corrupt("kubeconfig"))?;
        Ok(Some(keyring.open(&sealed, &kubeconfig_context(id))?))
    }

    /// Every pool price the hub holds, by cluster and pool.
    pub async fn pool_prices(&self) -> Result<Vec<PoolPrice>, StoreError> {
        let mut reader = self.reader().await?;
        type PriceRow = (ClusterId, String, i64, String, DateTime<Utc>);
        let rows: Vec<PriceRow> = on_conn!(reader.conn(), c => sqlx::query_as(
            "SELECT cluster_id, pool, micros_per_device_hour, currency, updated_at \
             FROM cluster_pool_prices ORDER BY cluster_id, pool",
        ).fetch_all(c).await)?;
        rows.into_iter()
            .map(|(cluster, pool, micros, currency, updated_at)| {
                Ok(PoolPrice {
                    cluster,
                    pool,
                    price_per_device_hour: Money::from_micros(micros, parse_currency(&currency)?),
                    updated_at,
                })
            })
            .collect()
    }
}
