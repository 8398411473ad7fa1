//! Server-side apply and `metadata.managedFields`.
//!
//! Every write records which manager set which fields. An apply
//! (`application/apply-patch+yaml`) merges the applied configuration into
//! the object, answers 409 when it would change a field another manager
//! owns (unless `force`, which takes the field over), and removes fields
//! the manager applied before but no longer applies, when nobody else
//! owns them. Other writes (create, update, patch) move ownership of the
//! fields they change to their manager, as the real server does.
//!
//! A simplification of structured-merge-diff: conflicts are checked on
//! leaf values, and key fields of list items are compared as JSON.

pub mod fieldset;

use serde_json::{Map, Value, json};

use self::fieldset::{FieldSet, ListKind, Path, Shape};
use super::error::Cause;

/// Which part of an object a write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole object (no status subresource).
    All,
    /// Everything but `.status` (the main resource of a kind with status).
    NoStatus,
    /// `.status` only (the `/status` subresource).
    StatusOnly,
}

const SERVER_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

impl Scope {
    /// Whether `path` is tracked by writes of this scope.
    pub fn tracks(self, path: &[String]) -> bool {
        let Some(first) = path.first() else {
            return false;
        };
        if first == "f:apiVersion" || first == "f:kind" {
            return false;
        }
        if first == "f:metadata"
            && path
                .get(1)
                .is_some_and(|s| SERVER_META.iter().any(|m| s.strip_prefix("f:") == Some(*m)))
        {
            return false;
        }
        match self {
            Scope::All => true,
            Scope::NoStatus => first != "f:status",
            Scope::StatusOnly => first == "f:status",
        }
    }

    pub fn subresource(self) -> Option<&'static str> {
        (self == Scope::StatusOnly).then_some("status")
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, scope: Scope) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == scope.subresource()
    }
}

pub fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|e| {
                    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                    Entry {
                        manager: s("manager"),
                        operation: s("operation"),
                        api_version: s("apiVersion"),
                        time: s("time"),
                        subresource: e
                            .get("subresource")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        fields: e
                            .get("fieldsV1")
                            .map(fieldset::from_fields_v1)
                            .unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn store_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fieldset::to_fields_v1(&e.fields),
            });
            if let Some(sub) = &e.subresource {
                v["subresource"] = Value::String(sub.clone());
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

fn tracked(obj: &Value, shape: Shape<'_>, scope: Scope) -> FieldSet {
    fieldset::fields_of(obj, shape)
        .into_iter()
        .filter(|p| scope.tracks(p))
        .collect()
}

/// Who and what a write is, for recording ownership.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub time: &'a str,
    pub scope: Scope,
}

/// Records a non-apply write (create, update, patch) of `new` over `old`:
/// the writer owns what it changed; others lose it.
pub fn record_update(old: Option<&Value>, new: &mut Value, shape: Shape<'_>, writer: Writer<'_>) {
    // A client that rewrites managedFields (kubectl does when it moves an
    // object from client-side to server-side apply) is taken at its word.
    let rewritten = old.is_some_and(|o| {
        let given = new.pointer("/metadata/managedFields");
        given.is_some() && given != o.pointer("/metadata/managedFields")
    });
    let mut list = match old {
        Some(_) if rewritten => entries(new),
        Some(o) => entries(o),
        None => Vec::new(),
    };
    let new_set = tracked(new, shape, writer.scope);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| match old {
            Some(old) => fieldset::get(old, p) != fieldset::get(new, p),
            None => true,
        })
        .cloned()
        .collect();
    for entry in &mut list {
        entry
            .fields
            .retain(|p| !writer.scope.tracks(p) || (new_set.contains(p) && !changed.contains(p)));
    }
    if !changed.is_empty() {
        let position = list
            .iter()
            .position(|e| e.is(writer.manager, "Update", writer.scope));
        let entry = match position {
            Some(i) => &mut list[i],
            None => {
                list.push(Entry {
                    manager: writer.manager.to_owned(),
                    operation: "Update".into(),
                    api_version: writer.api_version.to_owned(),
                    time: String::new(),
                    subresource: writer.scope.subresource().map(str::to_owned),
                    fields: FieldSet::new(),
                });
                list.last_mut().expect("just pushed")
            }
        };
        entry.fields.extend(changed);
        entry.time = writer.time.to_owned();
        entry.api_version = writer.api_version.to_owned();
    }
    list.retain(|e| !e.fields.is_empty());
    store_entries(new, &list);
}

/// Whether an applied value is the one already there, as
/// structured-merge-diff compares them: numbers by value, so `1.0` sent
/// from YAML matches a stored `1` (a CRD's `minimum: 1.0` applied again by
/// `kubectl apply --server-side` or Helm is shared, not a conflict).
fn same_value(live: Option<&Value>, applied: Option<&Value>) -> bool {
    match (live, applied) {
        (Some(a), Some(b)) => same_json(a, b),
        (None, None) => true,
        _ => false,
    }
}

fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(u, v)| same_json(u, v))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, u)| y.get(k).is_some_and(|v| same_json(u, v)))
        }
        _ => a == b,
    }
}

