//! What the authorizer is asked about each request, read from its method
//! and URL as the real `RequestInfo` reads them, and the 403 when the
//! answer is no.

use http::Method;

use super::super::Shared;
use super::super::auth::rbac::{self, Attributes, ResourceAttributes};
use super::super::auth::{UserInfo, authorize};
use super::super::error::ApiResult;
use super::Route;
use super::request::Query;

/// What the authorizer is asked about a request, as the real
/// `RequestInfo` reads it from the method and URL.
pub(super) fn attributes(
    method: &Method,
    path: &str,
    route: Option<&Route>,
    query: &Query,
) -> Attributes {
    let Some(Route::Resource(p)) = route else {
        return Attributes::NonResource {
            verb: method.as_str().to_lowercase(),
            path: path.to_owned(),
        };
    };
    let verb = match *method {
        Method::GET | Method::HEAD if query.flag("watch") => "watch".to_owned(),
        Method::GET | Method::HEAD if p.name.is_some() => "get".to_owned(),
        Method::GET | Method::HEAD => "list".to_owned(),
        Method::POST => "create".to_owned(),
        Method::PUT => "update".to_owned(),
        Method::PATCH => "patch".to_owned(),
        Method::DELETE if p.name.is_some() => "delete".to_owned(),
        Method::DELETE => "deletecollection".to_owned(),
        ref other => other.as_str().to_lowercase(),
    };
    // `/api/v1/namespaces/{name}` is in the namespace it names.
    let namespace = match (&p.namespace, p.group.is_empty() && p.plural == "namespaces") {
        (Some(ns), _) => ns.clone(),
        (None, true) => p.name.clone().unwrap_or_default(),
        (None, false) => String::new(),
    };
    Attributes::Resource(ResourceAttributes {
        verb,
        group: p.group.clone(),
        resource: p.plural.clone(),
        subresource: p.sub.clone().unwrap_or_default(),
        namespace,
        name: p.name.clone().unwrap_or_default(),
    })
}

/// 403 unless the authorizer allows `attrs` for `user`.
pub(super) fn authorized(shared: &Shared, user: &UserInfo, attrs: &Attributes) -> ApiResult<()> {
    let decision = authorize(&shared.lock(), user, attrs);
    if decision.allowed {
        Ok(())
    } else {
        Err(rbac::denied(&user.name, attrs, &decision.reason))
    }
}

#[cfg(test)]
mod tests {
    use super::super::route;
    use super::*;

    #[test]
    fn requests_become_authorization_attributes_as_request_info_reads_them() {
        let attrs = |method: Method, url: &str| {
            let uri: http::Uri = url.parse().unwrap();
            let query = Query::parse(uri.query());
            attributes(&method, uri.path(), route(uri.path()).as_ref(), &query)
        };
        let resource =
            |verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str| {
                Attributes::Resource(ResourceAttributes {
                    verb: verb.into(),
                    group: group.into(),
                    resource: resource.into(),
                    subresource: sub.into(),
                    namespace: ns.into(),
                    name: name.into(),
                })
            };
        assert_eq!(
            attrs(Method::GET, "/api/v1/namespaces/a/pods?watch=true"),
            resource("watch", "", "pods", "", "a", "")
        );
        assert_eq!(
            attrs(Method::GET, "/api/v1/pods"),
            resource("list", "", "pods", "", "", "")
        );
        assert_eq!(
            attrs(Method::DELETE, "/api/v1/namespaces/a/configmaps"),
            resource("deletecollection", "", "configmaps", "", "a", "")
        );
        assert_eq!(
            attrs(
                Method::PUT,
                "/apis/apps/v1/namespaces/a/deployments/web/scale"
            ),
            resource("update", "apps", "deployments", "scale", "a", "web")
        );
        assert_eq!(
            attrs(Method::GET, "/api/v1/namespaces/team-a"),
            resource("get", "", "namespaces", "", "team-a", "team-a")
        );
        assert_eq!(
            attrs(Method::GET, "/apis/apps"),
            Attributes::NonResource {
                verb: "get".into(),
                path: "/apis/apps".into()
            }
        );
    }
}
