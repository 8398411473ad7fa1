//! Columns of the workload kinds: pods (`NAME READY STATUS RESTARTS AGE`),
//! nodes, deployments and services, as the real server's printers define
//! them. Wide columns (`-o wide`) have priority 1.

use serde_json::{Value, json};

use super::super::registry::PrinterColumn;
use super::builtin::{Cells, created, int, list, name, or_none, s};
use super::{age_column, column, name_column};

fn pod_status(pod: &Value) -> String {
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    let mut reason = match s(pod, "/status/reason") {
        "" => s(pod, "/status/phase").to_owned(),
        r => r.to_owned(),
    };
    let init = list(pod, "/status/initContainerStatuses");
    let total_init = list(pod, "/spec/initContainers").len();
    for (i, c) in init.iter().enumerate() {
        let waiting = s(c, "/state/waiting/reason");
        let terminated_ok = c
            .pointer("/state/terminated/exitCode")
            .and_then(Value::as_i64)
            == Some(0);
        if terminated_ok {
            continue;
        }
        if !waiting.is_empty() && waiting != "PodInitializing" {
            return format!("Init:{waiting}");
        }
        return format!("Init:{i}/{total_init}");
    }
    for c in list(pod, "/status/containerStatuses") {
        let waiting = s(c, "/state/waiting/reason");
        let terminated = s(c, "/state/terminated/reason");
        if !waiting.is_empty() {
            reason = waiting.to_owned();
        } else if !terminated.is_empty() {
            reason = terminated.to_owned();
        }
    }
    reason
}

pub(super) fn pod_columns() -> (Vec<PrinterColumn>, Cells) {
    let columns = vec![
        name_column(),
        column(
            "Ready",
            "string",
            "",
            "The aggregate readiness state of this pod for accepting traffic.",
            0,
        ),
        column(
            "Status",
            "string",
            "",
            "The aggregate status of the containers in this pod.",
            0,
        ),
        column(
            "Restarts",
            "string",
            "",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            0,
        ),
        age_column(),
        column(
            "IP",
            "string",
            "",
            "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            1,
        ),
        column(
            "Node",
            "string",
            "",
            "NodeName is a request to schedule this pod onto a specific node.",
            1,
        ),
        column(
            "Nominated Node",
            "string",
            "",
            "nominatedNodeName is set when this pod preempts other pods on the node.",
            1,
        ),
        column(
            "Readiness Gates",
            "string",
            "",
            "If specified, all readiness gates will be evaluated for pod readiness.",
            1,
        ),
    ];
    let cells = |pod: &Value| {
        let statuses = list(pod, "/status/containerStatuses");
        let ready = statuses.iter().filter(|c| c["ready"] == true).count();
        let restarts: i64 = statuses
            .iter()
            .filter_map(|c| c["restartCount"].as_i64())
            .sum();
        let gates = list(pod, "/spec/readinessGates");
        vec![
            name(pod),
            json!(format!("{ready}/{}", list(pod, "/spec/containers").len())),
            json!(pod_status(pod)),
            json!(restarts.to_string()),
            created(pod),
            or_none(s(pod, "/status/podIP")),
            or_none(s(pod, "/spec/nodeName")),
            or_none(s(pod, "/status/nominatedNodeName")),
            if gates.is_empty() {
                json!("<none>")
            } else {
                json!(format!("0/{}", gates.len()))
            },
        ]
    };
    (columns, Box::new(cells))
}

