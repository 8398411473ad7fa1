//! What a registered cluster's kubeconfig may say. A kubeconfig is handed
//! in by a platform admin and used by the hub, whose environment holds the
//! secret key, object-store credentials and the database URL; kube-rs
//! would run its `exec` and `auth-provider` commands there, and read any
//! file its path fields name and send it to the kubeconfig's server. So
//! the hub accepts only what needs neither: inline credentials (a token,
//! basic auth, client certificate and key data), inline CA data, an
//! `https://` server verified with TLS, and no proxy. Anything else is
//! refused naming the field, at registration and again whenever stored
//! kubeconfigs are loaded.
//!
//! Plain `http://` servers and skipped TLS verification are allowed only
//! with the platform setting for labs (`--allow-insecure-clusters`). (The
//! sandbox's kubeconfigs name `https://` with their own CA inline, so they
//! pass without it.)

use kube::config::Kubeconfig;

/// What the platform allows beyond the safe defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KubeconfigPolicy {
    /// Servers over plain `http://`, and `insecure-skip-tls-verify`.
    pub allow_insecure: bool,
}

/// Why a kubeconfig is refused: the field (as the kubeconfig names it)
/// and what to give instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

fn refuse(field: String, reason: &str) -> Refused {
    Refused {
        field,
        reason: reason.to_owned(),
    }
}

