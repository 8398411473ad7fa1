//! The write pipeline: create, update (and the replace step patches and
//! applies share), and `finish`, which every write ends with — status kept
//! apart from spec, server-owned metadata kept, defaulting, validation,
//! managed fields, `generation`, no-op detection, finalizers, the store.

use serde_json::{Value, json};

use super::super::admission;
use super::super::apply::{self, Scope, Writer};
use super::super::convert::{to_storage, to_view};
use super::super::error::{ApiError, ApiResult, Cause};
use super::super::validation;
use super::{
    FieldValidation, State, Target, WriteParams, Written, builtin, check_kind, check_namespace,
    delete, finalizers, get, hooks, meta, meta_mut, now,
};

/// POST: creates an object.
pub fn create(
    state: &mut State,
    target: &Target,
    body: Value,
    params: &WriteParams,
) -> ApiResult<Written> {
    create_from(state, target, body, params, false)
}

/// Creates `body`; `applied` when server-side apply already recorded its
/// managed fields.
pub(crate) fn create_from(
    state: &mut State,
    target: &Target,
    mut body: Value,
    params: &WriteParams,
    applied: bool,
) -> ApiResult<Written> {
    check_kind(target, &mut body)?;
    let ns = check_namespace(state, target, &mut body)?;
    if meta(&body, "resourceVersion").is_some() {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let name = match (meta(&body, "name"), meta(&body, "generateName")) {
        (Some(name), _) => name.to_owned(),
        (None, Some(prefix)) => {
            let prefix = prefix.to_owned();
            let mut name = format!("{prefix}{}", state.random_suffix());
            while state
                .store
                .get(&target.ty.storage, &(ns.clone(), name.clone()))
                .is_some()
            {
                name = format!("{prefix}{}", state.random_suffix());
            }
            name
        }
        (None, None) => {
            return Err(ApiError::invalid(
                &target.ty.kind,
                &target.ty.group,
                "",
                vec![Cause::new(
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )],
            ));
        }
    };
    let name_causes = builtin::name_causes(&target.ty, &name);
    if !name_causes.is_empty() {
        return Err(ApiError::invalid(
            &target.ty.kind,
            &target.ty.group,
            &name,
            name_causes,
        ));
    }
    if state
        .store
        .get(&target.ty.storage, &(ns.clone(), name.clone()))
        .is_some()
    {
        return Err(ApiError::already_exists(&target.ty.gr(), &name));
    }
    let scope = target.scope(false);
    let mut obj = body;
    {
        let m = meta_mut(&mut obj);
        m.insert("name".into(), Value::String(name));
        m.insert(
            "uid".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        m.insert("creationTimestamp".into(), Value::String(now()));
        for field in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ] {
            m.remove(field);
        }
    }
    // Status is the controllers' to write, except on a Node (the kubelet
    // registers its node with status).
    if scope == Scope::NoStatus
        && target.ty.plural != "nodes"
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
    finish(state, target, None, obj, scope, params, applied)
}

/// PUT: replaces an object (or its status).
pub fn update(
    state: &mut State,
    target: &Target,
    name: &str,
    status: bool,
    mut body: Value,
    params: &WriteParams,
) -> ApiResult<Written> {
    check_kind(target, &mut body)?;
    let old = get(state, target, name)?;
    if let Some(given) = meta(&body, "name")
        && given != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        )));
    }
    meta_mut(&mut body).insert("name".into(), Value::String(name.to_owned()));
    check_namespace(state, target, &mut body)?;
    if let Some(rv) = meta(&body, "resourceVersion")
        && Some(rv) != meta(&old, "resourceVersion")
    {
        return Err(ApiError::stale(&target.ty.gr(), name));
    }
    replace_from(state, target, old, body, status, params, false)
}

/// Shared by update and patch: `candidate` replaces `old` (both in the
/// requested version).
pub(crate) fn replace_from(
    state: &mut State,
    target: &Target,
    old: Value,
    mut candidate: Value,
    status: bool,
    params: &WriteParams,
    applied: bool,
) -> ApiResult<Written> {
    let name = meta(&old, "name").unwrap_or_default().to_owned();
    if let Some(rv) = meta(&candidate, "resourceVersion")
        && Some(rv) != meta(&old, "resourceVersion")
    {
        return Err(ApiError::stale(&target.ty.gr(), &name));
    }
    let scope = target.scope(status);
    match scope {
        Scope::StatusOnly => {
            let mut next = old.clone();
            match candidate.get("status") {
                Some(s) => next["status"] = s.clone(),
                None => {
                    next.as_object_mut().map(|m| m.remove("status"));
                }
            }
            if applied {
                next["metadata"]["managedFields"] = candidate
                    .pointer("/metadata/managedFields")
                    .cloned()
                    .unwrap_or(json!([]));
            }
            candidate = next;
        }
        Scope::NoStatus => match old.get("status") {
            Some(s) => candidate["status"] = s.clone(),
            None => {
                candidate.as_object_mut().map(|m| m.remove("status"));
            }
        },
        Scope::All => {}
    }
    {
        let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
        let m = meta_mut(&mut candidate);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(field) {
                Some(v) => m.insert(field.into(), v.clone()),
                None => m.remove(field),
            };
        }
    }
    if meta(&old, "deletionTimestamp").is_some() {
        let before = finalizers(&old);
        let added: Vec<String> = finalizers(&candidate)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            return Err(ApiError::invalid(
                &target.ty.kind,
                &target.ty.group,
                &name,
                vec![Cause::new(
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                    ),
                )],
            ));
        }
    }
    finish(state, target, Some(old), candidate, scope, params, applied)
}

