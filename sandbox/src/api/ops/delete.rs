//! Deletion and what follows it, done inline where the real server has
//! controllers: finalizers keep an object (with `deletionTimestamp` set)
//! until they are gone; pods bound to a node terminate gracefully until
//! their kubelet deletes them with a zero grace period; the garbage
//! collector deletes dependents whose owners are all gone (background),
//! waits for them (foreground) or unlinks them (orphan); a namespace
//! empties before it goes; a CRD takes its custom resources with it.

use std::collections::VecDeque;

use serde_json::{Value, json};

use super::super::convert::to_view;
use super::super::error::{ApiError, ApiResult};
use super::super::registry::{self, GroupResource};
use super::super::store::{ObjectKey, owner_uids, uid_of};
use super::hooks::CRD_CLEANUP_FINALIZER;
use super::{State, Target, finalizers, meta, now};

/// `propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

/// `DeleteOptions` as far as they are honoured.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Propagation,
    pub grace_period: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

/// The object is gone, or still there being deleted.
#[derive(Debug)]
pub enum Deleted {
    Gone(Value),
    Pending(Value),
}

const FOREGROUND: &str = "foregroundDeletion";
const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

fn namespaces() -> GroupResource {
    GroupResource::new("", "namespaces")
}

fn crds() -> GroupResource {
    GroupResource::new("apiextensions.k8s.io", "customresourcedefinitions")
}

enum Work {
    Delete(GroupResource, ObjectKey),
    Removed(GroupResource, Value),
}

/// Whether an updated object has nothing left holding its deletion.
pub fn finished(obj: &Value) -> bool {
    let namespace_held = obj
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
        && obj.get("kind").and_then(Value::as_str) == Some("Namespace");
    meta(obj, "deletionTimestamp").is_some()
        && finalizers(obj).is_empty()
        && !namespace_held
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
}

/// DELETE on one object.
pub fn delete(
    state: &mut State,
    target: &Target,
    name: &str,
    options: &DeleteOptions,
) -> ApiResult<Deleted> {
    let gr = target.ty.storage.clone();
    let key = target.key(name);
    let obj = state
        .store
        .get(&gr, &key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&target.ty.gr(), name))?;
    if let Some(uid) = &options.precondition_uid
        && uid != uid_of(&obj)
    {
        return Err(ApiError::conflict(
            &target.ty.gr(),
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                uid_of(&obj)
            ),
        ));
    }
    if let Some(rv) = &options.precondition_rv
        && Some(rv.as_str()) != meta(&obj, "resourceVersion")
    {
        return Err(ApiError::conflict(
            &target.ty.gr(),
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta(&obj, "resourceVersion").unwrap_or("")
            ),
        ));
    }
    if gr == namespaces() && PROTECTED_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(
            &gr,
            name,
            "this namespace may not be deleted",
        ));
    }
    let view = |v: Value| to_view(&target.ty, &target.version, v);
    if options.dry_run {
        return Ok(if finalizers(&obj).is_empty() {
            Deleted::Gone(view(obj))
        } else {
            Deleted::Pending(view(obj))
        });
    }
    let mut queue = VecDeque::new();
    let outcome = delete_one(
        state,
        &gr,
        &key,
        options.propagation,
        options.grace_period,
        &mut queue,
    );
    run(state, queue);
    Ok(match outcome {
        Some((true, obj)) => Deleted::Gone(view(obj)),
        Some((false, obj)) => Deleted::Pending(view(obj)),
        None => Deleted::Gone(view(obj)),
    })
}

/// Removes an object whose last finalizer went, and cascades.
pub fn remove_now(state: &mut State, gr: &GroupResource, key: &ObjectKey) -> Option<Value> {
    let removed = state.store.remove(gr, key)?;
    run(
        state,
        VecDeque::from([Work::Removed(gr.clone(), removed.clone())]),
    );
    Some(removed)
}

/// A new object whose owners are all gone is collected at once.
pub fn collect_if_orphaned(state: &mut State, gr: &GroupResource, key: &ObjectKey) {
    let Some(obj) = state.store.get(gr, key) else {
        return;
    };
    let owners = owner_uids(obj);
    if !owners.is_empty() && owners.iter().all(|u| state.store.by_uid(u).is_none()) {
        run(
            state,
            VecDeque::from([Work::Delete(gr.clone(), key.clone())]),
        );
    }
}

