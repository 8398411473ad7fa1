//! Which resources the server knows: the built-in kinds modelfleet and
//! kubectl use, and one entry per established CustomResourceDefinition.
//! Discovery, routing, validation and printing all read from here.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

mod crd;
pub use crd::from_crd;

/// A resource independent of version: `apps` + `deployments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_owned(),
            resource: resource.to_owned(),
        }
    }
}

/// A column of server-side printing.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    /// A simple JSONPath such as `.status.phase`.
    pub json_path: String,
}

/// Where the `/scale` subresource finds its numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleSpec {
    pub spec_replicas_path: String,
    pub status_replicas_path: String,
    pub label_selector_path: Option<String>,
}

/// One served version of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    pub name: String,
    pub status: bool,
    pub scale: Option<ScaleSpec>,
    /// The CRD's `openAPIV3Schema`; built-in kinds have none.
    pub schema: Option<Value>,
    pub columns: Vec<PrinterColumn>,
}

/// How stored objects differ from what a version shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// Only `apiVersion` differs.
    None,
    /// `events.k8s.io/v1` events are stored as core `v1` events.
    EventsV1,
}

/// A resource the server serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Served versions, preferred first.
    pub versions: Vec<VersionInfo>,
    pub storage_version: String,
    /// Where the objects live; differs from `gr()` only for views such as
    /// `events.k8s.io` events.
    pub storage: GroupResource,
    pub conversion: Conversion,
    /// The CRD that defines this resource, if any.
    pub crd: Option<String>,
    /// `pods/binding`.
    pub binding: bool,
    /// Field selector labels beyond `metadata.name` and `metadata.namespace`.
    pub field_labels: Vec<String>,
    /// A review (`selfsubjectaccessreviews`, …): create-only, answered
    /// from the request and never stored.
    pub review: bool,
}

impl ResourceType {
    pub fn gr(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.plural)
    }

    pub fn version(&self, name: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.name == name)
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// Whether writes to the main resource leave `.status` alone.
    pub fn has_status(&self, version: &str) -> bool {
        self.version(version).is_some_and(|v| v.status)
    }
}

#[derive(Debug, Clone, Copy)]
struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
    scale: bool,
    review: bool,
    fields: &'static [&'static str],
}

const fn builtin(group: &'static str, plural: &'static str, kind: &'static str) -> Builtin {
    Builtin {
        group,
        version: "v1",
        plural,
        kind,
        namespaced: true,
        short: &[],
        categories: &[],
        status: false,
        scale: false,
        review: false,
        fields: &[],
    }
}

const fn review(group: &'static str, plural: &'static str, kind: &'static str) -> Builtin {
    Builtin {
        namespaced: false,
        review: true,
        ..builtin(group, plural, kind)
    }
}

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

const BUILTINS: &[Builtin] = &[
    Builtin {
        namespaced: false,
        short: &["ns"],
        status: true,
        fields: &["status.phase"],
        ..builtin("", "namespaces", "Namespace")
    },
    Builtin {
        namespaced: false,
        short: &["no"],
        status: true,
        fields: &["spec.unschedulable"],
        ..builtin("", "nodes", "Node")
    },
    Builtin {
        short: &["po"],
        categories: &["all"],
        status: true,
        fields: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ..builtin("", "pods", "Pod")
    },
    Builtin {
        short: &["svc"],
        categories: &["all"],
        status: true,
        ..builtin("", "services", "Service")
    },
    Builtin {
        short: &["ev"],
        fields: EVENT_FIELDS,
        ..builtin("", "events", "Event")
    },
    Builtin {
        short: &["cm"],
        ..builtin("", "configmaps", "ConfigMap")
    },
    Builtin {
        fields: &["type"],
        ..builtin("", "secrets", "Secret")
    },
    Builtin {
        short: &["sa"],
        ..builtin("", "serviceaccounts", "ServiceAccount")
    },
    Builtin {
        namespaced: false,
        short: &["pv"],
        status: true,
        ..builtin("", "persistentvolumes", "PersistentVolume")
    },
    Builtin {
        short: &["pvc"],
        status: true,
        ..builtin("", "persistentvolumeclaims", "PersistentVolumeClaim")
    },
    Builtin {
        short: &["deploy"],
        categories: &["all"],
        status: true,
        scale: true,
        ..builtin("apps", "deployments", "Deployment")
    },
    Builtin {
        short: &["ev"],
        fields: &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        ..builtin("events.k8s.io", "events", "Event")
    },
    builtin("coordination.k8s.io", "leases", "Lease"),
    Builtin {
        short: &["pdb"],
        status: true,
        ..builtin("policy", "poddisruptionbudgets", "PodDisruptionBudget")
    },
    Builtin {
        namespaced: false,
        short: &["crd", "crds"],
        categories: &["api-extensions"],
        status: true,
        ..builtin(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
        )
    },
    builtin("rbac.authorization.k8s.io", "roles", "Role"),
    builtin("rbac.authorization.k8s.io", "rolebindings", "RoleBinding"),
    Builtin {
        namespaced: false,
        ..builtin("rbac.authorization.k8s.io", "clusterroles", "ClusterRole")
    },
    Builtin {
        namespaced: false,
        ..builtin(
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            "ClusterRoleBinding",
        )
    },
    Builtin {
        short: &["netpol"],
        ..builtin("networking.k8s.io", "networkpolicies", "NetworkPolicy")
    },
    Builtin {
        short: &["ing"],
        status: true,
        ..builtin("networking.k8s.io", "ingresses", "Ingress")
    },
    Builtin {
        namespaced: false,
        ..builtin("networking.k8s.io", "ingressclasses", "IngressClass")
    },
    // Stored and served as the real server does; the sandbox does not
    // evaluate their CEL at admission.
    Builtin {
        namespaced: false,
        categories: &["api-extensions"],
        status: true,
        ..builtin(
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies",
            "ValidatingAdmissionPolicy",
        )
    },
    Builtin {
        namespaced: false,
        categories: &["api-extensions"],
        ..builtin(
            "admissionregistration.k8s.io",
            "validatingadmissionpolicybindings",
            "ValidatingAdmissionPolicyBinding",
        )
    },
    review(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
    ),
    review(
        "authorization.k8s.io",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
    ),
    review(
        "authorization.k8s.io",
        "subjectaccessreviews",
        "SubjectAccessReview",
    ),
    review(
        "authentication.k8s.io",
        "selfsubjectreviews",
        "SelfSubjectReview",
    ),
];

