//! Bearer-token authentication, as a server with a static token file and
//! ServiceAccount tokens does: a known token is its user (plus
//! `system:authenticated`), a request without a bearer token is
//! `system:anonymous`, and an unknown token is 401 Unauthorized.

use std::collections::HashMap;

use http::HeaderValue;

use super::rbac::service_account_user;
use super::{AUTHENTICATED, MASTERS, UserInfo};
use crate::api::error::{ApiError, ApiResult};
use crate::api::ops::State;
use crate::api::registry::GroupResource;

#[derive(Debug, Clone)]
enum Credential {
    User(UserInfo),
    ServiceAccount { namespace: String, name: String },
}

/// The tokens one server accepts.
#[derive(Debug)]
pub struct Tokens {
    by_token: HashMap<String, Credential>,
    loopback: String,
    admin: String,
}

impl Default for Tokens {
    fn default() -> Self {
        Self::new()
    }
}

fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Adds `system:authenticated`, as the real server does for every user
/// a token names.
fn with_authenticated(name: &str, groups: &[&str]) -> UserInfo {
    let mut user = UserInfo::new(name, groups);
    if !user.groups.iter().any(|g| g == AUTHENTICATED) {
        user.groups.push(AUTHENTICATED.to_owned());
    }
    user
}

impl Tokens {
    /// The loopback token and kubeadm's `kubernetes-admin` token.
    pub fn new() -> Self {
        let mut tokens = Tokens {
            by_token: HashMap::new(),
            loopback: new_token(),
            admin: new_token(),
        };
        tokens.by_token.insert(
            tokens.loopback.clone(),
            Credential::User(UserInfo::loopback()),
        );
        tokens.by_token.insert(
            tokens.admin.clone(),
            Credential::User(with_authenticated("kubernetes-admin", &[MASTERS])),
        );
        tokens
    }

    pub fn loopback(&self) -> &str {
        &self.loopback
    }

    pub fn admin(&self) -> &str {
        &self.admin
    }

    /// A static token for `username` in `groups`.
    pub fn issue(&mut self, username: &str, groups: &[&str]) -> String {
        let token = new_token();
        self.by_token.insert(
            token.clone(),
            Credential::User(with_authenticated(username, groups)),
        );
        token
    }

    /// A token for ServiceAccount `namespace/name`, valid while it exists.
    pub fn service_account(&mut self, namespace: &str, name: &str) -> String {
        let token = new_token();
        self.by_token.insert(
            token.clone(),
            Credential::ServiceAccount {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            },
        );
        token
    }
}

/// The 401 the real server answers a bad credential with.
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// Who sent a request with this `Authorization` header.
pub fn authenticate(state: &State, header: Option<&HeaderValue>) -> ApiResult<UserInfo> {
    let Some(header) = header else {
        return Ok(UserInfo::anonymous());
    };
    let value = header.to_str().map_err(|_| unauthorized())?.trim();
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next().unwrap_or("");
    let token = parts.next().unwrap_or("");
    // Other schemes and an empty bearer token are not this
    // authenticator's: the request stays anonymous.
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Ok(UserInfo::anonymous());
    }
    match state.tokens.by_token.get(token) {
        Some(Credential::User(user)) => Ok(user.clone()),
        Some(Credential::ServiceAccount { namespace, name }) => {
            let accounts = GroupResource::new("", "serviceaccounts");
            if state
                .store
                .get(&accounts, &(namespace.clone(), name.clone()))
                .is_none()
            {
                return Err(unauthorized());
            }
            let user = service_account_user(namespace, name);
            let in_namespace = format!("system:serviceaccounts:{namespace}");
            Ok(UserInfo::new(
                &user,
                &["system:serviceaccounts", &in_namespace, AUTHENTICATED],
            ))
        }
        None => Err(unauthorized()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_map_to_users_as_the_real_authenticator_chain() {
        let mut state = State::new(10, 10, 1);
        let alice = state.tokens.issue("alice", &["dev"]);
        let bearer = |t: &str| HeaderValue::from_str(&format!("Bearer {t}")).unwrap();
        assert_eq!(authenticate(&state, None).unwrap(), UserInfo::anonymous());
        let user = authenticate(&state, Some(&bearer(&alice))).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, ["dev", AUTHENTICATED]);
        let basic = HeaderValue::from_static("Basic YTpi");
        assert_eq!(
            authenticate(&state, Some(&basic)).unwrap(),
            UserInfo::anonymous()
        );
        let error = authenticate(&state, Some(&bearer("nope"))).unwrap_err();
        assert_eq!(error.code, 401);
        assert_eq!(error.message, "Unauthorized");
        let admin = state.tokens.admin().to_owned();
        assert!(
            authenticate(&state, Some(&bearer(&admin)))
                .unwrap()
                .is_privileged()
        );
        let sa = state.tokens.service_account("default", "robot");
        assert_eq!(
            authenticate(&state, Some(&bearer(&sa))).unwrap_err().code,
            401
        );
    }
}