fn run(state: &mut State, mut queue: VecDeque<Work>) {
    while let Some(work) = queue.pop_front() {
        match work {
            Work::Delete(gr, key) => {
                delete_one(state, &gr, &key, Propagation::Background, None, &mut queue);
            }
            Work::Removed(gr, obj) => after_removal(state, &gr, &obj, &mut queue),
        }
    }
}

fn put(state: &mut State, gr: &GroupResource, key: &ObjectKey, obj: Value) -> Value {
    state.store.put(gr, key.clone(), obj)
}

/// Marks or removes one object; `(gone, object)`.
fn delete_one(
    state: &mut State,
    gr: &GroupResource,
    key: &ObjectKey,
    propagation: Propagation,
    grace: Option<i64>,
    queue: &mut VecDeque<Work>,
) -> Option<(bool, Value)> {
    let mut obj = state.store.get(gr, key)?.clone();
    let terminating = meta(&obj, "deletionTimestamp").is_some();
    if *gr == namespaces() {
        if !terminating {
            obj["metadata"]["deletionTimestamp"] = json!(now());
            obj["status"] = json!({"phase": "Terminating"});
            obj = put(state, gr, key, obj);
        }
        for (content_gr, content_key) in state.store.namespace_contents(&key.1) {
            queue.push_back(Work::Delete(content_gr, content_key));
        }
        check_namespace(state, &key.1, queue);
        return Some((state.store.get(gr, key).is_none(), obj));
    }
    if *gr == crds() && !terminating {
        obj["metadata"]["deletionTimestamp"] = json!(now());
        obj = put(state, gr, key, obj);
        if let Ok(ty) = registry::from_crd(&obj) {
            for instance in state.store.list(&ty.storage, None) {
                let ns = meta(instance, "namespace").unwrap_or("").to_owned();
                let name = meta(instance, "name").unwrap_or("").to_owned();
                queue.push_back(Work::Delete(ty.storage.clone(), (ns, name)));
            }
            check_crd(state, &ty.storage, queue);
        }
        return Some((state.store.get(gr, key).is_none(), obj));
    }
    if gr.group.is_empty() && gr.resource == "pods" {
        let bound = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let phase = obj
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        let default = obj
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        let grace = if bound && !matches!(phase, "Succeeded" | "Failed") {
            grace.unwrap_or(default).max(0)
        } else {
            0
        };
        let current = obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        if grace > 0 {
            if current.is_none_or(|c| grace < c) {
                let at = super::utc_now() + chrono::Duration::seconds(grace);
                obj["metadata"]["deletionTimestamp"] =
                    json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                obj = put(state, gr, key, obj);
            }
            return Some((false, obj));
        }
        if current.is_some_and(|c| c > 0) {
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
    }
    let dependents = state.store.dependents_of(uid_of(&obj));
    match propagation {
        Propagation::Orphan => {
            for dep in dependents {
                unlink(state, &dep, uid_of(&obj));
            }
        }
        Propagation::Foreground if !dependents.is_empty() => {
            let mut list = finalizers(&obj);
            if !list.iter().any(|f| f == FOREGROUND) {
                list.push(FOREGROUND.into());
            }
            obj["metadata"]["finalizers"] = json!(list);
            if !terminating {
                obj["metadata"]["deletionTimestamp"] = json!(now());
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            }
            obj = put(state, gr, key, obj);
            for dep in dependents {
                if let Some((dep_gr, dep_key)) = state.store.by_uid(&dep).cloned() {
                    queue.push_back(Work::Delete(dep_gr, dep_key));
                }
            }
            return Some((false, obj));
        }
        _ => {}
    }
    if !finalizers(&obj).is_empty() {
        if !terminating || obj.pointer("/metadata/deletionGracePeriodSeconds") != Some(&json!(0)) {
            if !terminating {
                obj["metadata"]["deletionTimestamp"] = json!(now());
            }
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            obj = put(state, gr, key, obj);
        }
        return Some((false, obj));
    }
    let removed = state.store.remove(gr, key)?;
    queue.push_back(Work::Removed(gr.clone(), removed.clone()));
    Some((true, removed))
}

/// Drops `owner` from a dependent's `ownerReferences`.
fn unlink(state: &mut State, dependent: &str, owner: &str) {
    let Some((gr, key)) = state.store.by_uid(dependent).cloned() else {
        return;
    };
    let Some(mut obj) = state.store.get(&gr, &key).cloned() else {
        return;
    };
    if let Some(refs) = obj
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    {
        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner));
        if refs.is_empty()
            && let Some(m) = obj["metadata"].as_object_mut()
        {
            m.remove("ownerReferences");
        }
    }
    put(state, &gr, &key, obj);
}