fn from_builtin(b: &Builtin) -> ResourceType {
    let (storage, conversion) = if b.group == "events.k8s.io" {
        (GroupResource::new("", "events"), Conversion::EventsV1)
    } else {
        (GroupResource::new(b.group, b.plural), Conversion::None)
    };
    ResourceType {
        group: b.group.to_owned(),
        plural: b.plural.to_owned(),
        singular: b.kind.to_lowercase(),
        kind: b.kind.to_owned(),
        list_kind: format!("{}List", b.kind),
        namespaced: b.namespaced,
        short_names: b.short.iter().map(|s| (*s).to_owned()).collect(),
        categories: b.categories.iter().map(|s| (*s).to_owned()).collect(),
        versions: vec![VersionInfo {
            name: b.version.to_owned(),
            status: b.status,
            scale: b.scale.then(|| ScaleSpec {
                spec_replicas_path: ".spec.replicas".into(),
                status_replicas_path: ".status.replicas".into(),
                label_selector_path: Some(".spec.selector".into()),
            }),
            schema: None,
            columns: Vec::new(),
        }],
        storage_version: b.version.to_owned(),
        storage,
        conversion,
        crd: None,
        binding: b.plural == "pods",
        field_labels: b.fields.iter().map(|s| (*s).to_owned()).collect(),
        review: b.review,
    }
}

/// The groups built in, in the order discovery lists them.
pub const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "coordination.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
];

/// All resources currently served.
#[derive(Debug, Clone)]
pub struct Registry {
    types: BTreeMap<GroupResource, Arc<ResourceType>>,
}

impl Default for Registry {
    fn default() -> Self {
        let types = BUILTINS
            .iter()
            .map(|b| {
                let ty = from_builtin(b);
                (ty.gr(), Arc::new(ty))
            })
            .collect();
        Registry { types }
    }
}

impl Registry {
    pub fn get(&self, gr: &GroupResource) -> Option<Arc<ResourceType>> {
        self.types.get(gr).cloned()
    }

    /// The type served at `/apis/{group}/{version}/{plural}`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .get(&GroupResource::new(group, plural))
            .filter(|ty| ty.version(version).is_some())
            .cloned()
    }

    /// Groups in discovery order: built-in ones first, then CRD groups by name.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = BUILTIN_GROUPS.iter().map(|g| (*g).to_owned()).collect();
        let mut custom: Vec<String> = self
            .types
            .values()
            .filter(|ty| ty.crd.is_some() && !BUILTIN_GROUPS.contains(&ty.group.as_str()))
            .map(|ty| ty.group.clone())
            .collect();
        custom.sort();
        custom.dedup();
        groups.extend(custom);
        groups
    }

    /// A group's versions, preferred first.
    pub fn group_versions(&self, group: &str) -> Vec<String> {
        let mut versions: Vec<String> = self
            .types
            .values()
            .filter(|ty| ty.group == group)
            .flat_map(|ty| ty.versions.iter().map(|v| v.name.clone()))
            .collect();
        versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        versions.dedup();
        versions
    }

    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ResourceType>> + 'a {
        self.types
            .values()
            .filter(move |ty| ty.group == group && ty.version(version).is_some())
    }

    /// Registers (or replaces) the resource a CRD defines.
    pub fn install(&mut self, ty: ResourceType) {
        self.types.insert(ty.gr(), Arc::new(ty));
    }

    pub fn remove(&mut self, gr: &GroupResource) {
        if self.types.get(gr).is_some_and(|ty| ty.crd.is_some()) {
            self.types.remove(gr);
        }
    }
}

/// Kubernetes' version ordering: GA above beta above alpha above anything
/// else, higher numbers first within each.
pub fn version_priority(version: &str) -> (u8, u64, u64) {
    let Some(rest) = version.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u64>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    for (prefix, rank) in [("beta", 2), ("alpha", 1)] {
        if let Some(n) = tail.strip_prefix(prefix)
            && let Ok(minor) = n.parse::<u64>()
        {
            return (rank, major, minor);
        }
    }
    (0, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v1beta2", "v2", "v1", "foo", "v1beta1"];
        v.sort_by_key(|x| std::cmp::Reverse(version_priority(x)));
        assert_eq!(v, ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }
}
