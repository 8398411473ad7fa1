//! The hub: tenants and their users and API keys, quotas and admission,
//! secrets at rest, and the store they live in; the clusters it places
//! models on ([`clusters`]), placement ([`placement`]) and the REST API
//! ([`http`]) that `modelfleet serve` and `modelfleet api` mount with
//! [`router`], and the background loops they run next to it: cluster sync
//! ([`sync::run`]) and failover ([`failover::run`]).
//!
//! `store/` is the only place in modelfleet that runs SQL; this crate never
//! renders HTML.

pub mod audit;
pub mod billing;
pub mod bootstrap;
pub mod clusters;
pub mod compliance;
pub mod config;
pub mod failover;
pub mod gateway;
pub mod http;
pub mod identity;
pub mod ids;
pub mod local_files;
pub mod net;
pub mod placement;
pub mod secret;
pub mod service;
pub mod store;
pub mod sync;

pub use clusters::ClusterRegistry;
pub use config::{ApiSettings, SecondFactorRoles};
pub use http::{
    AUDIT_ID_HEADER, AppState, ReportRenderer, openapi, openapi_parts, router, router_with_console,
};
pub use identity::{Actor, Origin, Principal, Role, Scope};
pub use secret::{Keyring, Sealed, Secret, SecretKey};
pub use service::Hub;
pub use store::{Store, StoreError, Tx};
