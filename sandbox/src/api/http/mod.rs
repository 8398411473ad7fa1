//! The HTTP face: one handler parses the Kubernetes URL layout
//! (`/api/v1/namespaces/{ns}/{resource}/{name}/{subresource}`,
//! `/apis/{group}/{version}/…`, discovery and OpenAPI paths), applies
//! injected faults, and dispatches to `ops`, `watch`, `discovery`, `table`
//! and `openapi`. The same router serves sockets and in-process clients.

mod authz;
mod logs;
mod protobuf;
mod request;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::State as AxumState;
use axum::response::{IntoResponse, Response};
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use self::authz::{attributes, authorized};
use self::request::{
    Query, check_accept, decode_body, delete_options, field_manager, json_response, wants_table,
};
use super::Shared;
use super::auth::rbac::Attributes;
use super::auth::{authn, impersonation, reviews};
use super::discovery;
use super::error::{ApiError, ApiResult};
use super::faults::{Injected, Verb};
use super::openapi;
use super::ops::delete::Deleted;
use super::ops::patching::{PatchType, patch};
use super::ops::subresources::{bind, get_scale, write_scale};
use super::ops::{self, Target, WriteParams};
use super::selector::{FieldSelector, LabelSelector};
use super::table;
use super::watch::{self, WatchRequest};

