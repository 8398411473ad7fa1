//! The hub: tenants and their users and API keys, quotas and admission,
//! secrets at rest, and the store they live in. The REST API, placement
//! across clusters and cluster sync are built on these.
//!
//! `store/` is the only place in modelfleet that runs SQL; this crate never
//! renders HTML.

pub mod identity;
pub mod ids;
pub mod secret;
pub mod store;

pub use identity::{Actor, Origin, Principal, Role, Scope};
pub use secret::{Keyring, Sealed, Secret, SecretKey};
pub use store::{Store, StoreError, Tx};