/// Applies `applied` over `live` (absent for a create) for `writer`.
/// `Err` lists the conflicting fields when `force` is off.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    shape: Shape<'_>,
    writer: Writer<'_>,
    force: bool,
) -> Result<Value, Vec<Cause>> {
    let empty = Value::Object(Map::new());
    let live_obj = live.unwrap_or(&empty);
    let mut list = entries(live_obj);
    let applied_set = tracked(applied, shape, writer.scope);
    let mine = |e: &Entry| e.is(writer.manager, "Apply", writer.scope);
    let mut conflicts = Vec::new();
    for entry in list.iter().filter(|e| !mine(e)) {
        for path in entry.fields.intersection(&applied_set) {
            let leaf = path.last().is_some_and(|s| s.starts_with("f:"));
            if leaf && !same_value(fieldset::get(live_obj, path), fieldset::get(applied, path)) {
                conflicts.push((
                    entry.manager.clone(),
                    entry.api_version.clone(),
                    path.clone(),
                ));
            }
        }
    }
    if !conflicts.is_empty() {
        let force = force || upgrades_client_side_apply(live_obj, writer.manager, &conflicts);
        if !force {
            return Err(conflicts
                .into_iter()
                .map(|(manager, version, path)| {
                    Cause::new(
                        "FieldManagerConflict",
                        fieldset::display(&path),
                        format!("conflict with \"{manager}\" using {version}"),
                    )
                })
                .collect());
        }
        for entry in list.iter_mut().filter(|e| !mine(e)) {
            entry
                .fields
                .retain(|p| !conflicts.iter().any(|(_, _, c)| c == p));
        }
    }
    let previous: FieldSet = list
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut merged = live_obj.clone();
    merge(&mut merged, applied, shape, writer.scope);
    let others: Vec<&Path> = list
        .iter()
        .filter(|e| !mine(e))
        .flat_map(|e| e.fields.iter())
        .collect();
    // Shallowest first: an item that goes takes its fields with it (they
    // are its identity, so they must not go first).
    let mut removed: Vec<&Path> = previous.difference(&applied_set).collect();
    removed.sort_by_key(|p| p.len());
    let mut gone: Vec<&Path> = Vec::new();
    for path in removed {
        let inside_gone = gone.iter().any(|g| path.starts_with(g));
        let owned_elsewhere = others.iter().any(|o| o.starts_with(path));
        let still_applied = applied_set.iter().any(|a| a.starts_with(path));
        if !inside_gone && !owned_elsewhere && !still_applied {
            fieldset::remove(&mut merged, path);
            gone.push(path);
        }
    }
    list.retain(|e| !mine(e));
    list.push(Entry {
        manager: writer.manager.to_owned(),
        operation: "Apply".into(),
        api_version: writer.api_version.to_owned(),
        time: writer.time.to_owned(),
        subresource: writer.scope.subresource().map(str::to_owned),
        fields: applied_set,
    });
    list.retain(|e| !e.fields.is_empty());
    store_entries(&mut merged, &list);
    Ok(merged)
}

/// The real server lets `kubectl apply --server-side` take over fields a
/// client-side apply set without conflict, when their live values are
/// still those of the `last-applied-configuration` annotation.
fn upgrades_client_side_apply(
    live: &Value,
    manager: &str,
    conflicts: &[(String, String, Path)],
) -> bool {
    if manager != "kubectl" {
        return false;
    }
    let Some(last) = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return false;
    };
    conflicts.iter().all(|(_, _, path)| {
        let was = fieldset::get(&last, path);
        was.is_some() && was == fieldset::get(live, path)
    })
}

/// Merges an applied configuration: maps field by field, keyed lists item
/// by item, sets by union, everything else replaced.
fn merge(target: &mut Value, applied: &Value, shape: Shape<'_>, scope: Scope) {
    let (Some(target_map), Some(applied_map)) = (target.as_object_mut(), applied.as_object())
    else {
        *target = applied.clone();
        return;
    };
    if shape.atomic_map() {
        *target = applied.clone();
        return;
    }
    for (key, value) in applied_map {
        if key == "metadata" {
            // Server-owned metadata never comes from an applied config.
            if let Some(meta) = value.as_object() {
                let entry = target_map.entry(key.clone()).or_insert_with(|| json!({}));
                for (mk, mv) in meta {
                    if SERVER_META.contains(&mk.as_str()) && mk != "name" && mk != "namespace" {
                        continue;
                    }
                    let mut child = entry.get(mk).cloned().unwrap_or(Value::Null);
                    merge_value(&mut child, mv, shape.child(key).child(mk), mk, scope);
                    entry[mk.as_str()] = child;
                }
            }
            continue;
        }
        let child_shape = shape.child(key);
        match target_map.get_mut(key) {
            Some(existing) => merge_value(existing, value, child_shape, key, scope),
            None => {
                target_map.insert(key.clone(), value.clone());
            }
        }
    }
}

fn merge_value(target: &mut Value, applied: &Value, shape: Shape<'_>, name: &str, scope: Scope) {
    match (target.is_array(), applied) {
        (true, Value::Array(items)) => {
            let Some(existing) = target.as_array_mut() else {
                return;
            };
            match shape.list_kind(name, items) {
                ListKind::Atomic => *target = applied.clone(),
                ListKind::Set => {
                    for item in items {
                        if !existing.contains(item) {
                            existing.push(item.clone());
                        }
                    }
                }
                ListKind::Map(keys) => {
                    for item in items {
                        let id = fieldset::key_segment(item, &keys);
                        match existing
                            .iter_mut()
                            .find(|e| fieldset::key_segment(e, &keys) == id)
                        {
                            Some(e) => merge(e, item, shape.items(), scope),
                            None => existing.push(item.clone()),
                        }
                    }
                }
            }
        }
        (_, Value::Object(_)) if target.is_object() => merge(target, applied, shape, scope),
        _ => *target = applied.clone(),
    }
}

#[cfg(test)]
mod tests;
