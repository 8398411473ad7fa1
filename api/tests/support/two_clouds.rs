//! Two sandbox clusters on two clouds, one L40S node each: a cheap one on
//! AWS, where placement puts a deployment first, and a dear one on Alibaba
//! Cloud for it to fail over to. And reading a deployment's row and
//! intervals back.

use modelfleet_api::ApiSettings;
use modelfleet_api::identity::Scope;
use modelfleet_api::ids::{DeploymentId, TenantId};
use modelfleet_api::store::testing::TestDb;
use modelfleet_api::store::{Deployment, ReplicaInterval};
use modelfleet_core::fleet::{Cloud, Fleet};

use super::{Hub, SandboxSpec};

pub const CHEAP: &str = "aws-a";
pub const DEAR: &str = "ali-b";

/// One pool of one 4-GPU L40S node, at `price` per device-hour.
pub fn pool(cluster: &str, cloud: &str, region: &str, price: &str) -> Fleet {
    Fleet::from_yaml(&format!(
        "pools:\n\
         - {{cloud: {cloud}, region: {region}, cluster: {cluster}, name: l40s, accelerator: l40s, \
            devicesPerNode: 4, nodesTotal: 1, nodesFree: 1, pricePerDeviceHour: \"{price}\"}}\n"
    ))
    .unwrap()
}

/// The cheap cluster, and the dear one when `with_other_cloud`.
pub async fn start(db: TestDb, with_other_cloud: bool, settings: ApiSettings) -> Hub {
    let mut specs = vec![SandboxSpec {
        name: CHEAP,
        cloud: Cloud::Aws,
        region: "us-east-1",
        fleet: pool(CHEAP, "aws", "us-east-1", "1.00 USD"),
        operator: Some(true),
    }];
    if with_other_cloud {
        specs.push(SandboxSpec {
            name: DEAR,
            cloud: Cloud::Aliyun,
            region: "cn-hangzhou",
            fleet: pool(DEAR, "aliyun", "cn-hangzhou", "3.00 USD"),
            operator: Some(true),
        });
    }
    Hub::start_clusters(db, specs, settings).await
}

pub async fn row(hub: &Hub, id: DeploymentId) -> Deployment {
    hub.store.deployment(Scope::All, id).await.unwrap()
}

pub async fn intervals(hub: &Hub, tenant: TenantId, id: DeploymentId) -> Vec<ReplicaInterval> {
    hub.store
        .deployment_intervals(Scope::All, tenant, id)
        .await
        .unwrap()
}