/// The largest request body accepted, as the real server's 3 MiB.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// A resource URL, parsed.
#[derive(Debug, PartialEq)]
struct ResourcePath {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

#[derive(Debug, PartialEq)]
enum Route {
    Version,
    Health,
    Api,
    Apis,
    Group(String),
    GroupVersion(String, String),
    OpenApiV2,
    OpenApiV3Root,
    OpenApiV3(String),
    Resource(ResourcePath),
}

fn resource(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    let namespaced = rest.len() >= 3
        && rest[0] == "namespaces"
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (namespace, rest) = if namespaced {
        (Some(rest[1].to_owned()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.is_empty() || rest.len() > 3 {
        return None;
    }
    Some(Route::Resource(ResourcePath {
        group: group.to_owned(),
        version: version.to_owned(),
        namespace,
        plural: rest[0].to_owned(),
        name: rest.get(1).map(|s| (*s).to_owned()),
        sub: rest.get(2).map(|s| (*s).to_owned()),
    }))
}

fn route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => Some(Route::Version),
        ["healthz" | "livez" | "readyz"] => Some(Route::Health),
        ["openapi", "v2"] => Some(Route::OpenApiV2),
        ["openapi", "v3"] => Some(Route::OpenApiV3Root),
        ["openapi", "v3", rest @ ..] => Some(Route::OpenApiV3(rest.join("/"))),
        ["api"] => Some(Route::Api),
        ["api", v] => Some(Route::GroupVersion(String::new(), (*v).to_owned())),
        ["api", v, rest @ ..] => resource("", v, rest),
        ["apis"] => Some(Route::Apis),
        ["apis", g] => Some(Route::Group((*g).to_owned())),
        ["apis", g, v] => Some(Route::GroupVersion((*g).to_owned(), (*v).to_owned())),
        ["apis", g, v, rest @ ..] => resource(g, v, rest),
        _ => None,
    }
}

/// The axum handler behind every path.
pub async fn handle(AxumState(shared): AxumState<Arc<Shared>>, request: Request<Body>) -> Response {
    if shared.faults.is_unreachable() {
        return ApiError::unavailable("injected fault: the cluster is unreachable").into_response();
    }
    let latency = shared.faults.latency_now();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match serve(&shared, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn serve(shared: &Arc<Shared>, request: Request<Body>) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let user = {
        let state = shared.lock();
        let requester =
            authn::authenticate(&state, parts.headers.get(http::header::AUTHORIZATION))?;
        impersonation::acting_user(&state, requester, &parts.headers)?
    };
    let route = route(parts.uri.path());
    let attrs = attributes(
        &parts.method,
        parts.uri.path(),
        route.as_ref(),
        &Query::parse(parts.uri.query()),
    );
    authorized(shared, &user, &attrs)?;
    let route = route.ok_or_else(ApiError::no_route)?;
    let Route::Resource(path) = route else {
        if parts.method != Method::GET {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource: {}",
                parts.method
            )));
        }
        return non_resource(shared, route);
    };
    let query = Query::parse(parts.uri.query());
    let body = to_bytes(body, MAX_BODY).await.map_err(|e| {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("request body too large: {e}"),
        )
    })?;
    check_accept(&parts.headers)?;
    let target = {
        let state = shared.lock();
        let ty = state
            .registry
            .lookup(&path.group, &path.version, &path.plural)
            .ok_or_else(ApiError::no_route)?;
        if ty.namespaced != path.namespace.is_some()
            && (path.namespace.is_some() || path.name.is_some())
        {
            return Err(ApiError::no_route());
        }
        Target {
            ty,
            version: path.version.clone(),
            namespace: path.namespace.clone(),
        }
    };
    let verb = verb_of(&parts.method, &path, &query)?;
    if target.ty.review {
        if verb != Verb::Create || path.sub.is_some() {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource: {}",
                parts.method
            )));
        }
        let review = decode_body(&parts.headers, &body)?;
        let answer = reviews::answer(&shared.lock(), &user, &target.ty, &review)?;
        return Ok(json_response(StatusCode::CREATED, &answer, &[]));
    }
    if let Some(injected) = shared.faults.draw(verb) {
        return Err(match injected {
            Injected::InternalError => ApiError::internal("injected fault: internal error"),
            Injected::Unavailable => ApiError::unavailable(
                "injected fault: the server is currently unable to handle the request",
            ),
        });
    }
    let headers = &parts.headers;
    let table_mode = wants_table(headers).then(|| query.include_object());
    let params = || -> ApiResult<WriteParams> {
        Ok(WriteParams {
            dry_run: query.dry_run()?,
            manager: field_manager(&query, headers)?,
            validation: query.field_validation()?,
            force: query.flag("force"),
            user: Some(user.clone()),
        })
    };
    let selectors = || -> ApiResult<(LabelSelector, FieldSelector)> {
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        // A watch on a named object is a watch with a name selector.
        let mut field_selector = query.get("fieldSelector").unwrap_or("").to_owned();
        if let Some(name) = &path.name {
            if !field_selector.is_empty() {
                field_selector.push(',');
            }
            field_selector.push_str(&format!("metadata.name={name}"));
        }
        let fields = FieldSelector::parse(&field_selector, &target.ty.field_labels)
            .map_err(ApiError::bad_request)?;
        Ok((labels, fields))
    };
    let name = path.name.as_deref().unwrap_or("");
    let sub = path.sub.as_deref();
    match (verb, sub) {
        (Verb::Watch, _) => {
            let (labels, fields) = selectors()?;
            let timeout = query
                .int("timeoutSeconds")?
                .filter(|t| *t > 0)
                .map_or(Duration::from_secs(1800), |t| {
                    Duration::from_secs(t.unsigned_abs())
                });
            watch::start(
                shared,
                WatchRequest {
                    target,
                    labels,
                    fields,
                    resource_version: query.get("resourceVersion").map(str::to_owned),
                    bookmarks: query.flag("allowWatchBookmarks"),
                    send_initial_events: query.flag("sendInitialEvents"),
                    timeout,
                    table: table_mode,
                },
            )
        }
        (Verb::List, _) => {
            let (labels, fields) = selectors()?;
            let state = shared.lock();
            let (items, rv) = ops::list(&state, &target, &labels, &fields);
            drop(state);
            let body = match table_mode {
                Some(include) => {
                    table::table(&target.ty, &target.version, &items, Some(rv), include, true)
                }
                None => {
                    json!({"kind": target.ty.list_kind, "apiVersion": target.ty.api_version(&target.version),
                               "metadata": {"resourceVersion": rv.to_string()}, "items": items})
                }
            };
            Ok(json_response(StatusCode::OK, &body, &[]))
        }
        (Verb::Get, Some("log")) => {
            logs::serve(shared, &target, name, &query, crate::cluster::common::now())
        }
        (Verb::Get, Some("scale")) => {
            let scale = get_scale(&shared.lock(), &target, name)?;
            Ok(json_response(StatusCode::OK, &scale, &[]))
        }
        (Verb::Get, _) => {
            let obj = ops::get(&shared.lock(), &target, name)?;
            let body = match table_mode {
                Some(include) => {
                    table::table(&target.ty, &target.version, &[obj], None, include, true)
                }
                None => obj,
            };
            Ok(json_response(StatusCode::OK, &body, &[]))
        }
        (Verb::Create, Some("binding")) => {
            let binding = decode_body(headers, &body)?;
            let status = bind(&mut shared.lock(), &target, name, &binding)?;
            Ok(json_response(StatusCode::CREATED, &status, &[]))
        }
        (Verb::Create, _) => {
            let obj = decode_body(headers, &body)?;
            let written = ops::create(&mut shared.lock(), &target, obj, &params()?)?;
            Ok(json_response(
                StatusCode::CREATED,
                &written.object,
                &written.warnings,
            ))
        }
        (Verb::Update, Some("scale")) => {
            let scale = write_scale(&mut shared.lock(), &target, name, &body, None, &params()?)?;
            Ok(json_response(StatusCode::OK, &scale, &[]))
        }
        (Verb::Update, _) => {
            let obj = decode_body(headers, &body)?;
            let written = ops::update(
                &mut shared.lock(),
                &target,
                name,
                sub == Some("status"),
                obj,
                &params()?,
            )?;
            Ok(json_response(
                StatusCode::OK,
                &written.object,
                &written.warnings,
            ))
        }
        (Verb::Patch, _) => {
            let content_type = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchType::from_content_type(content_type).ok_or_else(|| {
                ApiError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format - accepted media types include: \
                     application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, \
                     application/strategic-merge-patch+json (got {content_type})"
                ))
            })?;
            let params = params()?;
            if kind == PatchType::Apply && query.get("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(
                    "PATCH /apply requires fieldManager to be set",
                ));
            }
            // An apply that would create the object needs `create` too.
            if kind == PatchType::Apply
                && sub.is_none()
                && ops::get(&shared.lock(), &target, name).is_err()
                && let Attributes::Resource(mut create) = attrs.clone()
            {
                create.verb = "create".into();
                authorized(shared, &user, &Attributes::Resource(create))?;
            }
            if sub == Some("scale") {
                let scale = write_scale(
                    &mut shared.lock(),
                    &target,
                    name,
                    &body,
                    Some(kind),
                    &params,
                )?;
                return Ok(json_response(StatusCode::OK, &scale, &[]));
            }
            let written = patch(
                &mut shared.lock(),
                &target,
                name,
                sub == Some("status"),
                kind,
                &body,
                &params,
            )?;
            let code = if written.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &written.object, &written.warnings))
        }
        (Verb::Delete, _) if path.name.is_none() => {
            delete_collection(shared, &target, &query, headers, &body, selectors()?)
        }
        (Verb::Delete, _) => {
            let options = delete_options(&query, headers, &body)?;
            let deleted = ops::delete::delete(&mut shared.lock(), &target, name, &options)?;
            Ok(match deleted {
                Deleted::Pending(obj) => json_response(StatusCode::ACCEPTED, &obj, &[]),
                Deleted::Gone(obj) => {
                    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": name, "group": target.ty.group, "kind": target.ty.plural,
                                    "uid": obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null)}});
                    json_response(StatusCode::OK, &status, &[])
                }
            })
        }
    }
}

