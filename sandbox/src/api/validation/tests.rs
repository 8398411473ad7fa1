use super::*;
use serde_json::json;

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["model"],
                "properties": {
                    "model": {"type": "string", "minLength": 1, "pattern": "^[a-z0-9.-]+$"},
                    "replicas": {"type": "integer", "minimum": 0, "default": 1},
                    "precision": {"type": "string", "enum": ["fp16", "bf16"]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "ports": {"type": "array", "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
                }
            },
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
        }
    })
}

#[test]
fn prunes_defaults_and_keeps_preserved_fields() {
    let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a", "uid": "u"},
        "spec": {"model": "llama", "unknown": 1, "extra": {"any": {"thing": true}},
                 "labels": {"a": "b"}}, "status": {"phase": "Ready", "junk": 2}});
    let out = check(&schema(), &mut obj);
    assert!(out.causes.is_empty(), "{:?}", out.causes);
    assert_eq!(out.unknown, [".spec.unknown", ".status.junk"]);
    assert_eq!(obj["spec"]["replicas"], 1);
    assert_eq!(obj["spec"]["extra"]["any"]["thing"], true);
    assert_eq!(obj["metadata"]["uid"], "u");
}

#[test]
fn reports_each_violation_with_the_servers_wording() {
    let mut obj = json!({"spec": {"replicas": -1, "precision": "fp4", "model": "Bad Name",
        "labels": {"a": 3}, "ports": [{"name": "x"}, {"name": "x"}]}});
    let out = check(&schema(), &mut obj);
    let got: Vec<String> = out.causes.iter().map(Cause::joined).collect();
    assert_eq!(
        got,
        [
            "spec.labels.a: Invalid value: \"integer\": spec.labels.a in body must be of type string: \"integer\"",
            "spec.model: Invalid value: \"Bad Name\": spec.model in body should match '^[a-z0-9.-]+$'",
            "spec.ports[1]: Duplicate value: map[string]interface {}{\"name\":\"x\"}",
            "spec.precision: Unsupported value: \"fp4\": supported values: \"fp16\", \"bf16\"",
            "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
        ]
    );
}

#[test]
fn missing_required_and_wrong_types() {
    let mut obj = json!({"spec": {"replicas": "three"}});
    let out = check(&schema(), &mut obj);
    let got: Vec<String> = out.causes.iter().map(Cause::joined).collect();
    assert_eq!(
        got,
        [
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
            "spec.model: Required value",
        ]
    );
}

#[test]
fn int_or_string_accepts_both() {
    let schema = json!({"type": "object", "properties": {"p": {"x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}]}}});
    for ok in [json!({"p": 1}), json!({"p": "25%"})] {
        let mut obj = ok;
        assert!(check(&schema, &mut obj).causes.is_empty());
    }
    let mut bad = json!({"p": true});
    assert_eq!(check(&schema, &mut bad).causes.len(), 1);
}
