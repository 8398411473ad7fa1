//! OpenAPI v3 documents, enough for kubectl: per group version, a PATCH
//! path per resource (carrying `x-kubernetes-group-version-kind` and the
//! `fieldValidation` parameter, so kubectl leaves validation to the
//! server) and a schema per kind (the CRD's `openAPIV3Schema` for custom
//! resources, which makes `kubectl explain` work; an open object with a
//! description for built-in kinds, whose fields are not described).
//!
//! The PATCH paths do not list strategic merge patch, so kubectl's
//! client-side apply computes strategic patches for built-in kinds from
//! its own compiled-in types, and JSON merge patches for custom resources,
//! as it does against a real server. OpenAPI v2 is not served (404):
//! kubectl uses v3 when the server has it.

use serde_json::{Map, Value, json};

use super::discovery::{MAJOR, MINOR};
use super::registry::{Registry, ResourceType};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn schema_name(ty: &ResourceType, version: &str) -> String {
    let group = if ty.group.is_empty() {
        "io.k8s.api.core".to_owned()
    } else if ty.crd.is_none() {
        format!(
            "io.k8s.api.{}",
            ty.group.split('.').next().unwrap_or_default()
        )
    } else {
        ty.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{group}.{version}.{}", ty.kind)
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn object_meta() -> Value {
    let string = |d: &str| json!({"type": "string", "description": d, "default": ""});
    let map = |d: &str| json!({"type": "object", "description": d, "additionalProperties": {"type": "string", "default": ""}});
    json!({
        "type": "object",
        "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        "properties": {
            "name": string("Name must be unique within a namespace."),
            "namespace": string("Namespace defines the space within which each name must be unique."),
            "generateName": string("GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
            "uid": string("UID is the unique in time and space value for this object."),
            "resourceVersion": string("An opaque value that represents the internal version of this object."),
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
            "creationTimestamp": string("CreationTimestamp is a timestamp representing the server time when this object was created."),
            "deletionTimestamp": string("DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."),
            "labels": map("Map of string keys and values that can be used to organize and categorize (scope and select) objects."),
            "annotations": map("Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata."),
            "finalizers": {"type": "array", "description": "Must be empty before the object is deleted from the registry.", "items": {"type": "string", "default": ""}},
            "ownerReferences": {"type": "array", "description": "List of objects depended by this object.", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            "managedFields": {"type": "array", "description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
        }
    })
}

fn kind_schema(ty: &ResourceType, version: &str) -> Value {
    let mut schema = ty
        .version(version)
        .and_then(|v| v.schema.clone())
        .unwrap_or_else(|| {
            json!({
                "type": "object",
                "description": format!("{} (a built-in kind of the modelfleet sandbox; its fields are not described here).", ty.kind),
                "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                               "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "x-kubernetes-preserve-unknown-fields": true,
            })
        });
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            "apiVersion".into(),
            json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}),
        );
        props.insert(
            "kind".into(),
            json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}),
        );
        props.insert(
            "metadata".into(),
            json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}], "default": {},
                   "description": "Standard object's metadata."}),
        );
    }
    schema["x-kubernetes-group-version-kind"] =
        json!([{"group": ty.group, "version": version, "kind": ty.kind}]);
    schema
}

fn patch_path(ty: &ResourceType, version: &str, schema: &str) -> (String, Value) {
    let prefix = format!("/{}", gv_path(&ty.group, version));
    let path = if ty.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", ty.plural)
    } else {
        format!("{prefix}/{}/{{name}}", ty.plural)
    };
    let query = |name: &str, description: &str| json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}});
    let content = |_: ()| json!({"schema": {"type": "object"}});
    let op = json!({
        "description": format!("partially update the specified {}", ty.kind),
        "operationId": format!("patch{}", ty.kind),
        "parameters": [
            query("dryRun", "When present, indicates that modifications should not be persisted."),
            query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
            query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields."),
            query("force", "Force is going to \"force\" Apply requests."),
        ],
        "requestBody": {"content": {
            "application/json-patch+json": content(()),
            "application/merge-patch+json": content(()),
            "application/apply-patch+yaml": content(()),
        }},
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}}},
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": ty.group, "version": version, "kind": ty.kind},
    });
    (
        path,
        json!({
            "patch": op,
            "parameters": [
                {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}},
            ],
        }),
    )
}

/// The document of one group version (`api/v1`, `apis/apps/v1`).
pub fn v3_group_version(registry: &Registry, gv: &str) -> Option<Value> {
    let (group, version) = match gv.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), (*v).to_owned()),
        ["apis", g, v] => ((*g).to_owned(), (*v).to_owned()),
        _ => return None,
    };
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(OBJECT_META.into(), object_meta());
    let mut any = false;
    for ty in registry.in_group_version(&group, &version) {
        any = true;
        let name = schema_name(ty, &version);
        let (path, item) = patch_path(ty, &version, &name);
        paths.insert(path, item);
        schemas.insert(name, kind_schema(ty, &version));
    }
    any.then(|| {
        json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": format!("v{MAJOR}.{MINOR}.0")},
            "paths": paths,
            "components": {"schemas": schemas},
        })
    })
}

/// FNV-1a, to make each document's URL change with its content, as the
/// real server's `?hash=` does (clients cache by URL).
fn hash(value: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in value.to_string().bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: where each group version's document is.
pub fn v3_root(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for group in registry.groups() {
        for version in registry.group_versions(&group) {
            let gv = gv_path(&group, &version);
            if let Some(doc) = v3_group_version(registry, &gv) {
                paths.insert(
                    gv.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", hash(&doc))}),
                );
            }
        }
    }
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_group_version_has_a_document_with_patch_paths() {
        let registry = Registry::default();
        let root = v3_root(&registry);
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let doc = v3_group_version(&registry, "apis/apps/v1").unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object());
    }
}