/// Checks every user and cluster entry, not only the current context's:
/// a kubeconfig is stored whole and could be used with another context
/// later.
pub fn check(config: &Kubeconfig, policy: KubeconfigPolicy) -> Result<(), Refused> {
    for (i, named) in config.auth_infos.iter().enumerate() {
        let at = |field: &str| format!("users[{i}].user.{field}");
        let Some(user) = &named.auth_info else {
            continue;
        };
        if user.exec.is_some() {
            return Err(refuse(
                at("exec"),
                "the hub runs no commands: give an inline token (e.g. a service account's) \
                 or client-certificate-data and client-key-data",
            ));
        }
        if user.auth_provider.is_some() {
            return Err(refuse(
                at("auth-provider"),
                "the hub runs no auth providers: give an inline token or client certificate data",
            ));
        }
        for (field, set) in [
            ("tokenFile", user.token_file.is_some()),
            ("client-certificate", user.client_certificate.is_some()),
            ("client-key", user.client_key.is_some()),
        ] {
            if set {
                return Err(refuse(
                    at(field),
                    "the hub reads no local files: give the value inline (token, \
                     client-certificate-data, client-key-data)",
                ));
            }
        }
    }
    for (i, named) in config.clusters.iter().enumerate() {
        let at = |field: &str| format!("clusters[{i}].cluster.{field}");
        let Some(cluster) = &named.cluster else {
            continue;
        };
        if cluster.certificate_authority.is_some() {
            return Err(refuse(
                at("certificate-authority"),
                "the hub reads no local files: give the CA as certificate-authority-data",
            ));
        }
        if cluster.proxy_url.is_some() {
            return Err(refuse(
                at("proxy-url"),
                "the hub connects to clusters directly: remove the proxy",
            ));
        }
        if cluster.insecure_skip_tls_verify == Some(true) && !policy.allow_insecure {
            return Err(refuse(
                at("insecure-skip-tls-verify"),
                "the server's certificate must be verified: give its CA as \
                 certificate-authority-data",
            ));
        }
        let server = cluster.server.as_deref().unwrap_or_default();
        match server.parse::<http::Uri>() {
            Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => {
                match uri.scheme_str() {
                    Some("https") => {}
                    Some("http") if policy.allow_insecure => {}
                    Some("http") => {
                        return Err(refuse(
                            at("server"),
                            "the API server must be reached over https://; plain http:// is \
                             allowed only on hubs started with --allow-insecure-clusters (labs)",
                        ));
                    }
                    _ => {
                        return Err(refuse(at("server"), "must be an https:// URL"));
                    }
                }
                if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
                    return Err(refuse(
                        at("server"),
                        "must not carry credentials in the URL",
                    ));
                }
            }
            _ => {
                return Err(refuse(
                    at("server"),
                    "must be the API server's https:// URL, e.g. https://203.0.113.10:6443",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(yaml).unwrap()
    }

    fn config(cluster: &str, user: &str) -> Kubeconfig {
        parse(&format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             contexts:\n- name: c\n  context: {{cluster: k, user: u}}\n\
             clusters:\n- name: k\n  cluster:\n{cluster}\n\
             users:\n- name: u\n  user:\n{user}\n"
        ))
    }

    const SAFE_CLUSTER: &str =
        "    server: https://203.0.113.10:6443\n    certificate-authority-data: Zm9v";
    const SAFE_USER: &str = "    token: abc";

    fn refused_field(c: &Kubeconfig, policy: KubeconfigPolicy) -> Option<String> {
        check(c, policy).err().map(|r| r.field)
    }

    #[test]
    fn inline_credentials_over_https_pass() {
        assert_eq!(
            check(
                &config(SAFE_CLUSTER, SAFE_USER),
                KubeconfigPolicy::default()
            ),
            Ok(())
        );
        let certs = "    client-certificate-data: Zm9v\n    client-key-data: YmFy";
        assert_eq!(
            check(&config(SAFE_CLUSTER, certs), KubeconfigPolicy::default()),
            Ok(())
        );
    }

    #[test]
    fn commands_and_local_files_are_refused_naming_the_field() {
        let strict = KubeconfigPolicy::default();
        for (user, field) in [
            (
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: sh\n      args: [-c, 'curl evil']",
                "users[0].user.exec",
            ),
            (
                "    auth-provider:\n      name: gcp\n      config: {cmd-path: /bin/sh}",
                "users[0].user.auth-provider",
            ),
            (
                "    tokenFile: /proc/self/environ",
                "users[0].user.tokenFile",
            ),
            (
                "    client-certificate: /etc/shadow\n    client-key-data: YmFy",
                "users[0].user.client-certificate",
            ),
            (
                "    client-certificate-data: Zm9v\n    client-key: /etc/modelfleet/key",
                "users[0].user.client-key",
            ),
        ] {
            assert_eq!(
                refused_field(&config(SAFE_CLUSTER, user), strict).as_deref(),
                Some(field),
                "{user}"
            );
        }
        for (cluster, field) in [
            (
                "    server: https://203.0.113.10:6443\n    certificate-authority: /var/lib/modelfleet/secret-key",
                "clusters[0].cluster.certificate-authority",
            ),
            (
                "    server: https://203.0.113.10:6443\n    proxy-url: http://attacker.example:8080",
                "clusters[0].cluster.proxy-url",
            ),
        ] {
            assert_eq!(
                refused_field(&config(cluster, SAFE_USER), strict).as_deref(),
                Some(field),
                "{cluster}"
            );
        }
    }

    #[test]
    fn plain_http_and_skipped_verification_need_the_lab_setting() {
        let lab = KubeconfigPolicy {
            allow_insecure: true,
        };
        for cluster in [
            "    server: http://127.0.0.1:6443",
            "    server: https://203.0.113.10:6443\n    insecure-skip-tls-verify: true",
        ] {
            let c = config(cluster, SAFE_USER);
            assert!(
                refused_field(&c, KubeconfigPolicy::default()).is_some(),
                "{cluster}"
            );
            assert_eq!(check(&c, lab), Ok(()), "{cluster}");
        }
        for server in [
            "ftp://203.0.113.10",
            "",
            "https://user:pw@203.0.113.10:6443",
            "203.0.113.10",
        ] {
            let c = config(&format!("    server: '{server}'"), SAFE_USER);
            assert_eq!(
                refused_field(&c, lab).as_deref(),
                Some("clusters[0].cluster.server"),
                "{server:?}"
            );
        }
    }

    #[test]
    fn entries_outside_the_current_context_are_checked_too() {
        let c = parse(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             contexts:\n- name: c\n  context: {cluster: k, user: u}\n\
             clusters:\n- name: k\n  cluster: {server: 'https://203.0.113.10:6443'}\n\
             users:\n- name: u\n  user: {token: abc}\n\
             - name: other\n  user:\n    exec: {apiVersion: client.authentication.k8s.io/v1, command: id}\n",
        );
        assert_eq!(
            refused_field(&c, KubeconfigPolicy::default()).as_deref(),
            Some("users[1].user.exec")
        );
    }
}
