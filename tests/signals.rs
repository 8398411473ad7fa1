//! `modelfleet sandbox` and `modelfleet operator` stop cleanly on SIGTERM,
//! as Kubernetes stops a pod (and as `api`, tested in `hub_api.rs`): the
//! real binaries, an operator leading by Lease and reconciling against the
//! sandbox through the kubeconfig it wrote, which gives its Lease up as it
//! stops (the next replica leads at once).

#[path = "support/process.rs"]
mod process;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use process::{free_port, terminate};

fn wait_for(what: &str, child: &mut Child, log: &Path, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what}: exited ({status}) first: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what}: not within two minutes: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sandbox_and_operator_stop_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let sandbox_log = dir.path().join("sandbox.log");
    let mut sandbox = Command::new(env!("CARGO_BIN_EXE_modelfleet"))
        .args([
            "sandbox",
            "--port",
            "0",
            "--time-factor",
            "0.001",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&sandbox_log).unwrap()))
        .spawn()
        .unwrap();
    wait_for(
        "the sandbox's kubeconfig",
        &mut sandbox,
        &sandbox_log,
        || kubeconfig.exists(),
    );

    let probe = free_port();
    let operator_log = dir.path().join("operator.log");
    let mut operator = Command::new(env!("CARGO_BIN_EXE_modelfleet"))
        .args([
            "operator",
            "--cluster",
            "sandbox",
            "--lease-namespace",
            "default",
        ])
        .args(["--identity", "signals-test"])
        .arg("--probe-addr")
        .arg(format!("127.0.0.1:{probe}"))
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&operator_log).unwrap()))
        .spawn()
        .unwrap();
    wait_for(
        "the operator's /readyz",
        &mut operator,
        &operator_log,
        || {
            std::net::TcpStream::connect(("127.0.0.1", probe))
                .and_then(|mut stream| {
                    use std::io::{Read, Write};
                    stream.write_all(b"GET /readyz HTTP/1.0\r\nHost: x\r\n\r\n")?;
                    let mut answer = String::new();
                    stream.read_to_string(&mut answer)?;
                    Ok(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"))
                })
                .unwrap_or(false)
        },
    );

    let holder = || {
        let out = Command::new("kubectl")
            .env("KUBECONFIG", &kubeconfig)
            .args(["get", "lease", "modelfleet-operator", "-n", "default"])
            .args(["-o", "jsonpath={.spec.holderIdentity}"])
            .output()
            .expect("kubectl runs");
        // None until the Lease exists.
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    };
    wait_for("the operator to lead", &mut operator, &operator_log, || {
        holder().as_deref() == Some("signals-test")
    });

    let status = terminate(&mut operator);
    assert!(
        status.success(),
        "operator: {status}: {}",
        std::fs::read_to_string(&operator_log).unwrap()
    );
    assert_eq!(
        holder().as_deref(),
        Some(""),
        "the stopped operator released its Lease"
    );
    let status = terminate(&mut sandbox);
    assert!(
        status.success(),
        "sandbox: {status}: {}",
        std::fs::read_to_string(&sandbox_log).unwrap()
    );
}
