//! The resources of `/api/v1`, one module per URL segment.

pub mod api_keys;
pub mod audit;
pub mod billing;
pub mod clusters;
pub mod compliance;
pub mod deployments;
pub mod plans;
pub mod prices;
pub mod quota;
pub mod sessions;
pub mod tenant_billing;
pub mod tenants;
pub mod users;
