//! Server-side printing: the `meta.k8s.io/v1` `Table` kubectl asks for
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`). Custom
//! resources get Name plus their CRD's `additionalPrinterColumns` (or Age
//! when it declares none); built-in kinds get the columns kubectl shows
//! for them. Dates are rendered as ages on the server, as the real one does.

mod builtin;
mod jsonpath;
mod workloads;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::registry::{PrinterColumn, ResourceType};

/// What each row carries besides its cells (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

fn column(
    name: &str,
    type_: &str,
    format: &str,
    description: &str,
    priority: i64,
) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        format: format.into(),
        description: description.into(),
        priority,
        json_path: String::new(),
    }
}

fn name_column() -> PrinterColumn {
    column(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        0,
    )
}

fn age_column() -> PrinterColumn {
    column(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    )
}

/// kubectl's `HumanDuration`: `45s`, `3m20s`, `5h`, `12d`, `2y30d`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The age of a timestamp, or `<unknown>`.
pub fn age(timestamp: Option<&Value>) -> String {
    timestamp
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| human_duration((super::ops::utc_now() - t.with_timezone(&Utc)).num_seconds()))
        .unwrap_or_else(|| "<unknown>".into())
}

fn custom_cell(column: &PrinterColumn, obj: &Value) -> Value {
    let Some(found) = jsonpath::find(obj, &column.json_path) else {
        return Value::Null;
    };
    match column.type_.as_str() {
        "date" => Value::String(age(Some(&found))),
        "string" => match found {
            Value::String(s) => Value::String(s),
            other => Value::String(other.to_string()),
        },
        _ => found,
    }
}

fn columns_and_cells(ty: &ResourceType, version: &str) -> (Vec<PrinterColumn>, builtin::Cells) {
    if ty.crd.is_some() {
        let custom = ty
            .version(version)
            .map(|v| v.columns.clone())
            .unwrap_or_default();
        if custom.is_empty() {
            return (
                vec![name_column(), age_column()],
                Box::new(|obj: &Value| {
                    vec![
                        name_of(obj),
                        Value::String(age(obj.pointer("/metadata/creationTimestamp"))),
                    ]
                }),
            );
        }
        let mut columns = vec![name_column()];
        columns.extend(custom.iter().cloned());
        return (
            columns,
            Box::new(move |obj: &Value| {
                let mut cells = vec![name_of(obj)];
                cells.extend(custom.iter().map(|c| custom_cell(c, obj)));
                cells
            }),
        );
    }
    builtin::columns(ty)
}

fn name_of(obj: &Value) -> Value {
    obj.pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null)
}

fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        }),
    }
}

/// A Table of `objects`; `with_columns` false leaves out the column
/// definitions (watch events after the first).
pub fn table(
    ty: &ResourceType,
    version: &str,
    objects: &[Value],
    resource_version: Option<u64>,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let (columns, cells) = columns_and_cells(ty, version);
    let definitions: Vec<Value> = if with_columns {
        columns
            .iter()
            .map(|c| {
                json!({"name": c.name, "type": c.type_, "format": c.format,
                            "description": c.description, "priority": c.priority})
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| json!({"cells": cells(obj), "object": row_object(obj, include)}))
        .collect();
    let mut metadata = json!({});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv.to_string());
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
           "columnDefinitions": definitions, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_kubectl_does() {
        let cases = [
            (-5, "<invalid>"),
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_duration(seconds), want, "{seconds}");
        }
    }
}
