//! PATCH: the patch is applied to the current object in the requested
//! version, and the result is written as an update would be; server-side
//! apply merges with field ownership and creates absent objects.

use serde_json::Value;

use super::super::apply::{self, Writer};
use super::super::error::{ApiError, ApiResult};
use super::super::patch;
use super::{
    State, Target, WriteParams, Written, check_kind, create_from, get, meta, now, replace_from,
};

/// The `Content-Type` of a PATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        Some(match essence {
            "application/merge-patch+json" => PatchType::Merge,
            "application/json-patch+json" => PatchType::Json,
            "application/strategic-merge-patch+json" => PatchType::Strategic,
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => PatchType::Apply,
            _ => return None,
        })
    }
}

fn unsupported_for_custom_resources() -> ApiError {
    ApiError::unsupported_media_type(
        "the body of the request was in an unknown format - accepted media types include: \
         application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
    )
}

/// PATCH on an object or its status.
pub fn patch(
    state: &mut State,
    target: &Target,
    name: &str,
    status: bool,
    kind: PatchType,
    body: &[u8],
    params: &WriteParams,
) -> ApiResult<Written> {
    if kind == PatchType::Apply {
        return apply(state, target, name, status, body, params);
    }
    if kind == PatchType::Strategic && target.ty.crd.is_some() {
        return Err(unsupported_for_custom_resources());
    }
    let patch_doc: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let old = get(state, target, name)?;
    let mut candidate = old.clone();
    match kind {
        PatchType::Merge => {
            if !patch_doc.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            patch::merge(&mut candidate, &patch_doc);
        }
        PatchType::Json => patch::json(&mut candidate, &patch_doc)?,
        PatchType::Strategic => patch::strategic(&mut candidate, &patch_doc),
        PatchType::Apply => unreachable!("handled above"),
    }
    check_kind(target, &mut candidate)?;
    if meta(&candidate, "name") != Some(name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta(&candidate, "name").unwrap_or("")
        )));
    }
    replace_from(state, target, old, candidate, status, params, false)
}

/// Server-side apply (`application/apply-patch+yaml`).
fn apply(
    state: &mut State,
    target: &Target,
    name: &str,
    status: bool,
    body: &[u8],
    params: &WriteParams,
) -> ApiResult<Written> {
    let mut applied: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !applied.is_object() {
        return Err(ApiError::bad_request(
            "error decoding YAML: the applied configuration must be an object",
        ));
    }
    for field in ["apiVersion", "kind"] {
        if applied
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            let missing = if field == "kind" {
                "Kind"
            } else {
                "apiVersion"
            };
            return Err(ApiError::bad_request(format!(
                "Object '{missing}' is missing in '{}'",
                String::from_utf8_lossy(body)
            )));
        }
    }
    check_kind(target, &mut applied)?;
    match meta(&applied, "name") {
        Some(given) if given != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
        _ => applied["metadata"]["name"] = Value::String(name.to_owned()),
    }
    if let Some(ns) = &target.namespace {
        match meta(&applied, "namespace") {
            Some(given) if given != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => applied["metadata"]["namespace"] = Value::String(ns.clone()),
        }
    }
    let live = get(state, target, name).ok();
    if live.is_none() && status {
        return Err(ApiError::not_found(&target.ty.gr(), name));
    }
    let time = now();
    let api_version = target.ty.api_version(&target.version);
    let writer = Writer {
        manager: &params.manager,
        api_version: &api_version,
        time: &time,
        scope: target.scope(status),
    };
    let merged = apply::apply(
        live.as_ref(),
        &applied,
        target.shape(),
        writer,
        params.force,
    )
    .map_err(|causes| ApiError::apply_conflict(&target.ty.gr(), name, causes))?;
    match live {
        None => create_from(state, target, merged, params, true),
        Some(live) => replace_from(state, target, live, merged, status, params, true),
    }
}
