//! The hub: the REST API, tenants and quotas, placement across clusters,
//! cluster sync, billing, audit and exports. `store/` will be the only place
//! that runs SQL; this crate never renders HTML.
//!
//! Nothing lives here yet: the hub is built by the issue "The hub: tenants,
//! quotas, multi-cloud placement and `modelfleet serve`". Until then the crate
//! exports nothing rather than handlers that pretend to work.
