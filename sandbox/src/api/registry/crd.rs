//! A CustomResourceDefinition turned into the resource it defines, with
//! the checks the real server makes of a CRD's spec.

use serde_json::Value;

use super::super::error::Cause;
use super::{
    Conversion, GroupResource, PrinterColumn, ResourceType, ScaleSpec, VersionInfo,
    version_priority,
};

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings_at(value: &Value, pointer: &str) -> Vec<String> {
    crate::api::string_list(value.pointer(pointer))
}

/// Checks a CRD's spec and turns it into the resource it defines; the
/// causes name the fields the real server would reject.
pub fn from_crd(crd: &Value) -> Result<ResourceType, Vec<Cause>> {
    let mut causes = Vec::new();
    let group = str_at(crd, "/spec/group");
    let plural = str_at(crd, "/spec/names/plural");
    let kind = str_at(crd, "/spec/names/kind");
    let scope = str_at(crd, "/spec/scope");
    let name = str_at(crd, "/metadata/name");
    let required = |field: &str| Cause::new("FieldValueRequired", field, "Required value");
    if group.is_empty() {
        causes.push(required("spec.group"));
    } else if !group.contains('.') {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.group",
            format!("Invalid value: \"{group}\": should be a domain with at least one dot"),
        ));
    }
    if plural.is_empty() {
        causes.push(required("spec.names.plural"));
    }
    if kind.is_empty() {
        causes.push(required("spec.names.kind"));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let namespaced = match scope {
        "Namespaced" => true,
        "Cluster" => false,
        "" => {
            causes.push(required("spec.scope"));
            true
        }
        other => {
            causes.push(Cause::new(
                "FieldValueNotSupported",
                "spec.scope",
                format!(
                    "Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
                ),
            ));
            true
        }
    };
    let raw_versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if raw_versions.is_empty() {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: null: must have exactly one version marked as storage version",
        ));
    }
    let storage: Vec<&Value> = raw_versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .collect();
    if !raw_versions.is_empty() && storage.len() != 1 {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            format!(
                "Invalid value: {}: must have exactly one version marked as storage version",
                storage.len()
            ),
        ));
    }
    let mut versions = Vec::new();
    for (i, v) in raw_versions.iter().enumerate() {
        let version = str_at(v, "/name");
        if version.is_empty() {
            causes.push(required(&format!("spec.versions[{i}].name")));
            continue;
        }
        let schema = v.pointer("/schema/openAPIV3Schema").cloned();
        if schema.is_none() {
            causes.push(required(&format!(
                "spec.versions[{i}].schema.openAPIV3Schema"
            )));
        }
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: str_at(c, "/name").to_owned(),
                        type_: str_at(c, "/type").to_owned(),
                        format: str_at(c, "/format").to_owned(),
                        description: str_at(c, "/description").to_owned(),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        json_path: str_at(c, "/jsonPath").to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let scale = v.pointer("/subresources/scale").map(|s| ScaleSpec {
            spec_replicas_path: str_at(s, "/specReplicasPath").to_owned(),
            status_replicas_path: str_at(s, "/statusReplicasPath").to_owned(),
            label_selector_path: s
                .get("labelSelectorPath")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
        versions.push(VersionInfo {
            name: version.to_owned(),
            status: v.pointer("/subresources/status").is_some(),
            scale,
            schema,
            columns,
        });
    }
    if !causes.is_empty() {
        return Err(causes);
    }
    versions.sort_by_key(|v| std::cmp::Reverse(version_priority(&v.name)));
    let field_labels = raw_versions
        .iter()
        .flat_map(|v| {
            v.get("selectableFields")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|f| f.get("jsonPath").and_then(Value::as_str).map(str::to_owned))
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect();
    let singular = match str_at(crd, "/spec/names/singular") {
        "" => kind.to_lowercase(),
        s => s.to_owned(),
    };
    let list_kind = match str_at(crd, "/spec/names/listKind") {
        "" => format!("{kind}List"),
        s => s.to_owned(),
    };
    Ok(ResourceType {
        group: group.to_owned(),
        plural: plural.to_owned(),
        singular,
        kind: kind.to_owned(),
        list_kind,
        namespaced,
        short_names: strings_at(crd, "/spec/names/shortNames"),
        categories: strings_at(crd, "/spec/names/categories"),
        versions,
        storage_version: str_at(storage[0], "/name").to_owned(),
        storage: GroupResource::new(group, plural),
        conversion: Conversion::None,
        crd: Some(name.to_owned()),
        binding: false,
        field_labels,
        review: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crd_without_storage_version_is_rejected() {
        let crd = json!({
            "metadata": {"name": "things.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "things", "kind": "Thing"},
                "versions": [{"name": "v1", "served": true, "storage": false,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}]}
        });
        let causes = from_crd(&crd).unwrap_err();
        assert_eq!(causes[0].field, "spec.versions");
    }

    #[test]
    fn crd_becomes_a_namespaced_type_with_subresources() {
        let crd = json!({
            "metadata": {"name": "things.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "things", "kind": "Thing", "shortNames": ["th"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}],
                    "schema": {"openAPIV3Schema": {"type": "object"}}}]}
        });
        let ty = from_crd(&crd).unwrap();
        assert!(ty.namespaced && ty.has_status("v1"));
        assert_eq!(ty.short_names, ["th"]);
        assert_eq!(ty.versions[0].columns[0].json_path, ".status.phase");
        assert_eq!(ty.list_kind, "ThingList");
    }
}
