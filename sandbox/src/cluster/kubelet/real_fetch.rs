//! The one container the sandbox's kubelet really runs: modelfleet's own
//! `modelfleet fetch` init container. When a pod's init container is
//! modelfleet's image with the command `modelfleet fetch …` and the
//! cluster has [`RealFetch`] set, the kubelet runs the real fetch code on
//! the pod's behalf, with the environment the container would get (its
//! `env`, and `envFrom` Secrets, read as the kubelet reads them), into a
//! directory standing for the pod's `emptyDir` on its node. Its progress
//! and failures are what the container prints, and its exit is the init
//! container's: a failure restarts it after the usual back-off, and the
//! next run continues the download where the last one stopped (the
//! emptyDir outlives a container's restart), as on a real node.
//!
//! Supported arguments: `--source`, `--dest`, `--endpoint`, `--region`,
//! `--cache` with `--cache-size` (the node cache: the container's mount of
//! a claim bound to a `hostPath` volume, or of a `hostPath` volume, is
//! that path under the node's disk) and `--summary-file` (written to the
//! container's `terminationMessagePath`, it becomes the termination
//! message); any other makes the run fail saying so.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::Client;
use kube::api::Api;
use modelfleet_core::contract::fetch::{FetchProgress, progress_line};
use modelfleet_fetch::endpoint::{EndpointOverrides, Environment};
use modelfleet_fetch::{Env, FetchOptions, Tuning};

use crate::cluster::common::now;
use crate::logs::PodLogs;

/// Which init containers the kubelet runs for real, and where their
/// nodes' disks are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealFetch {
    /// modelfleet's image repository (`ghcr.io/modelfleet/modelfleet`):
    /// an init container of this image, any tag, running `modelfleet
    /// fetch`, is run for real.
    pub image_repository: String,
    /// Each node's disk is `disks/<node>`; a pod's volume is
    /// `disks/<node>/<pod uid>`, removed with the pod.
    pub disks: PathBuf,
}

/// The arguments of one `modelfleet fetch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub source: String,
    /// The path inside the container (`/models/<model>`).
    pub dest: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// The cache's path inside the container, and its size.
    pub cache: Option<(String, u64)>,
    pub summary_file: Option<String>,
}

impl RealFetch {
    /// The init container of `pod` to run for real (its index), if any.
    pub fn init_of(&self, pod: &Pod) -> Option<usize> {
        let inits = pod.spec.as_ref()?.init_containers.as_ref()?;
        inits.iter().position(|c| {
            let image = c.image.as_deref().unwrap_or_default();
            let repository = image.split_once(['@', ':']).map_or(image, |(r, _)| r);
            let words: Vec<&str> = c.command.iter().flatten().map(String::as_str).collect();
            repository == self.image_repository && words.starts_with(&["modelfleet", "fetch"])
        })
    }

    /// Where the pod's volumes are on its node.
    pub fn pod_dir(&self, node: &str, uid: &str) -> PathBuf {
        self.disks.join(node).join(uid)
    }

    /// Where a host path is on the node's disk.
    pub fn host_dir(&self, node: &str, path: &str) -> PathBuf {
        self.disks
            .join(node)
            .join("host")
            .join(path.trim_start_matches('/'))
    }
}

