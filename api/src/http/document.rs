//! What the OpenAPI document says about every operation at once: the
//! answers the shared machinery gives before or around a handler, declared
//! here once rather than in each `#[utoipa::path]`.
//!
//! [`CommonProblems`] walks every operation of the finished document and
//! adds, each as a problem document (`application/problem+json`):
//!
//! - **401** on secured operations: no token, or one the hub refuses
//!   ([`super::auth`]), with `WWW-Authenticate: Bearer`; and **403** there
//!   too: a person who must choose a new password (`password-change-required`)
//!   or use a second factor they have not enrolled (`second-factor-required`)
//!   may only do that, look at their own account and sign out;
//! - **400, 413, 415, 422** on operations with a JSON body: not JSON, larger
//!   than `--max-body-bytes`, not `application/json`, or not a JSON object of
//!   the request's shape ([`super::extract::ApiJson`]);
//! - **400** on operations with query parameters: one missing, unknown or of
//!   the wrong type, or a value the handler refuses, such as a page `limit`
//!   out of range ([`super::extract::ApiQuery`], [`super::page`]);
//! - **400, 404** on operations with path parameters: a segment that is not
//!   UTF-8, and an id that names nothing the caller may see
//!   ([`super::extract::parse_id`]);
//! - **404** on operations that take a `tenant` (a query parameter or a
//!   member of the JSON body): one the caller may not see is not found, as
//!   if it did not exist ([`crate::service::Caller::tenant`], the store's
//!   scope);
//! - the `Idempotency-Key` header on secured POST operations, which is where
//!   [`super::layers::idempotency`] honours it, with what it answers: **400** (a key
//!   that is not 1 to 255 visible ASCII characters), **409** (the first
//!   request with the key still running), **413** (it reads the body) and
//!   **422** (the key was used for a different request);
//! - **429** on secured operations, with `Retry-After`: the client
//!   address sent too many refused credentials
//!   ([`crate::service::throttle`]); `POST /sessions` declares its own;
//! - **500** and **503** on all: a failure inside the hub (quote the request
//!   id), and something it depends on (the database, a cluster) unavailable.
//!
//! A status a handler declares itself is kept as it is; only a missing
//! description is filled in, naming the handler's reasons and these. Every
//! response gets a description, which OpenAPI requires.

use std::collections::{BTreeMap, BTreeSet};

use http::StatusCode;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, Ref, RefOr, Required};

use super::error::PROBLEM_JSON;
use super::layers::idempotency::IDEMPOTENCY_KEY_MAX_LEN;

/// The name of the problem document's schema in the components.
const PROBLEM_SCHEMA: &str = "Problem";

/// Where the document's schemas are.
const SCHEMAS: &str = "#/components/schemas/";

/// The parameter or body member that names the tenant an operation acts on.
const TENANT: &str = "tenant";

/// The header [`super::layers::idempotency`] reads, as the document spells it.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// Declares on every operation the statuses the shared machinery answers
/// (see the module's documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct CommonProblems;

/// What one operation takes, which decides what can go wrong with it.
#[derive(Debug, Clone, Copy)]
struct Shape {
    secured: bool,
    json_body: bool,
    query: bool,
    path: bool,
    /// Names a tenant, in the query or the body.
    tenant: bool,
    idempotent_post: bool,
}

impl utoipa::Modify for CommonProblems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // The request types that name a tenant.
        let with_tenant: BTreeSet<String> = openapi
            .components
            .iter()
            .flat_map(|c| &c.schemas)
            .filter(|(_, schema)| {
                serde_json::to_value(schema).is_ok_and(|s| s["properties"].get(TENANT).is_some())
            })
            .map(|(name, _)| format!("{SCHEMAS}{name}"))
            .collect();
        for item in openapi.paths.paths.values_mut() {
            let shared: Vec<Parameter> = item
                .parameters
                .iter()
                .flatten()
                .filter_map(|p| match p {
                    RefOr::T(p) => Some(p.clone()),
                    RefOr::Ref(_) => None,
                })
                .collect();
            for (is_post, operation) in operations(item) {
                declare(operation, &shared, &with_tenant, is_post);
            }
        }
    }
}

/// Every operation of a path item, each with whether it is a POST.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (bool, &mut Operation)> {
    [
        (false, item.get.as_mut()),
        (false, item.put.as_mut()),
        (true, item.post.as_mut()),
        (false, item.delete.as_mut()),
        (false, item.options.as_mut()),
        (false, item.head.as_mut()),
        (false, item.patch.as_mut()),
        (false, item.trace.as_mut()),
        (false, item.query.as_mut()),
    ]
    .into_iter()
    .filter_map(|(is_post, op)| op.map(|op| (is_post, op)))
}

fn shape(
    operation: &Operation,
    shared: &[Parameter],
    with_tenant: &BTreeSet<String>,
    is_post: bool,
) -> Shape {
    let parameters: Vec<&Parameter> = operation
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some(p),
            RefOr::Ref(_) => None,
        })
        .chain(shared)
        .collect();
    let within = |place: ParameterIn| parameters.iter().any(|p| p.parameter_in == place);
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let json_body = match &operation.request_body {
        Some(RefOr::T(body)) => body.content.contains_key("application/json"),
        Some(RefOr::Ref(_)) => true,
        None => false,
    };
    let body_schema = serde_json::to_value(&operation.request_body)
        .ok()
        .and_then(|body| {
            body["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .map(str::to_owned)
        });
    let tenant = parameters
        .iter()
        .any(|p| p.parameter_in == ParameterIn::Query && p.name == TENANT)
        || body_schema.is_some_and(|name| with_tenant.contains(&name));
    Shape {
        secured,
        json_body,
        query: within(ParameterIn::Query),
        path: within(ParameterIn::Path),
        tenant,
        idempotent_post: is_post && secured,
    }
}

