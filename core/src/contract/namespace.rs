//! Where a tenant's ModelDeployments live: namespace `mf-<tenant>` in
//! every cluster. The hub creates it when it places a deployment, and
//! admits what someone `kubectl apply`s there against that tenant's quota.

/// What every tenant namespace starts with.
pub const TENANT_NAMESPACE_PREFIX: &str = "mf-";

/// The namespace of tenant `tenant`'s deployments.
pub fn tenant_namespace(tenant: &str) -> String {
    format!("{TENANT_NAMESPACE_PREFIX}{tenant}")
}

/// The tenant whose namespace `namespace` is, if it is a tenant namespace.
pub fn tenant_of_namespace(namespace: &str) -> Option<&str> {
    namespace
        .strip_prefix(TENANT_NAMESPACE_PREFIX)
        .filter(|tenant| !tenant.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_namespace_names_its_tenant_and_back() {
        assert_eq!(tenant_namespace("acme"), "mf-acme");
        assert_eq!(tenant_of_namespace(&tenant_namespace("acme")), Some("acme"));
        assert_eq!(tenant_of_namespace("default"), None);
        assert_eq!(tenant_of_namespace("mf-"), None);
    }
}