/// The container's `modelfleet fetch` arguments.
pub fn command(c: &Container) -> Result<Command, String> {
    let words: Vec<&str> = c
        .command
        .iter()
        .chain(&c.args)
        .flatten()
        .map(String::as_str)
        .skip(2)
        .collect();
    let mut flags = BTreeMap::new();
    let mut rest = words.iter();
    while let Some(flag) = rest.next() {
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name, value.to_owned()),
            None => (
                *flag,
                rest.next().map(|v| (*v).to_owned()).unwrap_or_default(),
            ),
        };
        if !matches!(
            name,
            "--source"
                | "--dest"
                | "--endpoint"
                | "--region"
                | "--cache"
                | "--cache-size"
                | "--summary-file"
        ) {
            return Err(format!(
                "the sandbox runs modelfleet fetch with --source, --dest, --endpoint, \
                 --region, --cache, --cache-size and --summary-file only; {name} is not \
                 supported here"
            ));
        }
        flags.insert(name, value);
    }
    let required = |name: &str| {
        flags
            .get(name)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| format!("modelfleet fetch needs {name}"))
    };
    let dest = required("--dest")?;
    // The path is inside the pod: it must not lead out of the pod's
    // directory on the node.
    let inside = dest.starts_with('/')
        && dest
            .split('/')
            .skip(1)
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if !inside {
        return Err(format!(
            "--dest {dest:?} must be an absolute path without empty, '.' or '..' parts, like /models/llama"
        ));
    }
    let cache = match (flags.get("--cache"), flags.get("--cache-size")) {
        (None, None) => None,
        (Some(path), Some(size)) => {
            let bytes = modelfleet_core::contract::pool_settings::quantity_bytes(size)
                .filter(|b| *b > 0)
                .ok_or_else(|| format!("--cache-size {size:?} is not a size like 500Gi"))?;
            Some((path.clone(), bytes))
        }
        _ => return Err("--cache and --cache-size go together".to_owned()),
    };
    Ok(Command {
        source: required("--source")?,
        dest,
        endpoint: flags.get("--endpoint").cloned(),
        region: flags.get("--region").cloned(),
        cache,
        summary_file: flags.get("--summary-file").cloned(),
    })
}

fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .or_else(|| secret.string_data.as_ref()?.get(key).cloned())
}

fn secret_entries(secret: &Secret) -> BTreeMap<String, String> {
    let mut all: BTreeMap<String, String> = secret
        .string_data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (k, v) in secret.data.iter().flatten() {
        all.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    all
}

/// The container's environment as the kubelet builds it: `envFrom`
/// Secrets first, then `env` (literal values and Secret keys). A
/// required Secret or key that does not exist is an error naming it.
pub async fn environment(
    client: &Client,
    namespace: &str,
    c: &Container,
) -> Result<BTreeMap<String, String>, String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let get = |name: String| {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt(&name)
                .await
                .map_err(|e| format!("cannot read secret \"{name}\": {e}"))
        }
    };
    let mut env = BTreeMap::new();
    for from in c.env_from.iter().flatten() {
        let Some(r) = &from.secret_ref else { continue };
        match get(r.name.clone()).await? {
            Some(secret) => {
                let prefix = from.prefix.clone().unwrap_or_default();
                for (k, v) in secret_entries(&secret) {
                    env.insert(format!("{prefix}{k}"), v);
                }
            }
            None if r.optional == Some(true) => {}
            None => return Err(format!("secret \"{}\" not found", r.name)),
        }
    }
    for var in c.env.iter().flatten() {
        if let Some(value) = &var.value {
            env.insert(var.name.clone(), value.clone());
        } else if let Some(key) = var
            .value_from
            .as_ref()
            .and_then(|f| f.secret_key_ref.as_ref())
        {
            let optional = key.optional == Some(true);
            match get(key.name.clone()).await? {
                Some(secret) => match secret_value(&secret, &key.key) {
                    Some(v) => {
                        env.insert(var.name.clone(), v);
                    }
                    None if optional => {}
                    None => {
                        return Err(format!(
                            "couldn't find key {} in Secret {namespace}/{}",
                            key.key, key.name
                        ));
                    }
                },
                None if optional => {}
                None => return Err(format!("secret \"{}\" not found", key.name)),
            }
        }
    }
    Ok(env)
}

