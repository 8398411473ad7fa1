//! What pods on a pool need from its nodes' network and registries, where
//! no label can say it: the network interface the engines' collectives use
//! (NCCL or HCCL, and Gloo), a registry mirror images are pulled through
//! (regions in mainland China cannot reliably pull from docker.io or
//! quay.io), the Secrets the kubelet pulls them with, and a directory
//! where the nodes keep fetched models (the node-local cache), and on
//! Huawei Cloud CCE the IAM identity provider the pods' service-account
//! tokens are exchanged at (CCE has no webhook that says it). A platform
//! engineer annotates the pool's nodes; discovery reads the annotations
//! into [`PoolSettings`], every node of a pool agreeing; the operator
//! applies them to every pod it places there.

use std::collections::BTreeMap;

use crate::fleet::{CceIdentity, ModelCache, PoolSettings};

/// The interface (or NCCL-style list: `eth0`, `eth`, `^docker`, `=eth1`)
/// the engines' collectives bind to.
pub const NETWORK_INTERFACE_ANNOTATION: &str = "modelfleet.io/network-interface";
/// `host[:port][/path]` of a registry that mirrors docker.io, quay.io and
/// the others: `registry.cn-hangzhou.aliyuncs.com/mirror`.
pub const REGISTRY_MIRROR_ANNOTATION: &str = "modelfleet.io/registry-mirror";
/// Comma-separated names of `kubernetes.io/dockerconfigjson` Secrets, in
/// each namespace that runs models on the pool.
pub const IMAGE_PULL_SECRETS_ANNOTATION: &str = "modelfleet.io/image-pull-secrets";
/// An absolute directory on the node for fetched models:
/// `/var/lib/modelfleet/models`. Each namespace gets its own directory
/// below it; needs [`MODEL_CACHE_SIZE_ANNOTATION`].
pub const MODEL_CACHE_PATH_ANNOTATION: &str = "modelfleet.io/model-cache-path";
/// How much each namespace may keep in the cache, as a Kubernetes
/// quantity: `500Gi`.
pub const MODEL_CACHE_SIZE_ANNOTATION: &str = "modelfleet.io/model-cache-size";