fn after_removal(state: &mut State, gr: &GroupResource, obj: &Value, queue: &mut VecDeque<Work>) {
    let uid = uid_of(obj).to_owned();
    for dep in state.store.dependents_of(&uid) {
        let Some((dep_gr, dep_key)) = state.store.by_uid(&dep).cloned() else {
            continue;
        };
        let Some(dep_obj) = state.store.get(&dep_gr, &dep_key) else {
            continue;
        };
        let other_owner_alive = owner_uids(dep_obj)
            .iter()
            .any(|o| *o != uid && state.store.by_uid(o).is_some());
        if other_owner_alive {
            unlink(state, &dep, &uid);
        } else {
            queue.push_back(Work::Delete(dep_gr, dep_key));
        }
    }
    for owner in owner_uids(obj) {
        let Some((owner_gr, owner_key)) = state.store.by_uid(&owner).cloned() else {
            continue;
        };
        let Some(mut owner_obj) = state.store.get(&owner_gr, &owner_key).cloned() else {
            continue;
        };
        let mut list = finalizers(&owner_obj);
        if list.iter().any(|f| f == FOREGROUND) && state.store.dependents_of(&owner).is_empty() {
            list.retain(|f| f != FOREGROUND);
            if list.is_empty() {
                if let Some(removed) = state.store.remove(&owner_gr, &owner_key) {
                    queue.push_back(Work::Removed(owner_gr, removed));
                }
            } else {
                owner_obj["metadata"]["finalizers"] = json!(list);
                put(state, &owner_gr, &owner_key, owner_obj);
            }
        }
    }
    if let Some(ns) = meta(obj, "namespace") {
        let ns = ns.to_owned();
        check_namespace(state, &ns, queue);
    }
    let crd_name = state.registry.get(gr).and_then(|ty| ty.crd.clone());
    if crd_name.is_some() {
        check_crd(state, gr, queue);
    }
    if *gr == crds()
        && let (Some(group), Some(plural)) = (
            obj.pointer("/spec/group").and_then(Value::as_str),
            obj.pointer("/spec/names/plural").and_then(Value::as_str),
        )
    {
        state.registry.remove(&GroupResource::new(group, plural));
    }
}

/// A terminating namespace goes once nothing is left in it.
fn check_namespace(state: &mut State, ns: &str, queue: &mut VecDeque<Work>) {
    let key = (String::new(), ns.to_owned());
    let Some(obj) = state.store.get(&namespaces(), &key) else {
        return;
    };
    if meta(obj, "deletionTimestamp").is_none() || !state.store.namespace_contents(ns).is_empty() {
        return;
    }
    let mut obj = obj.clone();
    if finalizers(&obj).is_empty() {
        if let Some(removed) = state.store.remove(&namespaces(), &key) {
            queue.push_back(Work::Removed(namespaces(), removed));
        }
    } else if obj
        .pointer("/spec/finalizers")
        .is_some_and(|f| f != &json!([]))
    {
        obj["spec"]["finalizers"] = json!([]);
        put(state, &namespaces(), &key, obj);
    }
}

/// A terminating CRD goes once its last custom resource has.
fn check_crd(state: &mut State, resource: &GroupResource, queue: &mut VecDeque<Work>) {
    if state.store.count(resource) > 0 {
        return;
    }
    let key = (
        String::new(),
        format!("{}.{}", resource.resource, resource.group),
    );
    let Some(crd) = state.store.get(&crds(), &key) else {
        return;
    };
    if meta(crd, "deletionTimestamp").is_none() {
        return;
    }
    let mut crd = crd.clone();
    let mut list = finalizers(&crd);
    list.retain(|f| f != CRD_CLEANUP_FINALIZER);
    if list.is_empty() {
        if let Some(removed) = state.store.remove(&crds(), &key) {
            queue.push_back(Work::Removed(crds(), removed));
        }
    } else {
        crd["metadata"]["finalizers"] = json!(list);
        put(state, &crds(), &key, crd);
    }
}
