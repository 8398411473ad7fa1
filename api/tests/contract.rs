//! The OpenAPI document tells the whole truth: every status the shared
//! machinery can answer is declared on every operation it can answer it
//! for, as a problem document; operationIds are unique; every `$ref`
//! resolves; and no two schemas share a name (merging keeps one silently,
//! so an operation would describe a shape it does not send).
//!
//! Each check returns what it finds wrong, and is tried on a document made
//! wrong on purpose too, so a check that can no longer fail shows up.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

const METHODS: [&str; 9] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace", "query",
];
const PROBLEM_REF: &str = "#/components/schemas/Problem";

fn document() -> Value {
    serde_json::to_value(modelfleet_api::openapi()).unwrap()
}

/// Every operation: `(method path, operation)`.
fn operations(doc: &Value) -> Vec<(String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                found.push((format!("{} {path}", method.to_uppercase()), operation));
            }
        }
    }
    found
}

fn parameters<'a>(operation: &'a Value, place: &str) -> Vec<&'a Value> {
    operation["parameters"]
        .as_array()
        .map(|ps| ps.iter().filter(|p| p["in"] == place).collect())
        .unwrap_or_default()
}

fn secured(operation: &Value) -> bool {
    operation["security"]
        .as_array()
        .is_some_and(|requirements| !requirements.is_empty())
}

/// Whether an operation takes a `tenant`, as a query parameter or a member
/// of its JSON body.
fn names_a_tenant(doc: &Value, operation: &Value) -> bool {
    let body = &operation["requestBody"]["content"]["application/json"]["schema"];
    let body = match body["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => doc.pointer(pointer).unwrap_or(&Value::Null),
        None => body,
    };
    parameters(operation, "query")
        .iter()
        .any(|p| p["name"] == "tenant")
        || body["properties"].get("tenant").is_some()
}

/// The statuses an operation must declare, whatever its handler does.
fn required_statuses(doc: &Value, method_path: &str, operation: &Value) -> BTreeSet<u16> {
    let mut statuses = BTreeSet::from([500, 503]);
    if secured(operation) {
        // 403: a session that must enrol a second factor first.
        statuses.extend([401, 403]);
    }
    if operation["requestBody"]["content"]["application/json"].is_object() {
        statuses.extend([400, 413, 415, 422]);
    }
    if !parameters(operation, "query").is_empty() {
        statuses.insert(400);
    }
    if !parameters(operation, "path").is_empty() {
        statuses.extend([400, 404]);
    }
    if names_a_tenant(doc, operation) {
        statuses.insert(404);
    }
    if method_path.starts_with("POST ") && secured(operation) {
        statuses.extend([400, 409, 413, 422]);
    }
    statuses
}

/// Every operation declares what the shared machinery answers, each error
/// as a problem document, and every response has a description.
fn undeclared_statuses(doc: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    for (op, operation) in operations(doc) {
        let responses = &operation["responses"];
        for status in required_statuses(doc, &op, operation) {
            let response = &responses[status.to_string()];
            if response.is_null() {
                wrong.push(format!("{op}: does not declare {status}"));
            }
        }
        for (status, response) in responses.as_object().into_iter().flatten() {
            if response["description"].as_str().is_none_or(str::is_empty) {
                wrong.push(format!("{op}: {status} has no description"));
            }
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &response["content"]["application/problem+json"]["schema"];
                if schema["$ref"] != PROBLEM_REF {
                    wrong.push(format!("{op}: {status} is not a problem document"));
                }
            }
        }
        if op.starts_with("POST ") && secured(operation) {
            let has_key = parameters(operation, "header")
                .iter()
                .any(|p| p["name"] == "Idempotency-Key");
            if !has_key {
                wrong.push(format!("{op}: does not document Idempotency-Key"));
            }
        }
        // Every `{name}` of the path is a declared path parameter.
        let path = op.split_once(' ').map_or("", |(_, p)| p);
        let declared: BTreeSet<&str> = parameters(operation, "path")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for segment in path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'))
                && !declared.contains(name)
            {
                wrong.push(format!("{op}: path parameter {name} is not declared"));
            }
        }
    }
    wrong
}

/// Every operation has an operationId in `verb_resource` form, and no two
/// share one.
fn operation_id_clashes(doc: &Value) -> Vec<String> {
    let mut by_id: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (op, operation) in operations(doc) {
        match operation["operationId"].as_str() {
            Some(id) if !id.is_empty() => {
                // What a client generator makes a method of: verb_resource.
                let snake = id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !snake || !id.contains('_') {
                    wrong.push(format!("{op}: operationId {id} is not verb_resource"));
                }
                by_id.entry(id).or_default().push(op);
            }
            _ => wrong.push(format!("{op}: no operationId")),
        }
    }
    for (id, ops) in by_id {
        if ops.len() > 1 {
            wrong.push(format!("operationId {id} is used by {}", ops.join(", ")));
        }
    }
    wrong
}

