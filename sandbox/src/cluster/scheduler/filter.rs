//! The scheduling decision for one pod: which nodes pass the filters the
//! default kube-scheduler profile runs (NodeUnschedulable, TaintToleration,
//! NodeAffinity, NodeResourcesFit, in that order, the first failing filter
//! naming the node's reason), which of those scores best, and, when none
//! passes, the message the real scheduler writes. Pure: no client here.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Taint, Toleration,
};

use crate::cluster::common::{name_of, node_is_ready, node_of};
use crate::cluster::resources::{self, Milli, Resources, pod_requests};
use modelfleet_core::contract::devices::DEVICE_RESOURCES;

/// What non-terminated pods bound to one node already request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeUsage {
    pub requested: Resources,
    pub pods: u32,
}

/// Node name → what is allocated on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage(pub BTreeMap<String, NodeUsage>);

impl Usage {
    /// Counts every pod bound to a node that has not finished. Pods being
    /// deleted still count: their containers hold the devices until the
    /// kubelet has stopped them.
    pub fn from_pods<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Usage {
        let mut usage = Usage::default();
        for pod in pods {
            if let (Some(node), Some(spec)) = (node_of(pod), &pod.spec)
                && !crate::cluster::common::is_terminal(pod)
            {
                usage.add(node, spec);
            }
        }
        usage
    }

    /// Records `spec` as running on `node` (also used to "assume" a binding
    /// before the watch shows it, as the real scheduler's cache does).
    pub fn add(&mut self, node: &str, spec: &PodSpec) {
        let entry = self.0.entry(node.to_owned()).or_default();
        resources::add(&mut entry.requested, &pod_requests(spec));
        entry.pods += 1;
    }
}

/// Why a pod cannot be placed, worded as the scheduler's `FailedScheduling`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    pub message: String,
}

/// Why one node refuses the pod. Borrowed and unformatted: a pass checks
/// every pending pod against every node, and the words are only needed
/// when no node fits.
enum Refusal<'a> {
    Cordoned,
    Taint(&'a Taint),
    NotReady,
    Affinity,
    Fit {
        too_many_pods: bool,
        insufficient: Vec<&'a str>,
    },
}

impl Refusal<'_> {
    fn reasons(&self) -> Vec<String> {
        match self {
            Refusal::Cordoned => vec!["node(s) were unschedulable".to_owned()],
            Refusal::Taint(taint) => vec![format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or("")
            )],
            Refusal::NotReady => vec!["node(s) were not ready".to_owned()],
            Refusal::Affinity => {
                vec!["node(s) didn't match Pod's node affinity/selector".to_owned()]
            }
            Refusal::Fit {
                too_many_pods,
                insufficient,
            } => too_many_pods
                .then(|| "Too many pods".to_owned())
                .into_iter()
                .chain(insufficient.iter().map(|r| format!("Insufficient {r}")))
                .collect(),
        }
    }

    /// Whether evicting lower-priority pods could change the verdict: only
    /// for a lack of resources.
    fn preemption_could_help(&self) -> bool {
        matches!(self, Refusal::Fit { .. })
    }
}

/// How feasible nodes are ranked: kube-scheduler's `NodeResourcesFit`
/// scoring strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scoring {
    /// The default profile: the node with the most CPU and memory left
    /// free wins, which spreads pods.
    #[default]
    LeastAllocated,
    /// The profile GPU platforms configure (`MostAllocated`, device
    /// resources weighted 10 to CPU's and memory's 1): the fullest node
    /// that fits wins, so replicas pack onto partly used nodes and whole
    /// nodes stay free for multi-device and multi-node replicas.
    BinPackDevices,
}

/// The nodes a pass schedules onto, with their allocatable resources read
/// once rather than for every pod, and how they are ranked.
#[derive(Debug)]
pub struct Candidates<'a>(Vec<(&'a Node, Resources)>, Scoring);

