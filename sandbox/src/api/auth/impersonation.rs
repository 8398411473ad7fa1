//! Impersonation (`Impersonate-User`, `Impersonate-Group` headers, what
//! `kubectl --as`/`--as-group` send), as the real filter does: the
//! requester needs `impersonate` on each user, ServiceAccount and group
//! named, and the request then runs as that user.

use http::HeaderMap;

use super::rbac::{self, Attributes, ResourceAttributes};
use super::{AUTHENTICATED, UNAUTHENTICATED, UserInfo, authorize};
use crate::api::error::ApiResult;
use crate::api::ops::State;

const USER_HEADER: &str = "impersonate-user";
const GROUP_HEADER: &str = "impersonate-group";

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// The user a request acts as: `requester`, or whom it impersonates.
pub fn acting_user(state: &State, requester: UserInfo, headers: &HeaderMap) -> ApiResult<UserInfo> {
    let users = values(headers, USER_HEADER);
    let groups = values(headers, GROUP_HEADER);
    if users.is_empty() && groups.is_empty() {
        return Ok(requester);
    }
    let check = |resource: &str, namespace: &str, name: &str| -> ApiResult<()> {
        let attrs = Attributes::Resource(ResourceAttributes {
            verb: "impersonate".into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..ResourceAttributes::default()
        });
        let decision = authorize(state, &requester, &attrs);
        if decision.allowed {
            Ok(())
        } else {
            Err(rbac::denied(&requester.name, &attrs, &decision.reason))
        }
    };
    let Some(username) = users.first().copied() else {
        // Groups without a user are refused by the real filter as well.
        return Err(crate::api::error::ApiError::internal(
            "requested [{Kind:Group}] without impersonating a user",
        ));
    };
    let mut acting = UserInfo {
        name: username.to_owned(),
        groups: Vec::new(),
    };
    match username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, name)) => {
            check("serviceaccounts", namespace, name)?;
            acting.groups = vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
            ];
        }
        None => check("users", "", username)?,
    }
    for group in groups {
        check("groups", "", group)?;
        acting.groups.push(group.to_owned());
    }
    if username != "system:anonymous"
        && !acting
            .groups
            .iter()
            .any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED)
    {
        acting.groups.push(AUTHENTICATED.to_owned());
    }
    Ok(acting)
}