/// Every `$ref` anywhere in the document points at something in it.
fn dangling_refs(doc: &Value) -> Vec<String> {
    fn walk(doc: &Value, value: &Value, at: &str, wrong: &mut Vec<String>) {
        match value {
            Value::Object(members) => {
                if let Some(Value::String(target)) = members.get("$ref") {
                    let resolved = target
                        .strip_prefix('#')
                        .and_then(|pointer| doc.pointer(pointer));
                    if resolved.is_none() {
                        wrong.push(format!("{at}: $ref {target} does not resolve"));
                    }
                }
                for (name, member) in members {
                    walk(doc, member, &format!("{at}/{name}"), wrong);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(doc, item, &format!("{at}/{i}"), wrong);
                }
            }
            _ => {}
        }
    }
    let mut wrong = Vec::new();
    walk(doc, doc, "", &mut wrong);
    wrong
}

/// No two modules mean different schemas by one name: each module's own
/// schemas are exactly the document's of that name.
fn schema_name_clashes(doc: &Value, parts: &[(&str, Value)]) -> Vec<String> {
    let mut wrong = Vec::new();
    let components = &doc["components"]["schemas"];
    let mut seen: BTreeMap<&str, (&str, &Value)> = BTreeMap::new();
    for (module, part) in parts {
        for (name, schema) in part["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            if let Some((first, earlier)) = seen.get(name.as_str())
                && *earlier != schema
            {
                wrong.push(format!(
                    "schema {name}: {first} and {module} describe different types by this name"
                ));
            }
            seen.entry(name).or_insert((module, schema));
            if components[name] != *schema {
                wrong.push(format!(
                    "schema {name}: the document's is not the one {module} uses"
                ));
            }
        }
    }
    wrong
}

fn parts() -> Vec<(&'static str, Value)> {
    modelfleet_api::openapi_parts()
        .into_iter()
        .map(|(module, part)| (module, serde_json::to_value(part).unwrap()))
        .collect()
}

fn assert_none(what: &str, wrong: Vec<String>) {
    assert!(wrong.is_empty(), "{what}:\n  {}", wrong.join("\n  "));
}

#[test]
fn every_operation_declares_what_the_shared_machinery_answers() {
    assert_none("undeclared statuses", undeclared_statuses(&document()));
}

#[test]
fn operation_ids_are_unique() {
    assert_none("operationId clashes", operation_id_clashes(&document()));
}

#[test]
fn every_ref_resolves() {
    assert_none("dangling $refs", dangling_refs(&document()));
}

#[test]
fn no_two_schemas_share_a_name() {
    let doc = document();
    let parts = parts();
    assert!(parts.len() > 5, "every resource module is compared");
    assert_none("schema name clashes", schema_name_clashes(&doc, &parts));
}

#[test]
fn the_document_has_operations_to_check() {
    let doc = document();
    let ops = operations(&doc);
    assert!(ops.len() > 40, "only {} operations", ops.len());
    assert!(ops.iter().any(|(op, _)| op == "POST /api/v1/deployments"));
}

/// The checks above find what they are for: a document made wrong on
/// purpose fails each of them.
#[test]
fn each_check_finds_what_it_is_for() {
    let problem = json!({"content": {"application/problem+json": {"schema": {"$ref": PROBLEM_REF}}},
        "description": "x"});
    let broken = json!({
        "paths": {
            "/things": {
                "post": {
                    "operationId": "create",
                    "security": [{"bearer": []}],
                    "requestBody": {"content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/Missing"}}}},
                    "responses": {"201": {"description": "Created"}, "401": problem.clone(),
                        "503": problem.clone(), "500": problem.clone(),
                        "422": {"description": "plain"}}
                }
            },
            "/things/{id}": {
                "get": {"operationId": "create", "responses": {"200": {}}}
            },
            "/others": {
                "get": {"operationId": "others",
                    "parameters": [{"in": "query", "name": "tenant", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "OK"}, "400": problem.clone(),
                        "503": problem.clone(), "500": problem.clone()}}
            }
        },
        "components": {"schemas": {"Problem": {"type": "object"}, "Thing": {"type": "object"}}}
    });
    let undeclared = undeclared_statuses(&broken);
    for expected in [
        "POST /things: does not declare 400",
        "POST /things: does not declare 413",
        "POST /things: does not declare 415",
        "POST /things: does not declare 409",
        "POST /things: 422 is not a problem document",
        "POST /things: does not document Idempotency-Key",
        "GET /things/{id}: does not declare 503",
        "GET /things/{id}: 200 has no description",
        "GET /things/{id}: path parameter id is not declared",
        "GET /others: does not declare 404",
    ] {
        assert!(
            undeclared.iter().any(|w| w == expected),
            "missed {expected:?} in {undeclared:#?}"
        );
    }
    let mut clashes = operation_id_clashes(&broken);
    clashes.sort();
    assert_eq!(
        clashes,
        [
            "GET /others: operationId others is not verb_resource",
            "GET /things/{id}: operationId create is not verb_resource",
            "POST /things: operationId create is not verb_resource",
            "operationId create is used by POST /things, GET /things/{id}",
        ]
    );
    assert_eq!(
        dangling_refs(&broken),
        [
            "/paths//things/post/requestBody/content/application/json/schema: \
          $ref #/components/schemas/Missing does not resolve"
        ]
    );
    let parts = [
        (
            "a",
            json!({"components": {"schemas": {"Thing": {"type": "object"}}}}),
        ),
        (
            "b",
            json!({"components": {"schemas": {"Thing": {"type": "string"}}}}),
        ),
    ];
    assert_eq!(
        schema_name_clashes(&broken, &parts),
        [
            "schema Thing: a and b describe different types by this name",
            "schema Thing: the document's is not the one b uses",
        ]
    );
}