impl<'a> Candidates<'a> {
    /// Ranked as the default profile ranks them.
    pub fn new<N: Borrow<Node>>(nodes: &'a [N]) -> Self {
        Candidates(
            nodes
                .iter()
                .map(|n| {
                    let node: &Node = n.borrow();
                    let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
                    (node, resources::from_list(allocatable))
                })
                .collect(),
            Scoring::default(),
        )
    }

    pub fn scoring(mut self, scoring: Scoring) -> Self {
        self.1 = scoring;
        self
    }
}

/// Picks a node for `pod` among `nodes`, given what is already allocated.
pub fn schedule(pod: &Pod, nodes: &Candidates, usage: &Usage) -> Result<String, Unschedulable> {
    let scoring = nodes.1;
    let nodes = &nodes.0;
    let Some(spec) = &pod.spec else {
        return Err(Unschedulable {
            message: "pod has no spec".to_owned(),
        });
    };
    if nodes.is_empty() {
        return Err(Unschedulable {
            message: "no nodes available to schedule pods".to_owned(),
        });
    }
    let requests = pod_requests(spec);
    let empty = NodeUsage::default();
    let mut refusals = Vec::new();
    let mut best: Option<(i128, &str)> = None;
    for (node, allocatable) in nodes {
        let used = usage.0.get(name_of(*node)).unwrap_or(&empty);
        match filter(spec, &requests, node, allocatable, used) {
            Ok(()) => {
                let score = match scoring {
                    Scoring::LeastAllocated => least_allocated_score(&requests, allocatable, used),
                    Scoring::BinPackDevices => bin_pack_score(&requests, allocatable, used),
                };
                // Ties go to the first node by name, so runs are repeatable.
                if best.is_none_or(|(s, n)| score > s || (score == s && name_of(*node) < n)) {
                    best = Some((score, name_of(*node)));
                }
            }
            Err(refusal) => refusals.push(refusal),
        }
    }
    match best {
        Some((_, node)) => Ok(node.to_owned()),
        None => Err(Unschedulable {
            message: fit_error(nodes.len(), &refusals),
        }),
    }
}

fn filter<'a>(
    spec: &PodSpec,
    requests: &'a Resources,
    node: &'a Node,
    allocatable: &Resources,
    used: &NodeUsage,
) -> Result<(), Refusal<'a>> {
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let node_spec = node.spec.as_ref();
    if node_spec.and_then(|s| s.unschedulable) == Some(true) {
        let cordon = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !tolerations.iter().any(|t| tolerates(t, &cordon)) {
            return Err(Refusal::Cordoned);
        }
    }
    let taints = node_spec
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    if let Some(taint) = taints.iter().find(|taint| {
        matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !tolerations.iter().any(|t| tolerates(t, taint))
    }) {
        return Err(Refusal::Taint(taint));
    }
    // The node lifecycle controller taints NotReady nodes, so the taint
    // check above normally catches them; this covers a node whose Ready
    // condition was changed without the taint.
    if !node_is_ready(node) {
        return Err(Refusal::NotReady);
    }
    if !matches_node_selector_and_affinity(spec, node) {
        return Err(Refusal::Affinity);
    }
    let max_pods = allocatable.get("pods").copied().unwrap_or(110_000);
    let too_many_pods = Milli::from(used.pods + 1) * 1000 > max_pods;
    let mut insufficient = Vec::new();
    // cpu, memory and ephemeral storage first, then extended resources, as
    // the real fit plugin lists them.
    let mut names: Vec<&String> = requests.keys().collect();
    names.sort_by_key(|n| match n.as_str() {
        "cpu" => 0,
        "memory" => 1,
        "ephemeral-storage" => 2,
        _ => 3,
    });
    for name in names {
        let want = requests[name];
        if want <= 0 {
            continue;
        }
        let have = allocatable.get(name).copied().unwrap_or(0);
        let taken = used.requested.get(name).copied().unwrap_or(0);
        if want > have - taken {
            insufficient.push(name.as_str());
        }
    }
    if too_many_pods || !insufficient.is_empty() {
        Err(Refusal::Fit {
            too_many_pods,
            insufficient,
        })
    } else {
        Ok(())
    }
}

