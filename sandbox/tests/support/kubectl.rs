//! The real `kubectl` against a served sandbox API server, with its own
//! kubeconfig and home directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const KUBECTL: &str = "/usr/bin/kubectl";

/// Whether kubectl is installed; tests that need it skip without it.
pub fn installed() -> bool {
    let found = Path::new(KUBECTL).exists();
    if !found {
        eprintln!("SKIPPED: {KUBECTL} is not installed (.ci/run installs it)");
    }
    found
}

pub struct Kubectl {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

/// What one run printed.
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    pub fn new(kubeconfig_yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml).unwrap();
        Kubectl { dir, kubeconfig }
    }

    /// The kubeconfig file, for a kubectl run by hand.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The home directory its runs use.
    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `value` as YAML to a file in this kubectl's directory.
    pub fn file(&self, name: &str, value: &Value) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, serde_yaml::to_string(value).unwrap()).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Runs kubectl on a blocking thread (the server runs on this runtime).
    pub async fn run(&self, args: &[&str]) -> Run {
        let mut command = Command::new(KUBECTL);
        command
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path());
        let out: Output =
            tokio::task::spawn_blocking(move || command.output().expect("kubectl runs"))
                .await
                .unwrap();
        Run {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub async fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args).await;
        assert!(
            run.success,
            "kubectl {args:?} failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        run
    }

    pub async fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args).await;
        assert!(
            !run.success,
            "kubectl {args:?} should have failed:\n{}",
            run.stdout
        );
        run.stderr
    }
}