/// The name of the IAM identity provider (OpenID Connect) that trusts a
/// CCE cluster's service-account tokens: `cce-cluster-1`. The operator
/// projects a token for [`CCE_TOKEN_AUDIENCE_ANNOTATION`] into the fetch
/// container of an `obs://` deployment with no source Secret; needs
/// [`CCE_PROJECT_ID_ANNOTATION`] too.
pub const CCE_IDENTITY_PROVIDER_ANNOTATION: &str = "modelfleet.io/cce-identity-provider";
/// The project the keys are for: 32 hexadecimal digits.
pub const CCE_PROJECT_ID_ANNOTATION: &str = "modelfleet.io/cce-project-id";
/// The identity provider's client ID, the token's audience.
pub const CCE_TOKEN_AUDIENCE_ANNOTATION: &str = "modelfleet.io/cce-token-audience";

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
    let model_cache = match (
        get(MODEL_CACHE_PATH_ANNOTATION),
        get(MODEL_CACHE_SIZE_ANNOTATION),
    ) {
        (None, None) => None,
        (Some(path), Some(size)) => Some(ModelCache {
            path: cache_path(&path)?,
            bytes: quantity_bytes(&size)
                .filter(|b| *b >= 1 << 30)
                .ok_or_else(|| {
                    format!(
                        "annotation {MODEL_CACHE_SIZE_ANNOTATION} {size:?} is not a size of at \
                     least 1Gi: write a quantity like 500Gi or 2Ti"
                    )
                })?,
        }),
        (Some(_), None) | (None, Some(_)) => {
            return Err(format!(
                "annotations {MODEL_CACHE_PATH_ANNOTATION} and {MODEL_CACHE_SIZE_ANNOTATION} \
                 go together: set both (a directory like /var/lib/modelfleet/models and a \
                 size like 500Gi) or neither"
            ));
        }
    };
    let cce_identity = match (
        get(CCE_IDENTITY_PROVIDER_ANNOTATION),
        get(CCE_PROJECT_ID_ANNOTATION),
        get(CCE_TOKEN_AUDIENCE_ANNOTATION),
    ) {
        (None, None, None) => None,
        (Some(provider), Some(project_id), Some(audience)) => {
            let plain = |v: &str, extra: &str, max: usize| {
                !v.is_empty()
                    && v.len() <= max
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
            };
            if !plain(&provider, "-_", 64) {
                return Err(format!(
                    "annotation {CCE_IDENTITY_PROVIDER_ANNOTATION} {provider:?} is not an \
                     identity provider's name: letters, digits, '-' and '_', at most 64"
                ));
            }
            if project_id.len() != 32 || !project_id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "annotation {CCE_PROJECT_ID_ANNOTATION} {project_id:?} is not a project ID: \
                     32 hexadecimal digits, as IAM's My Credentials page lists them"
                ));
            }
            if !plain(&audience, "-_.:/", 128) {
                return Err(format!(
                    "annotation {CCE_TOKEN_AUDIENCE_ANNOTATION} {audience:?} is not a client \
                     ID: letters, digits and -_.:/, at most 128"
                ));
            }
            Some(CceIdentity {
                provider,
                project_id: project_id.to_ascii_lowercase(),
                audience,
            })
        }
        _ => {
            return Err(format!(
                "annotations {CCE_IDENTITY_PROVIDER_ANNOTATION}, {CCE_PROJECT_ID_ANNOTATION} and \
                 {CCE_TOKEN_AUDIENCE_ANNOTATION} go together: set all three (the IAM identity \
                 provider trusting this cluster, the project, the provider's client ID) or none"
            ));
        }
    };
    Ok(PoolSettings {
        network_interface,
        registry_mirror,
        image_pull_secrets,
        model_cache,
        cce_identity,
    })
}

/// The StorageClass name the cache's volumes and claims carry, so that no
/// provisioner or other claim takes them.
pub const MODEL_CACHE_STORAGE_CLASS: &str = "modelfleet-model-cache";
/// Where the fetch and engine containers mount the cache.
pub const MODEL_CACHE_MOUNT: &str = "/var/cache/modelfleet";

/// The pool's name made a DNS label part, with a digest when it had to
/// change, so two pools never share one.
fn pool_slug(pool: &str) -> String {
    use sha2::{Digest, Sha256};
    let slug: String = pool
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let slug = slug.trim_matches('-').to_owned();
    if slug == pool {
        slug
    } else {
        let digest = hex::encode(Sha256::digest(pool.as_bytes()));
        format!("{slug}-{}", &digest[..8])
    }
}

/// The claim, in a namespace, for the pool's cache.
pub fn cache_claim_name(pool: &str) -> String {
    format!("modelfleet-cache-{}", pool_slug(pool))
}

/// The PersistentVolume for `namespace`'s directory of the pool's cache.
pub fn cache_volume_name(namespace: &str, pool: &str) -> String {
    format!("modelfleet-cache-{namespace}-{}", pool_slug(pool))
}

/// Directories a cache must not be, or be inside: the system's own.
const SYSTEM_DIRS: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib64",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/run",
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/var/lib/docker",
    "/var/log",
];

/// An absolute, plain directory outside the system's own.
fn cache_path(path: &str) -> Result<String, String> {
    let path = path.trim_end_matches('/');
    let plain = path.starts_with('/')
        && path.len() <= 200
        && path.split('/').skip(1).all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    let system = SYSTEM_DIRS
        .iter()
        .any(|d| path == *d || path.starts_with(&format!("{d}/")));
    if !plain || path.is_empty() || system {
        return Err(format!(
            "annotation {MODEL_CACHE_PATH_ANNOTATION} {path:?} is not a directory the cache \
             can use: write an absolute path of plain names, outside the system's own \
             directories, like /var/lib/modelfleet/models"
        ));
    }
    Ok(path.to_owned())
}