/// The default profile's NodeResourcesFit score: the share of CPU and
/// memory left free after placing the pod, higher is better. It spreads
/// pods over nodes, as an unconfigured real scheduler does.
fn least_allocated_score(requests: &Resources, allocatable: &Resources, used: &NodeUsage) -> i128 {
    ["cpu", "memory"]
        .iter()
        .map(|r| {
            let have = allocatable.get(*r).copied().unwrap_or(0);
            if have <= 0 {
                return 0;
            }
            let after = used.requested.get(*r).copied().unwrap_or(0)
                + requests.get(*r).copied().unwrap_or(0);
            (have - after).max(0) * 100 / have
        })
        .sum()
}

/// `MostAllocated` over the devices (weight 10), CPU and memory (weight 1
/// each): the share of each allocated once the pod is placed, higher is
/// better.
fn bin_pack_score(requests: &Resources, allocatable: &Resources, used: &NodeUsage) -> i128 {
    let weighted = DEVICE_RESOURCES
        .iter()
        .map(|(name, _)| (*name, 10))
        .chain([("cpu", 1), ("memory", 1)]);
    let (mut total, mut weights) = (0, 0);
    for (name, weight) in weighted {
        let have = allocatable.get(name).copied().unwrap_or(0);
        if have <= 0 {
            continue;
        }
        let after = used.requested.get(name).copied().unwrap_or(0)
            + requests.get(name).copied().unwrap_or(0);
        total += weight * after.min(have) * 100 / have;
        weights += weight;
    }
    if weights == 0 { 0 } else { total / weights }
}

/// The real `Toleration.ToleratesTaint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// `nodeSelector` and required node affinity both hold.
pub fn matches_node_selector_and_affinity(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affinity_ok = required.is_none_or(|selector| {
        selector
            .node_selector_terms
            .iter()
            .any(|term| term_matches(term, labels, name_of(node)))
    });
    selector_ok && affinity_ok
}

/// A term's requirements are ANDed; a term with none matches no node.
fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    node_name: &str,
) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            // metadata.name is the only field the API server accepts here.
            r.key == "metadata.name" && requirement_matches(r, Some(node_name))
        })
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    let compare = |ordering: std::cmp::Ordering| match (value.and_then(number), values) {
        (Some(have), [want]) => number(want).is_some_and(|want| have.cmp(&want) == ordering),
        _ => false,
    };
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|w| w == v)),
        "NotIn" => value.is_none_or(|v| values.iter().all(|w| w != v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => compare(std::cmp::Ordering::Greater),
        "Lt" => compare(std::cmp::Ordering::Less),
        _ => false,
    }
}

/// `FitError.Error()` followed by the default preemption plugin's message:
/// reasons counted over nodes, each list sorted as Go's `sort.Strings`.
fn fit_error(total: usize, refusals: &[Refusal]) -> String {
    let histogram = |reasons: &mut dyn Iterator<Item = String>| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for reason in reasons {
            *counts.entry(reason).or_default() += 1;
        }
        let mut lines: Vec<String> = counts
            .into_iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        lines.sort();
        lines.join(", ")
    };
    let filters = histogram(&mut refusals.iter().flat_map(Refusal::reasons));
    let preemption = histogram(&mut refusals.iter().map(|r| {
        if r.preemption_could_help() {
            // Every pod here has the default priority, so there is never a
            // lower-priority pod to evict.
            "No preemption victims found for incoming pod".to_owned()
        } else {
            "Preemption is not helpful for scheduling".to_owned()
        }
    }));
    format!(
        "0/{total} nodes are available: {filters}. preemption: 0/{total} nodes are available: {preemption}."
    )
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