/// What `modelfleet fetch` reads from its environment.
pub fn fetch_env(vars: &BTreeMap<String, String>) -> Env {
    let var = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| vars.get(*n).filter(|v| !v.trim().is_empty()).cloned())
    };
    Env {
        endpoint: Environment {
            endpoint_url: var(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]),
            region: var(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
        },
        access_key_id: var(&["AWS_ACCESS_KEY_ID"]),
        secret_access_key: var(&["AWS_SECRET_ACCESS_KEY"]),
        session_token: var(&["AWS_SESSION_TOKEN"]),
        hf_endpoint: var(&["HF_ENDPOINT"]),
        hf_token: var(&["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]),
        modelscope_endpoint: var(&["MODELSCOPE_ENDPOINT"]),
        modelscope_token: var(&["MODELSCOPE_API_TOKEN"]),
        // A path inside the container's image, which the sandbox's nodes
        // do not have: a private CA is not supported here.
        ca_file: None,
        // The token files a cloud's webhook projects are paths in the
        // container too; a test names real files on this machine.
        identity: modelfleet_fetch::identity::IdentityEnv::from_vars(|name| {
            vars.get(name).cloned()
        }),
        // The pod's own fetch: it reaches what its pod may reach.
        connect_guard: None,
    }
}

/// Where a run finds its volumes on the node.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// The pod's own (its emptyDir).
    pub pod: PathBuf,
    /// The cache's directory on the node, for `--cache`.
    pub cache: Option<PathBuf>,
    /// The container's `terminationMessagePath`.
    pub termination_log: String,
}