/// A Kubernetes quantity of bytes without fractions: `500Gi`, `2T`,
/// `1073741824`.
pub fn quantity_bytes(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, suffix) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let unit: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        _ => return None,
    };
    number.checked_mul(unit)
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
    if let Some(cache) = &settings.model_cache {
        out.insert(MODEL_CACHE_PATH_ANNOTATION.to_owned(), cache.path.clone());
        out.insert(
            MODEL_CACHE_SIZE_ANNOTATION.to_owned(),
            cache.bytes.to_string(),
        );
    }
    if let Some(cce) = &settings.cce_identity {
        out.insert(
            CCE_IDENTITY_PROVIDER_ANNOTATION.to_owned(),
            cce.provider.clone(),
        );
        out.insert(CCE_PROJECT_ID_ANNOTATION.to_owned(), cce.project_id.clone());
        out.insert(
            CCE_TOKEN_AUDIENCE_ANNOTATION.to_owned(),
            cce.audience.clone(),
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
            model_cache: Some(ModelCache {
                path: "/var/lib/modelfleet/models".to_owned(),
                bytes: 500 << 30,
            }),
            cce_identity: Some(CceIdentity {
                provider: "cce-cluster-1".to_owned(),
                project_id: "0a1b2c3d4e5f60718293a4b5c6d7e8f9".to_owned(),
                audience: "ClientId-modelfleet".to_owned(),
            }),
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
            (MODEL_CACHE_PATH_ANNOTATION, "/data/models", "go together"),
            (MODEL_CACHE_SIZE_ANNOTATION, "500Gi", "go together"),
            (CCE_IDENTITY_PROVIDER_ANNOTATION, "cce-1", "go together"),
        ] {
            let err = read(Some(&annotated(&[(key, value)]))).unwrap_err();
            assert!(err.contains(key) && err.contains(needle), "{err}");
        }
        for (provider, project, audience, needle) in [
            (
                "cce 1",
                "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                "c",
                "identity provider's name",
            ),
            ("cce-1", "0a1b2c3d", "c", "32 hexadecimal digits"),
            (
                "cce-1",
                "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                "a b",
                "client ID",
            ),
        ] {
            let err = read(Some(&annotated(&[
                (CCE_IDENTITY_PROVIDER_ANNOTATION, provider),
                (CCE_PROJECT_ID_ANNOTATION, project),
                (CCE_TOKEN_AUDIENCE_ANNOTATION, audience),
            ])))
            .unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        for (path, size, needle) in [
            ("relative/models", "500Gi", "absolute path"),
            ("/data/../etc", "500Gi", "absolute path"),
            ("/etc/models", "500Gi", "outside the system's own"),
            ("/var/lib/kubelet/pods", "500Gi", "outside the system's own"),
            ("/", "500Gi", "absolute path"),
            ("/data/models", "500 Gi", "like 500Gi"),
            ("/data/models", "1.5Ti", "like 500Gi"),
            ("/data/models", "100Mi", "at least 1Gi"),
        ] {
            let err = read(Some(&annotated(&[
                (MODEL_CACHE_PATH_ANNOTATION, path),
                (MODEL_CACHE_SIZE_ANNOTATION, size),
            ])))
            .unwrap_err();
            assert!(err.contains(needle), "{path} {size}: {err}");
        }
        assert_eq!(quantity_bytes("2Ti"), Some(2 << 40));
        assert_eq!(cache_claim_name("l40s"), "modelfleet-cache-l40s");
        assert_eq!(
            cache_volume_name("team-a", "l40s"),
            "modelfleet-cache-team-a-l40s"
        );
        let odd = cache_claim_name("GPU_Pool/1");
        assert!(odd.starts_with("modelfleet-cache-gpu-pool-1-"), "{odd}");
        assert_ne!(odd, cache_claim_name("gpu-pool-1"));
        assert_eq!(quantity_bytes("3G"), Some(3_000_000_000));
        assert_eq!(quantity_bytes("99999999999Pi"), None, "overflow");
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
