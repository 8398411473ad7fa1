//! What pods on a pool need from its nodes' network and registries, where
//! no label can say it: the network interface the engines' collectives use
//! (NCCL or HCCL, and Gloo), a registry mirror images are pulled through
//! (regions in mainland China cannot reliably pull from docker.io or
//! quay.io), and the Secrets the kubelet pulls them with. A platform
//! engineer annotates the pool's nodes; discovery reads the annotations
//! into [`PoolSettings`], every node of a pool agreeing; the operator
//! applies them to every pod it places there.

use std::collections::BTreeMap;

use crate::fleet::PoolSettings;

/// The interface (or NCCL-style list: `eth0`, `eth`, `^docker`, `=eth1`)
/// the engines' collectives bind to.
pub const NETWORK_INTERFACE_ANNOTATION: &str = "modelfleet.io/network-interface";
/// `host[:port][/path]` of a registry that mirrors docker.io, quay.io and
/// the others: `registry.cn-hangzhou.aliyuncs.com/mirror`.
pub const REGISTRY_MIRROR_ANNOTATION: &str = "modelfleet.io/registry-mirror";
/// Comma-separated names of `kubernetes.io/dockerconfigjson` Secrets, in
/// each namespace that runs models on the pool.
pub const IMAGE_PULL_SECRETS_ANNOTATION: &str = "modelfleet.io/image-pull-secrets";

/// The settings a node's annotations give, or which one is wrong and how.
pub fn read(annotations: Option<&BTreeMap<String, String>>) -> Result<PoolSettings, String> {
    let get = |key: &str| {
        annotations
            .and_then(|a| a.get(key))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let network_interface = get(NETWORK_INTERFACE_ANNOTATION)
        .map(|v| {
            let ok = v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-,^=".contains(c));
            ok.then_some(v.clone()).ok_or_else(|| {
                format!(
                    "annotation {NETWORK_INTERFACE_ANNOTATION} {v:?} is not an interface name \
                     or an NCCL-style list of them (eth0, eth, ^docker, =eth1)"
                )
            })
        })
        .transpose()?;
    let registry_mirror = get(REGISTRY_MIRROR_ANNOTATION)
        .map(|v| {
            let v = v.trim_end_matches('/').to_owned();
            is_registry(&v).then_some(v.clone()).ok_or_else(|| {
                format!(
                    "annotation {REGISTRY_MIRROR_ANNOTATION} {v:?} is not a registry: write \
                     host[:port][/path] without a scheme, like \
                     registry.cn-hangzhou.aliyuncs.com/mirror"
                )
            })
        })
        .transpose()?;
    let image_pull_secrets = match get(IMAGE_PULL_SECRETS_ANNOTATION) {
        None => Vec::new(),
        Some(v) => {
            let names: Vec<String> = v.split(',').map(|n| n.trim().to_owned()).collect();
            if names.len() > 8 || !names.iter().all(|n| is_secret_name(n)) {
                return Err(format!(
                    "annotation {IMAGE_PULL_SECRETS_ANNOTATION} {v:?} is not a comma-separated \
                     list of up to 8 Secret names"
                ));
            }
            names
        }
    };
    Ok(PoolSettings {
        network_interface,
        registry_mirror,
        image_pull_secrets,
    })
}

/// The annotations that give `settings` (what the sandbox writes).
pub fn annotations(settings: &PoolSettings) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(v) = &settings.network_interface {
        out.insert(NETWORK_INTERFACE_ANNOTATION.to_owned(), v.clone());
    }
    if let Some(v) = &settings.registry_mirror {
        out.insert(REGISTRY_MIRROR_ANNOTATION.to_owned(), v.clone());
    }
    if !settings.image_pull_secrets.is_empty() {
        out.insert(
            IMAGE_PULL_SECRETS_ANNOTATION.to_owned(),
            settings.image_pull_secrets.join(","),
        );
    }
    out
}

fn is_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

/// `host[:port][/path]`: lower-case host, digits for a port, a path of
/// lower-case letters, digits, `.`, `_`, `-` and `/`.
fn is_registry(text: &str) -> bool {
    let (authority, path) = text.split_once('/').unwrap_or((text, ""));
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !host.starts_with(['-', '.']);
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let path_ok = path.len() <= 200
        && !path.starts_with('/')
        && !path.contains("//")
        && path.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'/')
        });
    text.len() <= 255 && host_ok && port_ok && path_ok && !authority.contains('@')
}