fn verb_of(method: &Method, path: &ResourcePath, query: &Query) -> ApiResult<Verb> {
    let not_allowed = || {
        ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource: {method}"
        ))
    };
    let sub = path.sub.as_deref();
    if let Some(sub) = sub {
        let known = match sub {
            "status" => true,
            "scale" => true,
            "binding" | "log" => path.plural == "pods" && path.group.is_empty(),
            _ => false,
        };
        if !known {
            return Err(ApiError::no_route());
        }
        if (sub == "binding" && *method != Method::POST) || (sub == "log" && *method != Method::GET)
        {
            return Err(not_allowed());
        }
    }
    Ok(match (method, path.name.is_some()) {
        (&Method::GET, false) if query.flag("watch") => Verb::Watch,
        (&Method::GET, false) => Verb::List,
        (&Method::GET, true) if query.flag("watch") => Verb::Watch,
        (&Method::GET, true) => Verb::Get,
        (&Method::POST, false) => Verb::Create,
        (&Method::POST, true) if sub == Some("binding") => Verb::Create,
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch,
        (&Method::DELETE, _) if sub.is_none() => Verb::Delete,
        _ => return Err(not_allowed()),
    })
}

fn delete_collection(
    shared: &Arc<Shared>,
    target: &Target,
    query: &Query,
    headers: &http::HeaderMap,
    body: &[u8],
    (labels, fields): (LabelSelector, FieldSelector),
) -> ApiResult<Response> {
    let options = delete_options(query, headers, body)?;
    let mut state = shared.lock();
    let (items, _) = ops::list(&state, target, &labels, &fields);
    let mut deleted = Vec::new();
    for item in items {
        let name = ops::meta(&item, "name").unwrap_or_default().to_owned();
        let mut one = target.clone();
        one.namespace = ops::meta(&item, "namespace").map(str::to_owned);
        match ops::delete::delete(&mut state, &one, &name, &options) {
            Ok(Deleted::Gone(obj) | Deleted::Pending(obj)) => deleted.push(obj),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let rv = state.store.current_rv();
    let body = json!({"kind": target.ty.list_kind, "apiVersion": target.ty.api_version(&target.version),
                      "metadata": {"resourceVersion": rv.to_string()}, "items": deleted});
    Ok(json_response(StatusCode::OK, &body, &[]))
}

fn non_resource(shared: &Arc<Shared>, route: Route) -> ApiResult<Response> {
    let state = shared.lock();
    let body = match route {
        Route::Version => discovery::version(),
        Route::Health => return Ok((StatusCode::OK, "ok").into_response()),
        Route::Api => discovery::api_versions("127.0.0.1:443"),
        Route::Apis => discovery::group_list(&state.registry),
        Route::Group(g) => discovery::group(&state.registry, &g).ok_or_else(ApiError::no_route)?,
        Route::GroupVersion(g, v) => {
            discovery::resource_list(&state.registry, &g, &v).ok_or_else(ApiError::no_route)?
        }
        // kubectl uses v3; v2 would have to be protobuf for it.
        Route::OpenApiV2 => return Err(ApiError::no_route()),
        Route::OpenApiV3Root => openapi::v3_root(&state.registry),
        Route::OpenApiV3(gv) => {
            openapi::v3_group_version(&state.registry, &gv).ok_or_else(ApiError::no_route)?
        }
        Route::Resource(_) => return Err(ApiError::no_route()),
    };
    Ok(json_response(StatusCode::OK, &body, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(
        group: &str,
        ns: Option<&str>,
        plural: &str,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Option<Route> {
        Some(Route::Resource(ResourcePath {
            group: group.into(),
            version: "v1".into(),
            namespace: ns.map(Into::into),
            plural: plural.into(),
            name: name.map(Into::into),
            sub: sub.map(Into::into),
        }))
    }

    #[test]
    fn urls_parse_as_the_kubernetes_layout() {
        assert_eq!(
            route("/api/v1/namespaces"),
            path("", None, "namespaces", None, None)
        );
        assert_eq!(
            route("/api/v1/namespaces/default"),
            path("", None, "namespaces", Some("default"), None)
        );
        assert_eq!(
            route("/api/v1/namespaces/x/status"),
            path("", None, "namespaces", Some("x"), Some("status"))
        );
        assert_eq!(
            route("/api/v1/namespaces/x/pods"),
            path("", Some("x"), "pods", None, None)
        );
        assert_eq!(
            route("/api/v1/namespaces/x/pods/p/binding"),
            path("", Some("x"), "pods", Some("p"), Some("binding"))
        );
        assert_eq!(
            route("/apis/apps/v1/deployments"),
            path("apps", None, "deployments", None, None)
        );
        assert_eq!(route("/apis/apps"), Some(Route::Group("apps".into())));
        assert_eq!(
            route("/openapi/v3/apis/apps/v1"),
            Some(Route::OpenApiV3("apis/apps/v1".into()))
        );
        assert_eq!(route("/nope"), None);
    }
}
