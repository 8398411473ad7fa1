//! The real `kubectl` against the sandbox API server over HTTP: apply a
//! CRD and a custom resource, print columns, YAML, describe, server-side
//! apply, validation errors, explain, delete; built-in kinds too; and the
//! repository's own CRDs once `manifests/crds/` has them.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use modelfleet_sandbox::ApiServer;
use serde_json::{Value, json};

const KUBECTL: &str = "/usr/bin/kubectl";

struct Kubectl {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(kubeconfig_yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml).unwrap();
        Kubectl { dir, kubeconfig }
    }

    fn file(&self, name: &str, value: &Value) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, serde_yaml::to_string(value).unwrap()).unwrap();
        path
    }

    /// Runs kubectl on a blocking thread (the server runs on this runtime).
    async fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(KUBECTL);
        command
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            // Keep kubectl's discovery and OpenAPI cache out of the real home.
            .env("HOME", self.dir.path());
        tokio::task::spawn_blocking(move || command.output().expect("kubectl runs"))
            .await
            .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    }

    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(!out.status.success(), "kubectl {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn widget(size: i64) -> Value {
    json!({"apiVersion": "example.modelfleet.io/v1", "kind": "Widget",
           "metadata": {"name": "w1"}, "spec": {"size": size, "color": "red"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drives_custom_and_built_in_resources() {
    if !Path::new(KUBECTL).exists() {
        eprintln!("SKIPPED: {KUBECTL} is not installed (.ci/run installs it)");
        return;
    }
    let server = ApiServer::new();
    let serving = server.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let k = Kubectl::new(&serving.kubeconfig_yaml("sandbox"));

    let version = k.ok(&["version", "-o", "json"]).await;
    let version: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["serverVersion"]["major"], "1");

    let crd = k.file("crd.yaml", &support::widget_crd());
    assert!(
        k.ok(&["apply", "-f", path_str(&crd)])
            .await
            .contains("created")
    );
    let resources = k
        .ok(&["api-resources", "--api-group=example.modelfleet.io"])
        .await;
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("widgets") && l.contains(" wd ")),
        "{resources}"
    );

    let w = k.file("w.yaml", &widget(3));
    assert!(
        k.ok(&["apply", "-f", path_str(&w)])
            .await
            .contains("widget.example.modelfleet.io/w1 created")
    );
    let table = k.ok(&["get", "wd"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "PHASE", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["w1", "3"], "{table}");

    let yaml: Value =
        serde_yaml::from_str(&k.ok(&["get", "widget", "w1", "-o", "yaml"]).await).unwrap();
    assert_eq!(yaml["spec"]["size"], 3);
    assert_eq!(yaml["metadata"]["generation"], 1);

    let described = k.ok(&["describe", "wd", "w1"]).await;
    assert!(
        described.contains("Name:") && described.contains("w1") && described.contains("Size:"),
        "{described}"
    );

    // Client-side apply of a change, then server-side apply taking over.
    let w = k.file("w.yaml", &widget(4));
    assert!(
        k.ok(&["apply", "-f", path_str(&w)])
            .await
            .contains("configured")
    );
    let w = k.file("w.yaml", &widget(5));
    assert!(
        k.ok(&["apply", "--server-side", "-f", path_str(&w)])
            .await
            .contains("serverside-applied")
    );
    assert_eq!(
        k.ok(&["get", "wd", "w1", "-o", "jsonpath={.spec.size}"])
            .await,
        "5"
    );

    let bad = k.file("bad.yaml", &widget(-1));
    let refused = k.fails(&["apply", "-f", path_str(&bad)]).await;
    assert!(
        refused.contains(
            "spec.size: Invalid value: -1: spec.size in body should be greater than or equal to 0"
        ),
        "{refused}"
    );
    let mut unknown = widget(1);
    unknown["spec"]["colour"] = json!("red");
    let unknown = k.file("unknown.yaml", &unknown);
    let strict = k.fails(&["apply", "-f", path_str(&unknown)]).await;
    assert!(strict.contains("unknown field \"spec.colour\""), "{strict}");

    let explained = k.ok(&["explain", "wd.spec"]).await;
    assert!(explained.contains("How big."), "{explained}");

    assert!(k.ok(&["delete", "wd", "w1"]).await.contains("deleted"));
    let none = k.run(&["get", "wd"]).await;
    assert!(String::from_utf8_lossy(&none.stderr).contains("No resources found"));

    // Built-in kinds: a Deployment and a Service, with their columns.
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}});
    let d = k.file("deploy.yaml", &deployment);
    k.ok(&["apply", "-f", path_str(&d)]).await;
    let deployments = k.ok(&["get", "deployments"]).await;
    assert!(deployments.starts_with("NAME"), "{deployments}");
    assert!(
        deployments.contains("READY") && deployments.contains("0/2"),
        "{deployments}"
    );
    k.ok(&["scale", "deployment", "web", "--replicas=3"]).await;
    assert_eq!(
        k.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
            .await,
        "3"
    );
    k.ok(&["delete", "deployment", "web"]).await;

    // The repository's CRDs, once they are generated into manifests/.
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
    let has_crds = std::fs::read_dir(&crds)
        .map(|d| {
            d.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
        .unwrap_or(false);
    if has_crds {
        k.ok(&["apply", "-f", path_str(&crds)]).await;
        let all = k.ok(&["api-resources"]).await;
        assert!(
            all.lines().any(|l| l.starts_with("modeldeployments")),
            "{all}"
        );
    }
    serving.shutdown().await;
}