/// `image` pulled through `mirror`: its registry (docker.io when it names
/// none) replaced by the mirror, the repository, tag and digest kept:
/// `vllm/vllm-openai:v0.9.2` → `<mirror>/vllm/vllm-openai:v0.9.2`,
/// `quay.io/ascend/vllm-ascend:v0.9.1` → `<mirror>/ascend/vllm-ascend:v0.9.1`,
/// `nginx` → `<mirror>/library/nginx`.
pub fn through_mirror(image: &str, mirror: Option<&str>) -> String {
    let Some(mirror) = mirror else {
        return image.to_owned();
    };
    let (first, rest) = image.split_once('/').unwrap_or(("", image));
    let names_registry = first.contains('.') || first.contains(':') || first == "localhost";
    let repository = if names_registry {
        rest.to_owned()
    } else if first.is_empty() {
        // `nginx`: Docker Hub's official images live under library/.
        format!("library/{image}")
    } else {
        image.to_owned()
    };
    format!("{mirror}/{repository}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotated(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn settings_read_back_from_the_annotations_they_make() {
        let settings = PoolSettings {
            network_interface: Some("eth0".to_owned()),
            registry_mirror: Some("registry.cn-hangzhou.aliyuncs.com/mf-mirror".to_owned()),
            image_pull_secrets: vec!["acr-pull".to_owned(), "quay-pull".to_owned()],
        };
        assert_eq!(read(Some(&annotations(&settings))), Ok(settings));
        assert_eq!(read(None), Ok(PoolSettings::default()));
    }

    #[test]
    fn bad_annotations_say_which_and_how_to_write_it() {
        for (key, value, needle) in [
            (
                NETWORK_INTERFACE_ANNOTATION,
                "eth0; rm -rf /",
                "interface name",
            ),
            (
                REGISTRY_MIRROR_ANNOTATION,
                "https://mirror.example.cn",
                "without a scheme",
            ),
            (
                REGISTRY_MIRROR_ANNOTATION,
                "user@mirror.example.cn",
                "host[:port][/path]",
            ),
            (
                REGISTRY_MIRROR_ANNOTATION,
                "Mirror.Example.CN",
                "host[:port][/path]",
            ),
            (IMAGE_PULL_SECRETS_ANNOTATION, "ok,Not_OK", "Secret names"),
        ] {
            let err = read(Some(&annotated(&[(key, value)]))).unwrap_err();
            assert!(err.contains(key) && err.contains(needle), "{err}");
        }
        let ok = read(Some(&annotated(&[(
            REGISTRY_MIRROR_ANNOTATION,
            "10.0.0.5:5000/",
        )])));
        assert_eq!(
            ok.unwrap().registry_mirror.as_deref(),
            Some("10.0.0.5:5000")
        );
    }

    #[test]
    fn images_keep_their_repository_tag_and_digest_through_a_mirror() {
        let m = Some("registry.cn-hangzhou.aliyuncs.com/mirror");
        for (image, mirrored) in [
            (
                "vllm/vllm-openai:v0.9.2",
                "registry.cn-hangzhou.aliyuncs.com/mirror/vllm/vllm-openai:v0.9.2",
            ),
            (
                "docker.io/vllm/vllm-openai:v0.9.2",
                "registry.cn-hangzhou.aliyuncs.com/mirror/vllm/vllm-openai:v0.9.2",
            ),
            (
                "quay.io/ascend/vllm-ascend:v0.9.1",
                "registry.cn-hangzhou.aliyuncs.com/mirror/ascend/vllm-ascend:v0.9.1",
            ),
            (
                "ghcr.io/org/modelfleet@sha256:abc",
                "registry.cn-hangzhou.aliyuncs.com/mirror/org/modelfleet@sha256:abc",
            ),
            (
                "localhost:5000/x:1",
                "registry.cn-hangzhou.aliyuncs.com/mirror/x:1",
            ),
            (
                "nginx",
                "registry.cn-hangzhou.aliyuncs.com/mirror/library/nginx",
            ),
        ] {
            assert_eq!(through_mirror(image, m), mirrored, "{image}");
        }
        assert_eq!(through_mirror("vllm/vllm-openai", None), "vllm/vllm-openai");
    }
}
