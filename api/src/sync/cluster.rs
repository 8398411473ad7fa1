//! One cluster's sync: watch its ModelDeployments and their pods, and after
//! every change (and every [`RESYNC`] at the latest) bring the database in
//! line with what the cluster says. Each pass is level-triggered — it
//! compares the whole picture, not the event — so a missed event, a hub
//! restart or a second hub replica all converge to the same rows.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{self, Store as Cache};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use modelfleet_core::accelerator::Accelerator;
use modelfleet_core::billing::Capacity;
use modelfleet_core::contract::admission::AdmissionKey;
use modelfleet_core::contract::labels::DEPLOYMENT_LABEL;
use modelfleet_core::contract::namespace::tenant_of_namespace;
use modelfleet_core::crd::ModelDeployment;
use tokio::sync::{Notify, watch};
use tracing::{debug, warn};

use super::{Reach, SyncError, actor, admit, missing, observe};
use crate::clusters::DEPLOYMENT_ID_LABEL;
use crate::ids::DeploymentId;
use crate::service::Hub;
use crate::store::{Deployment, NewInterval, PoolLocation, Source, now};

/// A pass runs at least this often, to pick up changes made in the
/// database (a deployment released while its cluster was unreachable).
pub const RESYNC: Duration = Duration::from_secs(5);

/// How long a deployment the hub placed may be missing from its cluster's
/// complete listing before the hub takes it as gone: longer than any watch
/// lags behind a ModelDeployment the hub has just applied.
pub const MISSING_FOR: Duration = Duration::from_secs(15);

