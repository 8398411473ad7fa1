//! Test builders for the objects the simulated cluster reads, so tests say
//! what matters about a pod instead of spelling out its struct.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    Pod, PodCondition, PodSpec, PodStatus, Probe, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

#[derive(Debug, Clone)]
pub struct PodBuilder(pub Pod);

pub fn pod(name: &str) -> PodBuilder {
    PodBuilder(Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("default".to_owned()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".to_owned(),
                image: Some("vllm/vllm-openai:v0.9.1".to_owned()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    })
}

impl PodBuilder {
    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }

    /// Requests (and limits, as device requests must equal them) `amount`
    /// of `resource` on the first container.
    pub fn requests(mut self, resource: &str, amount: &str) -> Self {
        let resources = self.spec().containers[0]
            .resources
            .get_or_insert_with(ResourceRequirements::default);
        for list in [&mut resources.requests, &mut resources.limits] {
            list.get_or_insert_with(BTreeMap::new)
                .insert(resource.to_owned(), Quantity(amount.to_owned()));
        }
        self
    }

    pub fn tolerate(mut self, key: &str) -> Self {
        self.spec()
            .tolerations
            .get_or_insert_with(Vec::new)
            .push(Toleration {
                key: Some(key.to_owned()),
                operator: Some("Exists".to_owned()),
                effect: Some("NoSchedule".to_owned()),
                ..Default::default()
            });
        self
    }

    pub fn selector(mut self, key: &str, value: &str) -> Self {
        self.spec()
            .node_selector
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds a required node-affinity term with one expression.
    pub fn affinity(mut self, key: &str, operator: &str, values: &[&str]) -> Self {
        let required = self
            .spec()
            .affinity
            .get_or_insert_with(Affinity::default)
            .node_affinity
            .get_or_insert_with(NodeAffinity::default)
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(NodeSelector::default);
        required.node_selector_terms.push(NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: key.to_owned(),
                operator: operator.to_owned(),
                values: (!values.is_empty())
                    .then(|| values.iter().map(|v| (*v).to_owned()).collect()),
            }]),
            match_fields: None,
        });
        self
    }

    pub fn on(mut self, node: &str) -> Self {
        self.spec().node_name = Some(node.to_owned());
        self
    }

    pub fn init_container(mut self, name: &str) -> Self {
        self.spec()
            .init_containers
            .get_or_insert_with(Vec::new)
            .push(Container {
                name: name.to_owned(),
                image: Some("modelfleet:latest".to_owned()),
                ..Default::default()
            });
        self
    }

    pub fn readiness_probe(mut self) -> Self {
        self.spec().containers[0].readiness_probe = Some(Probe::default());
        self
    }

    pub fn restart_policy(mut self, policy: &str) -> Self {
        self.spec().restart_policy = Some(policy.to_owned());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn phase(mut self, phase: &str) -> Self {
        self.0.status.get_or_insert_with(PodStatus::default).phase = Some(phase.to_owned());
        self
    }

    /// Running with the Ready condition set to `ready`.
    pub fn ready(mut self, ready: bool) -> Self {
        let status = self.0.status.get_or_insert_with(PodStatus::default);
        status.phase = Some("Running".to_owned());
        status.conditions = Some(vec![PodCondition {
            type_: "Ready".to_owned(),
            status: if ready { "True" } else { "False" }.to_owned(),
            ..Default::default()
        }]);
        self
    }

    pub fn build(self) -> Pod {
        self.0
    }
}
