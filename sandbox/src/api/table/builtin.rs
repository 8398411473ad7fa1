//! Columns of built-in kinds, as the real server's printers define them;
//! the workload kinds are in `workloads`. Wide columns (`-o wide`) have
//! priority 1.

use serde_json::{Value, json};

use super::super::registry::{PrinterColumn, ResourceType};
use super::super::selector::label_selector_string;
use super::{age, age_column, column, name_column, workloads};

pub type Cells = Box<dyn Fn(&Value) -> Vec<Value>>;
type Getter = fn(&Value) -> Value;

pub(super) fn s<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn or_none(value: &str) -> Value {
    Value::String(if value.is_empty() {
        "<none>".into()
    } else {
        value.to_owned()
    })
}

pub(super) fn name(obj: &Value) -> Value {
    obj.pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null)
}

pub(super) fn created(obj: &Value) -> Value {
    Value::String(age(obj.pointer("/metadata/creationTimestamp")))
}

pub(super) fn list<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn event_columns() -> (Vec<PrinterColumn>, Cells) {
    let columns = vec![
        column(
            "Last Seen",
            "string",
            "",
            "Time when this Event was last seen",
            0,
        ),
        column(
            "Type",
            "string",
            "",
            "Type of this event (Normal, Warning), new types could be added in the future.",
            0,
        ),
        column(
            "Reason",
            "string",
            "",
            "Short, machine understandable string that gives the reason for this event being generated.",
            0,
        ),
        column(
            "Object",
            "string",
            "",
            "The object that this event is about.",
            0,
        ),
        column(
            "Message",
            "string",
            "",
            "A human-readable description of the status of this operation.",
            0,
        ),
        column(
            "Source",
            "string",
            "",
            "The component reporting this event.",
            1,
        ),
        column(
            "Count",
            "string",
            "",
            "The number of times this event has occurred.",
            1,
        ),
        column(
            "Name",
            "string",
            "name",
            "Name must be unique within a namespace.",
            1,
        ),
    ];
    let cells = |e: &Value| {
        let seen = [
            "/lastTimestamp",
            "/eventTime",
            "/metadata/creationTimestamp",
        ]
        .iter()
        .find_map(|p| e.pointer(p).filter(|v| v.is_string()));
        let object = format!(
            "{}/{}",
            s(e, "/involvedObject/kind").to_lowercase(),
            s(e, "/involvedObject/name")
        );
        let source = match s(e, "/source/component") {
            "" => s(e, "/reportingComponent"),
            c => c,
        };
        vec![
            json!(age(seen)),
            json!(s(e, "/type")),
            json!(s(e, "/reason")),
            json!(object),
            json!(s(e, "/message")),
            or_none(source),
            json!(int(e, "/count").max(1).to_string()),
            name(e),
        ]
    };
    (columns, Box::new(cells))
}

fn simple(extra: Vec<(PrinterColumn, Getter)>) -> (Vec<PrinterColumn>, Cells) {
    let mut columns = vec![name_column()];
    columns.extend(extra.iter().map(|(c, _)| c.clone()));
    columns.push(age_column());
    let getters: Vec<Getter> = extra.into_iter().map(|(_, f)| f).collect();
    let cells = move |obj: &Value| {
        let mut cells = vec![name(obj)];
        cells.extend(getters.iter().map(|f| f(obj)));
        cells.push(created(obj));
        cells
    };
    (columns, Box::new(cells))
}

pub(super) fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn count_of(obj: &Value, field: &str) -> usize {
    obj.get(field)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

pub fn columns(ty: &ResourceType) -> (Vec<PrinterColumn>, Cells) {
    match (ty.group.as_str(), ty.plural.as_str()) {
        ("", "pods") => workloads::pod_columns(),
        ("", "nodes") => workloads::node_columns(),
        ("apps", "deployments") => workloads::deployment_columns(),
        ("", "services") => workloads::service_columns(),
        ("", "events") => event_columns(),
        ("", "namespaces") => simple(vec![(
            column("Status", "string", "", "The status of the namespace", 0),
            |o| json!(s(o, "/status/phase")),
        )]),
        ("coordination.k8s.io", "leases") => simple(vec![(
            column("Holder", "string", "", "The holder of the lease", 0),
            |o| or_none(s(o, "/spec/holderIdentity")),
        )]),
        ("policy", "poddisruptionbudgets") => simple(vec![
            (
                column(
                    "Min Available",
                    "string",
                    "",
                    "The minimum number of pods that must be available",
                    0,
                ),
                |o| {
                    o.pointer("/spec/minAvailable")
                        .map_or(json!("N/A"), |v| json!(v.to_string().trim_matches('"')))
                },
            ),
            (
                column(
                    "Max Unavailable",
                    "string",
                    "",
                    "The maximum number of pods that may be unavailable",
                    0,
                ),
                |o| {
                    o.pointer("/spec/maxUnavailable")
                        .map_or(json!("N/A"), |v| json!(v.to_string().trim_matches('"')))
                },
            ),
            (
                column(
                    "Allowed Disruptions",
                    "integer",
                    "",
                    "Calculated number of pods that may be disrupted at this time",
                    0,
                ),
                |o| json!(int(o, "/status/disruptionsAllowed")),
            ),
        ]),
        ("", "configmaps") => simple(vec![(
            column("Data", "integer", "", "Number of data entries", 0),
            |o| json!(count_of(o, "data") + count_of(o, "binaryData")),
        )]),
        ("", "secrets") => simple(vec![
            (
                column("Type", "string", "", "The type of the secret", 0),
                |o| json!(s(o, "/type")),
            ),
            (
                column("Data", "integer", "", "Number of data entries", 0),
                |o| json!(count_of(o, "data")),
            ),
        ]),
        ("networking.k8s.io", "networkpolicies") => simple(vec![(
            column(
                "Pod-Selector",
                "string",
                "",
                "Pods the policy applies to",
                0,
            ),
            |o| {
                let selector = o
                    .pointer("/spec/podSelector")
                    .map(label_selector_string)
                    .unwrap_or_default();
                or_none(&selector)
            },
        )]),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => simple(vec![(
            column("Role", "string", "", "The role the binding grants", 0),
            |o| {
                json!(format!(
                    "{}/{}",
                    s(o, "/roleRef/kind"),
                    s(o, "/roleRef/name")
                ))
            },
        )]),
        ("apiextensions.k8s.io", "customresourcedefinitions")
        | ("rbac.authorization.k8s.io", "roles" | "clusterroles") => {
            let columns = vec![
                name_column(),
                column(
                    "Created At",
                    "date",
                    "",
                    "The time the object was created",
                    0,
                ),
            ];
            let cells = |o: &Value| vec![name(o), json!(s(o, "/metadata/creationTimestamp"))];
            (columns, Box::new(cells))
        }
        _ => simple(Vec::new()),
    }
}