/// Watches `cluster` until `stop` fires, or until the cluster stops
/// answering: then the task ends, and [`super::run`] starts it again with
/// caches that must list the cluster afresh before any pass compares it
/// with the database (what they held may be long out of date by then).
pub(super) async fn run(
    state: Hub,
    cluster: String,
    client: Client,
    reach: Reach,
    mut stop: watch::Receiver<bool>,
) {
    let changed = Arc::new(Notify::new());
    let (mds, md_writer) = reflector::store::<ModelDeployment>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let md_stream = watcher(
        Api::<ModelDeployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(md_writer);
    let pod_stream = watcher(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().labels(DEPLOYMENT_LABEL),
    )
    .default_backoff()
    .reflect(pod_writer);
    let watches = {
        let (a, b) = (changed.clone(), changed.clone());
        let cluster = cluster.clone();
        let mds = md_stream.for_each(move |event| {
            if let Err(e) = &event {
                debug!(%cluster, error = %e, "ModelDeployment watch interrupted; retrying");
            }
            a.notify_one();
            async {}
        });
        let pods = pod_stream.for_each(move |_| {
            b.notify_one();
            async {}
        });
        futures::future::join(mds, pods)
    };
    let work = async {
        // Only a complete picture may close intervals or release rows.
        if mds.wait_until_ready().await.is_err() || pods.wait_until_ready().await.is_err() {
            return;
        }
        let mut missing = BTreeMap::new();
        let probe = Api::<ModelDeployment>::all(client.clone());
        loop {
            // The caches keep what they last saw while the cluster does
            // not answer: a pass only runs on one that just answered.
            let looked_at = now();
            if let Err(e) = probe.list_metadata(&ListParams::default().limit(1)).await {
                warn!(%cluster, error = %e, "the cluster does not answer; cluster sync waits for it");
                reach.failed(&cluster);
                return;
            }
            reach.answered(&cluster);
            match pass(&state, &cluster, &mds, &pods, &mut missing).await {
                Ok(()) => {
                    if let Err(e) = seen(&state, &cluster, looked_at).await {
                        warn!(%cluster, error = %e, "cannot record that the cluster was seen");
                    }
                }
                Err(e) => warn!(%cluster, error = %e, "cluster sync pass failed; retrying"),
            }
            tokio::select! {
                () = changed.notified() => {}
                () = tokio::time::sleep(RESYNC) => {}
            }
        }
    };
    tokio::select! {
        _ = watches => {}
        () = work => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// Records a complete look at `cluster`, begun at `at`; a cluster that
/// was lost is back (recorded in the audit trail).
async fn seen(state: &Hub, cluster: &str, at: DateTime<Utc>) -> Result<(), SyncError> {
    let mut tx = state.store().begin(&actor()).await?;
    let was_lost = match tx.cluster_seen(cluster, at).await {
        Ok(was_lost) => was_lost,
        // Connected but not (or no longer) registered: nothing to record.
        Err(crate::StoreError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    tx.commit().await?;
    if let Some((_, since)) = was_lost {
        warn!(%cluster, lost_since = %since, "the lost cluster answers again");
    }
    Ok(())
}

/// One comparison of the cluster with the database. `missing` carries,
/// from pass to pass, since when each deployment the hub placed here has
/// been missing from the cluster.
///
/// The rows it compares are read once per pass (the cluster's live rows,
/// and in a second query only when some object names a row that is not
/// live here), not once per object: a cluster of thousands of
/// ModelDeployments that changed nothing costs a few queries. Per object
/// the database is written only when something changed.
pub(super) async fn pass(
    state: &Hub,
    cluster: &str,
    mds: &Cache<ModelDeployment>,
    pods: &Cache<Pod>,
    missing: &mut BTreeMap<DeploymentId, Instant>,
) -> Result<(), SyncError> {
    // A row admitted after this picture was taken (by another hub
    // replica) may have its object missing from it: such rows are left to
    // the next pass.
    let taken_at = now();
    let mds = mds.state();
    let pods = pods.state();
    // Read after the picture was taken, so that every object in it finds
    // its row: the hub admits a row before it applies its object.
    let live = state.store().cluster_deployments(cluster).await?;
    let elsewhere = state
        .store()
        .deployments_by_id(&not_live(&mds, &live))
        .await?;
    let known = Known {
        rows: live.iter().chain(&elsewhere).map(|r| (r.id, r)).collect(),
        key: state.registry().admission_key(cluster).ok(),
    };

    // ModelDeployments → rows (and rows' status).
    let mut owners: BTreeMap<(String, String), Deployment> = BTreeMap::new();
    let mut present: BTreeSet<String> = BTreeSet::new();
    // A ModelDeployment that could not be synced may be one the hub
    // placed: then no row is taken as missing this pass.
    let mut uncertain = false;
    for md in &mds {
        let (Some(namespace), Some(uid)) = (md.namespace(), md.metadata.uid.clone()) else {
            continue;
        };
        let name = md.name_any();
        match one(state, cluster, &known, md, &namespace, &name, &uid).await {
            Ok(Some((row, counts))) => {
                if counts {
                    present.insert(uid);
                }
                owners.insert((namespace, name), row);
            }
            Ok(None) => {}
            Err(e) => {
                // Unknown: keep its quota, whatever it is.
                present.insert(uid);
                uncertain = true;
                warn!(%cluster, %namespace, %name, error = %e, "cannot sync a ModelDeployment");
            }
        }
    }

    // Rows whose kubectl-applied ModelDeployment is gone (or going): their
    // quota is free again.
    for row in live
        .iter()
        .filter(|r| r.source == Source::Cluster && r.created_at < taken_at)
    {
        let Some(uid) = &row.resource_uid else {
            continue;
        };
        if !present.contains(uid) {
            let mut tx = state.store().begin(&actor()).await?;
            tx.release_deployment(row.id).await?;
            tx.commit().await?;
            debug!(%cluster, deployment = %row.id, "kubectl-applied ModelDeployment deleted; quota released");
        }
    }

    // Rows the hub placed whose ModelDeployment is not in the cluster: it
    // was deleted there (kubectl), or the cluster lost it (rebuilt,
    // restored from an old backup, a sandbox restarted empty). The hub's
    // record is the desired state: once missing for `MISSING_FOR`, what
    // the hub applied is applied again (sealed anew, at the row's replica
    // count), recorded as the system. A row with no applied object kept
    // (placed before the hub kept them) is deleted and its quota
    // released instead. Either way it is never shown as running with
    // nothing behind it.
    let placed: BTreeSet<DeploymentId> = owners.values().map(|r| r.id).collect();
    missing.retain(|id, _| live.iter().any(|r| r.id == *id) && !placed.contains(id));
    for row in live.iter().filter(|r| {
        !uncertain && r.source == Source::Api && r.created_at < taken_at && !placed.contains(&r.id)
    }) {
        let since = *missing.entry(row.id).or_insert_with(Instant::now);
        if since.elapsed() < MISSING_FOR {
            continue;
        }
        missing.remove(&row.id);
        match state.store().applied_object(row.id).await? {
            Some(object) => missing::reapply(state, cluster, row, &object).await?,
            None => missing::release(state, cluster, row).await?,
        }
    }

    intervals(state, cluster, &pods, &owners).await
}

/// What a pass reads once and each of its objects looks up.
struct Known<'a> {
    /// Every row the pass's objects name by their id label.
    rows: HashMap<DeploymentId, &'a Deployment>,
    /// The cluster's admission key (an HMAC to derive); `None` when the
    /// hub has none, and then each object that needs it fails as it did
    /// when it asked on its own.
    key: Option<AdmissionKey>,
}

/// The ids the ModelDeployments of a pass carry in their id label that
/// are not among `live`: rows released, or moved to another cluster, whose
/// objects are still here (or ids with no row at all).
fn not_live(mds: &[Arc<ModelDeployment>], live: &[Deployment]) -> Vec<DeploymentId> {
    let live: HashSet<DeploymentId> = live.iter().map(|r| r.id).collect();
    let named: BTreeSet<DeploymentId> = mds
        .iter()
        .filter_map(|md| labelled_id(md))
        .filter(|id| !live.contains(id))
        .collect();
    named.into_iter().collect()
}

/// The deployment id the hub wrote on a ModelDeployment, if it carries a
/// well-formed one (anyone can copy or write the label: [`ours`] checks it
/// against the row).
fn labelled_id(md: &ModelDeployment) -> Option<DeploymentId> {
    md.labels()
        .get(DEPLOYMENT_ID_LABEL)
        .and_then(|v| v.parse::<DeploymentId>().ok())
}

/// Syncs one ModelDeployment: its row, and whether the row still counts
/// (the object exists and is not being deleted).
async fn one(
    state: &Hub,
    cluster: &str,
    known: &Known<'_>,
    md: &ModelDeployment,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<Option<(Deployment, bool)>, SyncError> {
    let alive = md.metadata.deletion_timestamp.is_none();
    match ours(&known.rows, cluster, md, namespace, name, uid) {
        Ours::Tracked(row) => {
            // Its namespace keeps what a tenant namespace has (a cluster
            // set up before tenant namespaces had it gets it here).
            if alive && let Some(tenant) = tenant_of_namespace(namespace) {
                state
                    .registry()
                    .prepare_namespace(cluster, namespace, tenant)
                    .await?;
            }
            // A spec changed since its admission is decided on first.
            let row = if alive {
                super::readmit::check(state, cluster, known.key.as_ref(), md, row).await?
            } else {
                row
            };
            Ok(Some((record_status(state, row, md).await?, alive)))
        }
        Ours::Stale(row) => {
            // Released, or moved elsewhere by failover: it goes.
            if alive {
                state
                    .registry()
                    .delete_deployment(cluster, namespace, name)
                    .await?;
            }
            Ok(Some((row, false)))
        }
        Ours::No => Ok(admit::found(state, cluster, md, namespace, name, uid)
            .await?
            .map(|row| (row, alive))),
    }
}

enum Ours {
    /// The hub's own (or admitted) deployment, placed here.
    Tracked(Deployment),
    /// The hub's, but released or placed elsewhere now.
    Stale(Deployment),
    /// Not (yet) the hub's.
    No,
}

/// Which row a ModelDeployment is, by the id label the hub wrote, checked
/// against the row so that a copied label claims nothing. `rows` holds
/// every row the pass's objects name, read at the start of the pass: a
/// lookup here, not a query per object.
fn ours(
    rows: &HashMap<DeploymentId, &Deployment>,
    cluster: &str,
    md: &ModelDeployment,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Ours {
    let Some(&row) = labelled_id(md).and_then(|id| rows.get(&id)) else {
        return Ours::No;
    };
    if row.namespace != namespace || row.name != name {
        return Ours::No;
    }
    let here = row.cluster == cluster
        && row.deleted_at.is_none()
        && row.resource_uid.as_deref().is_none_or(|u| u == uid);
    if here {
        Ours::Tracked(row.clone())
    } else if row.deleted_at.is_some() || row.cluster != cluster {
        Ours::Stale(row.clone())
    } else {
        // Placed here but recorded with another object's uid: the hub's
        // object was replaced by someone else's.
        Ours::No
    }
}

async fn record_status(
    state: &Hub,
    row: Deployment,
    md: &ModelDeployment,
) -> Result<Deployment, SyncError> {
    let seen = observe::status_of(md);
    if !observe::differs(&row, &seen) {
        return Ok(row);
    }
    let mut tx = state.store().begin(&actor()).await?;
    let recorded = tx.record_synced_status(row.id, row.revision, &seen).await?;
    tx.commit().await?;
    Ok(recorded.unwrap_or(row))
}

/// Opens an interval for every pod that holds devices and has none, and
/// closes every open interval whose pod no longer holds them.
async fn intervals(
    state: &Hub,
    cluster: &str,
    pods: &[Arc<Pod>],
    owners: &BTreeMap<(String, String), Deployment>,
) -> Result<(), SyncError> {
    let open = state.store().open_intervals(cluster).await?;
    let open_uids: BTreeSet<&str> = open.iter().map(|i| i.pod_uid.as_str()).collect();
    let mut holding = BTreeSet::new();
    let mut new = Vec::new();
    let mut pools = None;
    for pod in pods.iter().filter(|p| observe::holds_devices(p)) {
        let (Some(namespace), Some(uid)) = (pod.namespace(), pod.metadata.uid.clone()) else {
            continue;
        };
        holding.insert(uid.clone());
        if open_uids.contains(uid.as_str()) {
            continue;
        }
        let Some(owner) = pod
            .labels()
            .get(DEPLOYMENT_LABEL)
            .and_then(|md| owners.get(&(namespace.clone(), md.clone())))
        else {
            continue;
        };
        let accelerator = Accelerator::find(&owner.accelerator);
        if pools.is_none() {
            pools = Some(pool_locations(state, cluster).await);
        }
        new.push(NewInterval {
            deployment: owner.id,
            tenant: owner.tenant,
            cluster: cluster.to_owned(),
            namespace,
            pod_name: pod.name_any(),
            pod_uid: uid,
            node: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
            pool: owner.pool.clone(),
            accelerator: owner.accelerator.clone(),
            devices: accelerator.map_or(0, |a| observe::devices_of(pod, a)),
            allocated_at: observe::bound_at(pod).unwrap_or_else(now),
            location: pools
                .as_ref()
                .and_then(|p| p.get(owner.pool.as_str()))
                .cloned(),
        });
    }
    let ended: Vec<&str> = open
        .iter()
        .map(|i| i.pod_uid.as_str())
        .filter(|uid| !holding.contains(*uid))
        .collect();
    if new.is_empty() && ended.is_empty() {
        return Ok(());
    }
    let at = now();
    let mut tx = state.store().begin(&actor()).await?;
    for interval in &new {
        tx.open_interval(interval).await?;
    }
    for uid in ended {
        tx.close_interval(cluster, uid, at).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Where each pool of `cluster` is and how it is bought, from the pools
/// the hub last listed (listed again if older than the placement maximum).
/// Empty when they cannot be listed: the interval is still recorded, and
/// billing falls back to the cluster's registered cloud and region.
async fn pool_locations(state: &Hub, cluster: &str) -> BTreeMap<String, PoolLocation> {
    match state
        .registry()
        .discover(cluster, state.pool_max_age())
        .await
    {
        Ok(discovered) => discovered
            .pools
            .into_iter()
            .map(|p| {
                let location = PoolLocation {
                    cloud: p.cloud,
                    region: p.region,
                    capacity: Capacity::from(p.capacity_type),
                };
                (p.name, location)
            })
            .collect(),
        Err(e) => {
            warn!(cluster, error = %e, "pools unknown; intervals recorded without their price key");
            BTreeMap::new()
        }
    }
}
