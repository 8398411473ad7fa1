//! Structural-schema handling of custom resources, in the order the real
//! server applies it: drop non-nullable nulls, prune unknown fields,
//! default, then validate against the CRD's `openAPIV3Schema`. Messages
//! follow the real server's wording so clients can show them unchanged.
//!
//! Not evaluated: CEL rules (`x-kubernetes-validations`) and string
//! `format`s. They are accepted in a schema and ignored.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use regex::Regex;
use serde_json::{Map, Value};

use super::error::Cause;

/// What checking one object found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub causes: Vec<Cause>,
    /// Fields the schema does not declare, pruned (`.spec.foo`).
    pub unknown: Vec<String>,
}

/// Prunes, defaults and validates `obj` against a CRD version's schema.
pub fn check(schema: &Value, obj: &mut Value) -> Outcome {
    let mut out = Outcome::default();
    walk(schema, obj, "", &mut out, true);
    out
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// How the server prints a value after `Invalid value:`.
fn shown(value: &Value) -> String {
    match value {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_type(value: &Value, ty: &str) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn regex(pattern: &str) -> Option<Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
    cache
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(pattern).ok())
        .clone()
}

fn invalid(out: &mut Outcome, path: &str, value: &Value, should: String) {
    out.causes.push(Cause::new(
        "FieldValueInvalid",
        path,
        format!("Invalid value: {}: {path} in body {should}", shown(value)),
    ));
}

fn walk(schema: &Value, value: &mut Value, path: &str, out: &mut Outcome, root: bool) {
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    if int_or_string {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            out.causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"{}\": {path} in body must be of type integer,string: \"{}\"",
                    type_name(value),
                    type_name(value)
                ),
            ));
            return;
        }
    } else if let Some(ty) = schema.get("type").and_then(Value::as_str)
        && !is_type(value, ty)
    {
        out.causes.push(Cause::new(
            "FieldValueTypeInvalid",
            path,
            format!(
                "Invalid value: \"{}\": {path} in body must be of type {ty}: \"{}\"",
                type_name(value),
                type_name(value)
            ),
        ));
        return;
    }
    match value {
        Value::Object(map) => walk_object(schema, map, path, out, root),
        Value::Array(items) => walk_array(schema, items, path, out),
        _ => {}
    }
    check_scalar(schema, value, path, out);
    check_combinators(schema, value, path, out);
}

fn walk_object(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    out: &mut Outcome,
    root: bool,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(schema, "x-kubernetes-embedded-resource");
    // Nulls on fields that are not nullable are dropped, as if absent.
    let null_keys: Vec<String> = map
        .iter()
        .filter(|(k, v)| {
            v.is_null()
                && !properties
                    .and_then(|p| p.get(*k))
                    .is_some_and(|s| flag(s, "nullable"))
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in null_keys {
        map.remove(&k);
    }
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let child_path = join(path, &key);
        let keep_meta =
            (root || embedded) && matches!(key.as_str(), "apiVersion" | "kind" | "metadata");
        if let Some(child_schema) = properties.and_then(|p| p.get(&key)) {
            if keep_meta && key == "metadata" {
                check_metadata(map.get(&key), &child_path, out);
                continue;
            }
            if let Some(child) = map.get_mut(&key) {
                walk(child_schema, child, &child_path, out, false);
            }
        } else if keep_meta {
            continue;
        } else if let Some(extra) = additional {
            match extra {
                Value::Bool(false) => {
                    out.unknown.push(format!(".{child_path}"));
                    map.remove(&key);
                }
                Value::Object(_) => {
                    if let Some(child) = map.get_mut(&key) {
                        walk(extra, child, &child_path, out, false);
                    }
                }
                _ => {}
            }
        } else if !preserve {
            out.unknown.push(format!(".{child_path}"));
            map.remove(&key);
        }
    }
    if let Some(properties) = properties {
        for (key, child_schema) in properties {
            if !map.contains_key(key)
                && let Some(default) = child_schema.get("default")
            {
                let mut value = default.clone();
                walk(child_schema, &mut value, &join(path, key), out, false);
                map.insert(key.clone(), value);
            }
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for key in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(key) {
                out.causes.push(Cause::new(
                    "FieldValueRequired",
                    join(path, key),
                    "Required value",
                ));
            }
        }
    }
    let len = map.len();
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && (len as u64) < min
    {
        out.causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {len}: {path} in body should have at least {min} properties"),
        ));
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && (len as u64) > max
    {
        out.causes.push(Cause::new(
            "FieldValueTooMany",
            path,
            format!("Too many: {len}: must have at most {max} items"),
        ));
    }
}

/// The root `metadata` is the server's own; only its name is checked here.
fn check_metadata(meta: Option<&Value>, path: &str, out: &mut Outcome) {
    let Some(meta) = meta else { return };
    if !meta.is_object() {
        out.causes.push(Cause::new(
            "FieldValueTypeInvalid",
            path,
            format!(
                "Invalid value: \"{}\": {path} in body must be of type object",
                type_name(meta)
            ),
        ));
    }
}