/// One run of the fetch into `dirs.pod`, printing as `modelfleet fetch`
/// prints into `container`'s log. Returns the termination message it
/// wrote, or the message it exits with on failure.
pub async fn run(
    command: Command,
    env: Env,
    dirs: &Dirs,
    logs: &PodLogs,
    (pod, container): ((&str, &str, &str), &str),
) -> Result<Option<String>, String> {
    let pod_dir = dirs.pod.as_path();
    let dest = pod_dir.join(command.dest.trim_start_matches('/'));
    let options = FetchOptions {
        source: command.source.clone(),
        dest,
        endpoint: EndpointOverrides {
            url: command.endpoint,
            region: command.region,
            ..EndpointOverrides::default()
        },
        tuning: Tuning::default(),
        env,
    };
    let started = Instant::now();
    let print = |line: &str| logs.write(pod, container, now(), line);
    print(&format!(
        "fetch {} into {} (run by the sandbox's kubelet with modelfleet's fetch code)",
        command.source, command.dest
    ));
    let report = |p: modelfleet_fetch::Progress| {
        let rate = p.done as f64 / started.elapsed().as_secs_f64().max(0.001);
        let figures = FetchProgress {
            done: p.done,
            total: p.total,
        };
        print(&progress_line(&command.source, figures, p.files, rate));
    };
    let every = Duration::from_secs(1);
    let result = match (&command.cache, &dirs.cache) {
        (Some((_, max_bytes)), Some(dir)) => {
            let cache = modelfleet_fetch::Cache {
                dir: dir.clone(),
                max_bytes: *max_bytes,
            };
            modelfleet_fetch::fetch_through_cache(&options, &cache, every, report).await
        }
        _ => modelfleet_fetch::fetch(&options, every, report).await,
    };
    match result {
        Ok(fetched) => {
            if fetched.from_cache {
                print(&format!(
                    "fetch: {} files, {} bytes from the node cache into {}; nothing downloaded",
                    fetched.files, fetched.bytes, command.dest
                ));
            } else {
                print(&format!(
                    "fetch: {} files, {} bytes into {} in {:.1} s ({} bytes kept from an earlier try)",
                    fetched.files,
                    fetched.bytes,
                    command.dest,
                    started.elapsed().as_secs_f64(),
                    fetched.resumed_bytes
                ));
            }
            let summary = modelfleet_core::contract::fetch::summary_line(fetched.summary());
            Ok(command
                .summary_file
                .as_deref()
                .is_some_and(|f| f == dirs.termination_log)
                .then_some(summary))
        }
        Err(error) => {
            let message = error.to_string();
            print(&message);
            Err(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures::pod;

    fn fetcher(command: &[&str]) -> Pod {
        let mut p = pod("llama-0").init_container("fetch-weights").build();
        let init = &mut p.spec.as_mut().unwrap().init_containers.as_mut().unwrap()[0];
        init.image = Some("ghcr.io/modelfleet/modelfleet:v0.1.0".into());
        init.command = Some(command.iter().map(|s| (*s).to_owned()).collect());
        p
    }

    fn real() -> RealFetch {
        RealFetch {
            image_repository: "ghcr.io/modelfleet/modelfleet".into(),
            disks: "/tmp/disks".into(),
        }
    }

    #[test]
    fn only_modelfleets_own_fetch_is_run_for_real() {
        let ours = fetcher(&[
            "modelfleet",
            "fetch",
            "--source",
            "s3://b/m",
            "--dest",
            "/models/m",
        ]);
        assert_eq!(real().init_of(&ours), Some(0));
        let other_command = fetcher(&["modelfleet", "serve"]);
        assert_eq!(real().init_of(&other_command), None);
        let mut other_image = ours.clone();
        other_image
            .spec
            .as_mut()
            .unwrap()
            .init_containers
            .as_mut()
            .unwrap()[0]
            .image = Some("docker.io/someone/modelfleet:v0.1.0".into());
        assert_eq!(real().init_of(&other_image), None);
    }

    #[test]
    fn arguments_are_read_as_the_cli_reads_them_and_others_are_refused() {
        let c = |words: &[&str]| Container {
            command: Some(words.iter().map(|s| (*s).to_owned()).collect()),
            ..Container::default()
        };
        let parsed = command(&c(&[
            "modelfleet",
            "fetch",
            "--source",
            "s3://b/m",
            "--dest=/models/m",
            "--region",
            "us-east-1",
        ]))
        .unwrap();
        assert_eq!(
            parsed,
            Command {
                source: "s3://b/m".into(),
                dest: "/models/m".into(),
                endpoint: None,
                region: Some("us-east-1".into()),
                cache: None,
                summary_file: None,
            }
        );
        let refused = command(&c(&[
            "modelfleet",
            "fetch",
            "--source",
            "s3://b/m",
            "--ca-file",
            "/c",
        ]))
        .unwrap_err();
        assert!(
            refused.contains("--ca-file is not supported here"),
            "{refused}"
        );
        let missing = command(&c(&["modelfleet", "fetch", "--source", "s3://b/m"])).unwrap_err();
        assert_eq!(missing, "modelfleet fetch needs --dest");
        for escape in ["/models/../../../etc", "models/x", "/models/./x"] {
            let refused = command(&c(&[
                "modelfleet",
                "fetch",
                "--source",
                "s3://b/m",
                "--dest",
                escape,
            ]))
            .unwrap_err();
            assert!(
                refused.contains("must be an absolute path"),
                "{escape}: {refused}"
            );
        }
    }

    #[test]
    fn the_environment_names_the_sdks_read_become_the_fetchs() {
        let vars: BTreeMap<String, String> = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_DEFAULT_REGION", "cn-hangzhou"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("HUGGING_FACE_HUB_TOKEN", "hf_x"),
            ("MODELSCOPE_API_TOKEN", "ms_y"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let env = fetch_env(&vars);
        assert_eq!(
            env.endpoint.endpoint_url.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(env.endpoint.region.as_deref(), Some("cn-hangzhou"));
        assert_eq!(env.access_key_id.as_deref(), Some("AKID"));
        assert_eq!(env.secret_access_key.as_deref(), Some("secret"));
        assert_eq!(env.hf_token.as_deref(), Some("hf_x"));
        assert_eq!(env.modelscope_token.as_deref(), Some("ms_y"));
        assert!(
            !format!("{env:?}").contains("secret\""),
            "secrets stay out of Debug"
        );
    }
}
