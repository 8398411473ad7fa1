//! The resources of `/api/v1`, one module per URL segment.
//!
//! The handlers are public because the console (`modelfleet-web`) calls
//! these same functions in-process, with the caller its session cookie
//! names: one implementation of every rule, audited the same way, whether a
//! change comes from the REST API or from a form.

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