fn walk_array(schema: &Value, items: &mut [Value], path: &str, out: &mut Outcome) {
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter_mut().enumerate() {
            walk(item_schema, item, &format!("{path}[{i}]"), out, false);
        }
    }
    let len = items.len() as u64;
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        out.causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {len}: {path} in body should have at least {min} items"),
        ));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        out.causes.push(Cause::new(
            "FieldValueTooMany",
            path,
            format!("Too many: {len}: must have at most {max} items"),
        ));
    }
    let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let identity = |item: &Value| -> Value {
        if list_type == Some("map") {
            Value::Array(
                keys.iter()
                    .map(|k| item.get(*k).cloned().unwrap_or(Value::Null))
                    .collect(),
            )
        } else {
            item.clone()
        }
    };
    if flag(schema, "uniqueItems") || matches!(list_type, Some("set") | Some("map")) {
        for (i, item) in items.iter().enumerate() {
            let id = identity(item);
            if items[..i].iter().any(|earlier| identity(earlier) == id) {
                let shown_id = if list_type == Some("map") {
                    let pairs: Vec<String> = keys
                        .iter()
                        .map(|k| {
                            format!("\"{k}\":{}", item.get(*k).cloned().unwrap_or(Value::Null))
                        })
                        .collect();
                    format!("map[string]interface {{}}{{{}}}", pairs.join(", "))
                } else {
                    shown(item)
                };
                out.causes.push(Cause::new(
                    "FieldValueDuplicate",
                    format!("{path}[{i}]"),
                    format!("Duplicate value: {shown_id}"),
                ));
            }
        }
    }
}

fn check_scalar(schema: &Value, value: &Value, path: &str, out: &mut Outcome) {
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        out.causes.push(Cause::new(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                shown(value),
                list.join(", ")
            ),
        ));
    }
    if let Some(n) = value.as_f64().filter(|_| value.is_number()) {
        let exclusive = |key: &str| flag(schema, key);
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if exclusive("exclusiveMinimum") && n <= min {
                invalid(
                    out,
                    path,
                    value,
                    format!("should be greater than {}", num(min)),
                );
            } else if n < min {
                invalid(
                    out,
                    path,
                    value,
                    format!("should be greater than or equal to {}", num(min)),
                );
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if exclusive("exclusiveMaximum") && n >= max {
                invalid(
                    out,
                    path,
                    value,
                    format!("should be less than {}", num(max)),
                );
            } else if n > max {
                invalid(
                    out,
                    path,
                    value,
                    format!("should be less than or equal to {}", num(max)),
                );
            }
        }
        if let Some(step) = schema.get("multipleOf").and_then(Value::as_f64)
            && step > 0.0
            && (n / step).fract().abs() > 1e-9
        {
            invalid(
                out,
                path,
                value,
                format!("should be a multiple of {}", num(step)),
            );
        }
    }
    if let Some(s) = value.as_str() {
        let chars = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && chars < min
        {
            invalid(
                out,
                path,
                value,
                format!("should be at least {min} chars long"),
            );
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && chars > max
        {
            out.causes.push(Cause::new(
                "FieldValueTooLong",
                path,
                format!("Too long: may not be more than {max} bytes"),
            ));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && regex(pattern).is_some_and(|re| !re.is_match(s))
        {
            invalid(out, path, value, format!("should match '{pattern}'"));
        }
    }
}

/// `1` rather than `1.0` for whole bounds, as Go prints them.
fn num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// `allOf`/`anyOf`/`oneOf`/`not` carry value validations only in a
/// structural schema; they never prune or default.
fn check_combinators(schema: &Value, value: &Value, path: &str, out: &mut Outcome) {
    let errors_for = |sub: &Value| -> Vec<Cause> {
        let mut copy = value.clone();
        let mut scratch = Outcome::default();
        let mut relaxed = sub.clone();
        if let Some(obj) = relaxed.as_object_mut() {
            obj.insert(
                "x-kubernetes-preserve-unknown-fields".into(),
                Value::Bool(true),
            );
        }
        walk(&relaxed, &mut copy, path, &mut scratch, false);
        scratch.causes
    };
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for sub in all {
            out.causes.extend(errors_for(sub));
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.is_empty()
    {
        let results: Vec<Vec<Cause>> = any.iter().map(errors_for).collect();
        if results.iter().all(|r| !r.is_empty()) {
            out.causes.extend(results.into_iter().flatten());
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
        && !one.is_empty()
    {
        let passing = one.iter().filter(|s| errors_for(s).is_empty()).count();
        if passing != 1 {
            invalid(
                out,
                path,
                value,
                "must validate one and only one schema (oneOf)".into(),
            );
        }
    }
    if let Some(not) = schema.get("not")
        && errors_for(not).is_empty()
    {
        invalid(
            out,
            path,
            value,
            "must not validate the schema (not)".into(),
        );
    }
}

#[cfg(test)]
mod tests;