fn declare(
    operation: &mut Operation,
    shared: &[Parameter],
    with_tenant: &BTreeSet<String>,
    is_post: bool,
) {
    let shape = shape(operation, shared, with_tenant, is_post);
    if shape.idempotent_post {
        add_idempotency_key(operation);
    }
    let mut reasons: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
    let mut because = |status: u16, reason: &'static str| {
        reasons.entry(status).or_default().push(reason);
    };
    if shape.secured {
        because(
            401,
            "No `Authorization: Bearer <token>`, or a token the hub does not accept \
             (unknown, expired or revoked).",
        );
        because(
            403,
            "A person who must choose a new password (`password-change-required`: the \
             first-start admin, or after an administrator reset it) or whose role must use \
             a second factor they have not enrolled (`second-factor-required`): until they \
             do, their session may only do that, read GET /users/me and sign out.",
        );
        because(
            429,
            "This client address sent too many requests with credentials the hub refused; \
             until `Retry-After` (seconds) has passed, every request with credentials from \
             it is refused unchecked.",
        );
    }
    if shape.json_body {
        because(400, "The body is not well-formed JSON.");
        because(
            413,
            "The body is larger than the hub accepts (`--max-body-bytes`).",
        );
        because(
            415,
            "The body is not sent as `Content-Type: application/json`.",
        );
        because(
            422,
            "The body is not a JSON object of the request's shape (a member missing, \
             unknown or of the wrong type), or a value in it is refused; `field` names it.",
        );
    }
    if shape.query {
        because(
            400,
            "A query parameter is unknown, repeated or of the wrong type, or its value is \
             out of range.",
        );
    }
    if shape.path {
        because(400, "A path segment is not valid UTF-8.");
        because(
            404,
            "Nothing with that id, or nothing the caller may see: the two look the same.",
        );
    }
    if shape.tenant {
        because(
            404,
            "The `tenant` named is not one the caller may see: it is not found, as if it \
             did not exist.",
        );
    }
    if shape.idempotent_post {
        because(
            400,
            "The `Idempotency-Key` is not 1 to 255 visible ASCII characters.",
        );
        because(
            409,
            "A request with this `Idempotency-Key` is still being handled; retry shortly.",
        );
        because(
            413,
            "The body is larger than the hub accepts (`--max-body-bytes`).",
        );
        because(
            422,
            "This `Idempotency-Key` was used for a different request.",
        );
    }
    because(
        500,
        "The hub failed to handle the request; quote the problem's `requestId` to its operators.",
    );
    because(
        503,
        "Something the hub depends on (its database, a cluster's API) is unavailable or \
         busy; retry shortly.",
    );

    let responses = &mut operation.responses.responses;
    for (status, mut texts) in reasons {
        texts.dedup();
        let description = texts.join(" ");
        let key = status.to_string();
        match responses.get_mut(&key) {
            Some(RefOr::T(declared)) => {
                if declared.description.is_empty() {
                    declared.description = format!(
                        "For this operation's own reasons (the problem's `detail` says which), \
                         or: {description}"
                    );
                }
            }
            Some(RefOr::Ref(_)) => {}
            None => {
                let mut response = ResponseBuilder::new().description(description).content(
                    PROBLEM_JSON,
                    Content::new(Some(Ref::from_schema_name(PROBLEM_SCHEMA))),
                );
                if status == 429 {
                    response = response.header("Retry-After", retry_after_header());
                }
                if status == 401 {
                    response = response.header(
                        "WWW-Authenticate",
                        HeaderBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                            .description(Some("`Bearer`"))
                            .build(),
                    );
                }
                responses.insert(key, RefOr::T(response.build()));
            }
        }
    }
    // OpenAPI requires a description on every response.
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response
            && response.description.is_empty()
        {
            response.description = status
                .parse::<u16>()
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Response")
                .to_owned();
        }
    }
}

/// The `Retry-After` header of a 429.
pub fn retry_after_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        ))
        .description(Some("Whole seconds to wait before trying again"))
        .build()
}

/// Documents the `Idempotency-Key` header, unless the operation already does.
fn add_idempotency_key(operation: &mut Operation) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    let present = parameters.iter().any(|p| match p {
        RefOr::T(p) => {
            p.parameter_in == ParameterIn::Header
                && p.name.eq_ignore_ascii_case(IDEMPOTENCY_KEY_HEADER)
        }
        RefOr::Ref(_) => false,
    });
    if present {
        return;
    }
    parameters.push(RefOr::T(
        ParameterBuilder::new()
            .name(IDEMPOTENCY_KEY_HEADER)
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Makes a retry safe: the first request with a key runs and its response is \
                 kept for a day; a retry with the same key and the same request gets that \
                 response again, marked `Idempotent-Replayed: true`, without running \
                 anything. Keys are per caller. Responses of 5xx are not kept.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(IDEMPOTENCY_KEY_MAX_LEN))
                    .pattern(Some("^[!-~]+$")),
            ))
            .build(),
    ));
}