pub(super) fn node_columns() -> (Vec<PrinterColumn>, Cells) {
    let columns = vec![
        name_column(),
        column("Status", "string", "", "The status of the node", 0),
        column("Roles", "string", "", "The roles of the node", 0),
        age_column(),
        column(
            "Version",
            "string",
            "",
            "Kubelet Version reported by the node.",
            0,
        ),
        column(
            "Internal-IP",
            "string",
            "",
            "List of addresses reachable to the node. Queried from cloud provider, if available.",
            1,
        ),
        column(
            "External-IP",
            "string",
            "",
            "List of addresses reachable to the node. Queried from cloud provider, if available.",
            1,
        ),
        column(
            "OS-Image",
            "string",
            "",
            "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            1,
        ),
        column(
            "Kernel-Version",
            "string",
            "",
            "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            1,
        ),
        column(
            "Container-Runtime",
            "string",
            "",
            "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            1,
        ),
    ];
    let cells = |node: &Value| {
        let ready = list(node, "/status/conditions")
            .iter()
            .find(|c| c["type"] == "Ready");
        let mut status = match ready.map(|c| s(c, "/status")) {
            Some("True") => "Ready".to_owned(),
            Some("False") => "NotReady".to_owned(),
            _ => "Unknown".to_owned(),
        };
        if node.pointer("/spec/unschedulable") == Some(&json!(true)) {
            status.push_str(",SchedulingDisabled");
        }
        let roles: Vec<&str> = node
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|l| {
                l.keys()
                    .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                    .collect()
            })
            .unwrap_or_default();
        let address = |kind: &str| {
            list(node, "/status/addresses")
                .iter()
                .find(|a| a["type"] == kind)
                .map(|a| s(a, "/address").to_owned())
                .unwrap_or_default()
        };
        vec![
            name(node),
            json!(status),
            or_none(&roles.join(",")),
            created(node),
            json!(s(node, "/status/nodeInfo/kubeletVersion")),
            or_none(&address("InternalIP")),
            or_none(&address("ExternalIP")),
            or_none(s(node, "/status/nodeInfo/osImage")),
            or_none(s(node, "/status/nodeInfo/kernelVersion")),
            or_none(s(node, "/status/nodeInfo/containerRuntimeVersion")),
        ]
    };
    (columns, Box::new(cells))
}

pub(super) fn deployment_columns() -> (Vec<PrinterColumn>, Cells) {
    let columns = vec![
        name_column(),
        column(
            "Ready",
            "string",
            "",
            "Number of the pod with ready state",
            0,
        ),
        column(
            "Up-to-date",
            "integer",
            "",
            "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            0,
        ),
        column(
            "Available",
            "integer",
            "",
            "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            0,
        ),
        age_column(),
        column(
            "Containers",
            "string",
            "",
            "Names of each container in the template.",
            1,
        ),
        column(
            "Images",
            "string",
            "",
            "Images referenced by each container in the template.",
            1,
        ),
        column(
            "Selector",
            "string",
            "",
            "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
            1,
        ),
    ];
    let cells = |d: &Value| {
        let containers = list(d, "/spec/template/spec/containers");
        let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
        let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
        let selector = d
            .pointer("/spec/selector")
            .map(crate::api::selector::label_selector_string)
            .unwrap_or_default();
        vec![
            name(d),
            json!(format!(
                "{}/{}",
                int(d, "/status/readyReplicas"),
                int(d, "/spec/replicas")
            )),
            json!(int(d, "/status/updatedReplicas")),
            json!(int(d, "/status/availableReplicas")),
            created(d),
            json!(names.join(",")),
            json!(images.join(",")),
            or_none(&selector),
        ]
    };
    (columns, Box::new(cells))
}

pub(super) fn service_columns() -> (Vec<PrinterColumn>, Cells) {
    let columns = vec![
        name_column(),
        column(
            "Type",
            "string",
            "",
            "type determines how the Service is exposed.",
            0,
        ),
        column(
            "Cluster-IP",
            "string",
            "",
            "clusterIP is the IP address of the service.",
            0,
        ),
        column(
            "External-IP",
            "string",
            "",
            "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            0,
        ),
        column(
            "Port(s)",
            "string",
            "",
            "The list of ports that are exposed by this service.",
            0,
        ),
        age_column(),
        column(
            "Selector",
            "string",
            "",
            "Route service traffic to pods with label keys and values matching this selector.",
            1,
        ),
    ];
    let cells = |svc: &Value| {
        let ports: Vec<String> = list(svc, "/spec/ports")
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    int(p, "/port"),
                    match s(p, "/protocol") {
                        "" => "TCP",
                        x => x,
                    }
                )
            })
            .collect();
        let selector: Vec<String> = svc
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        vec![
            name(svc),
            json!(s(svc, "/spec/type")),
            or_none(s(svc, "/spec/clusterIP")),
            json!("<none>"),
            or_none(&ports.join(",")),
            created(svc),
            or_none(&selector.join(",")),
        ]
    };
    (columns, Box::new(cells))
}
