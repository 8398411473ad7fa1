//! The store's tests: each is an `async fn(TestDb)` run on SQLite and on
//! PostgreSQL (when `MODELFLEET_TEST_DATABASE_URL` is set) by
//! [`crate::store_tests!`].

mod admission;
mod audit;
mod billing;
mod identity;
mod prices;
mod race;
mod schema;
mod sync;
mod tenants;
mod token_prices;

use modelfleet_core::model::ParamCount;
use modelfleet_core::money::{Currency, Money};
use modelfleet_core::precision::Precision;
use modelfleet_core::quota::Quota;

use super::{DeploymentRequest, NewTenant, Source, Store, Tenant};
use crate::identity::{Actor, Origin, Principal, Role};
use crate::ids::{TenantId, UserId};

pub(super) fn platform() -> Actor {
    Actor::system("test")
}

/// A signed-in user of `tenant` with `role`.
pub(super) fn member(tenant: TenantId, role: Role) -> Actor {
    Actor {
        principal: Principal::User {
            id: UserId::new(),
            username: format!("{role}-of-{tenant}"),
        },
        tenant: Some(tenant),
        role,
        origin: Origin::default(),
    }
}

pub(super) async fn tenant(store: &Store, name: &str, quota: Quota) -> Tenant {
    let mut tx = store.begin(&platform()).await.unwrap();
    let tenant = tx
        .create_tenant(NewTenant {
            name: name.into(),
            display_name: format!("Tenant {name}"),
            quota,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    tenant
}

pub(super) fn usd(text: &str) -> Money {
    Money::parse_amount(text, Currency::Usd).unwrap()
}

impl DeploymentRequest {
    /// A 70B model on one H100 replica of `devices` devices, 3.00 USD per
    /// device-hour; change fields with struct update syntax.
    pub(super) fn test(name: &str, devices: u32) -> DeploymentRequest {
        DeploymentRequest {
            name: name.into(),
            model: "llama-3.1-70b".into(),
            model_params: ParamCount::billions(70),
            cluster: "aws-us-east-1".into(),
            namespace: "mf-tenant".into(),
            pool: "p5-h100".into(),
            accelerator: "h100-80gb".into(),
            devices_per_replica: devices,
            replicas: 1,
            precision: Precision::Bf16,
            replica_cost_per_hour: usd("3").checked_mul(u64::from(devices)).unwrap(),
            source: Source::Api,
            resource_uid: None,
        }
    }
}
