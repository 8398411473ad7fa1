//! Waiting on a ModelDeployment, for the end-to-end tests that drive the
//! operator through a sandbox cluster.

use std::time::{Duration, Instant};

use kube::api::Api;
use modelfleet_core::crd::{ModelDeployment, Phase};

/// How long a deployment may take to reach what a test waits for.
pub const WAIT: Duration = Duration::from_secs(60);

/// Polls `name` until `done` says yes, or fails the test with what it saw.
pub async fn wait_for(
    api: &Api<ModelDeployment>,
    name: &str,
    what: &str,
    done: impl Fn(&ModelDeployment) -> bool,
) -> ModelDeployment {
    let deadline = Instant::now() + WAIT;
    loop {
        let md = api.get(name).await.unwrap();
        if done(&md) {
            return md;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never became {what}: {:#?}",
            md.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The deployment's phase, if it has one yet.
pub fn phase(md: &ModelDeployment) -> Option<Phase> {
    md.status.as_ref().and_then(|s| s.phase)
}