/// The steps every write ends with. `old` and `candidate` are in the
/// requested version.
fn finish(
    state: &mut State,
    target: &Target,
    old: Option<Value>,
    mut candidate: Value,
    scope: Scope,
    params: &WriteParams,
    applied: bool,
) -> ApiResult<Written> {
    let ty = &target.ty;
    let name = meta(&candidate, "name").unwrap_or_default().to_owned();
    let mut warnings = Vec::new();
    let mut causes = Vec::new();
    if ty.crd.is_none() {
        builtin::defaults(ty, &mut candidate);
        causes.extend(builtin::validate(ty, &candidate));
    }
    if let Some(schema) = target.schema() {
        let outcome = validation::check(schema, &mut candidate);
        causes.extend(outcome.causes);
        if !outcome.unknown.is_empty() {
            match params.validation {
                FieldValidation::Strict => {
                    let fields: Vec<String> = outcome
                        .unknown
                        .iter()
                        .map(|f| format!("unknown field \"{}\"", f.trim_start_matches('.')))
                        .collect();
                    return Err(ApiError::bad_request(format!(
                        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                        fields.join(", "),
                        kind = ty.kind,
                        version = target.version,
                    )));
                }
                FieldValidation::Warn => {
                    warnings.extend(
                        outcome
                            .unknown
                            .iter()
                            .map(|f| format!("unknown field \"{}\"", f.trim_start_matches('.'))),
                    );
                }
                FieldValidation::Ignore => {}
            }
        }
    }
    hooks::before_write(state, target, old.as_ref(), &mut candidate, &mut causes);
    if !causes.is_empty() {
        return Err(ApiError::invalid(&ty.kind, &ty.group, &name, causes));
    }
    warnings.extend(admission::admit(
        state,
        target,
        old.as_ref(),
        &candidate,
        scope == Scope::StatusOnly,
        params.user.as_ref(),
    )?);
    if !applied {
        let now = now();
        let writer = Writer {
            manager: &params.manager,
            api_version: &ty.api_version(&target.version),
            time: &now,
            scope,
        };
        apply::record_update(old.as_ref(), &mut candidate, target.shape(), writer);
    }
    // The kinds whose registry strategy sets generation 1 on create and
    // raises it with the spec, as kube-apiserver's do.
    let tracks_generation = ty.crd.is_some()
        || matches!(
            ty.group.as_str(),
            "apps"
                | "policy"
                | "apiextensions.k8s.io"
                | "networking.k8s.io"
                | "admissionregistration.k8s.io"
        );
    if tracks_generation {
        let generation = match &old {
            None => 1,
            Some(old) => {
                let current = old
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                if spec_of(old, ty.has_status(&target.version))
                    == spec_of(&candidate, ty.has_status(&target.version))
                {
                    current
                } else {
                    current + 1
                }
            }
        };
        meta_mut(&mut candidate).insert("generation".into(), json!(generation));
    }
    let key = target.key(&name);
    if let Some(old) = &old
        && without_volatile(old) == without_volatile(&candidate)
    {
        return Ok(Written {
            object: old.clone(),
            created: false,
            warnings,
        });
    }
    if params.dry_run {
        return Ok(Written {
            object: candidate,
            created: old.is_none(),
            warnings,
        });
    }
    let stored = to_storage(ty, candidate);
    if delete::finished(&stored) {
        let removed = delete::remove_now(state, &ty.storage, &key)
            .ok_or_else(|| ApiError::not_found(&ty.gr(), &name))?;
        return Ok(Written {
            object: to_view(ty, &target.version, removed),
            created: false,
            warnings,
        });
    }
    let written = state.store.put(&ty.storage, key.clone(), stored);
    hooks::after_write(state, target, &written);
    let object = to_view(ty, &target.version, written);
    if old.is_none() {
        delete::collect_if_orphaned(state, &ty.storage, &key);
    }
    Ok(Written {
        object,
        created: old.is_none(),
        warnings,
    })
}

/// What `generation` tracks: everything but metadata (and status, when it
/// is a subresource).
fn spec_of(obj: &Value, status_apart: bool) -> Value {
    let mut copy = obj.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("apiVersion");
        map.remove("kind");
        if status_apart {
            map.remove("status");
        }
    }
    copy
}

/// An object without what changes on every write, for spotting no-ops.
fn without_volatile(obj: &Value) -> Value {
    let mut copy = obj.clone();
    if let Some(m) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        if let Some(fields) = m.get_mut("managedFields").and_then(Value::as_array_mut) {
            for f in fields {
                if let Some(f) = f.as_object_mut() {
                    f.remove("time");
                }
            }
        }
    }
    copy
}
