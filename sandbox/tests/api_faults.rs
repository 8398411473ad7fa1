//! With 5% of writes failing and every watch cut after two seconds, a
//! `kube::runtime` reflector still converges on the server's state, as
//! the operator and the simulated cluster must.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use modelfleet_sandbox::{ApiServer, ApiServerOptions};
use serde_json::json;

fn snapshot<'a>(items: impl Iterator<Item = &'a ConfigMap>) -> BTreeMap<String, String> {
    items
        .map(|c| {
            let data = c
                .data
                .as_ref()
                .and_then(|d| d.get("n"))
                .cloned()
                .unwrap_or_default();
            (c.name_any(), data)
        })
        .collect()
}

/// Retries a write until the injected faults let it through; counts failures.
async fn retry<T>(failures: &mut u32, mut write: impl AsyncFnMut() -> Result<T, kube::Error>) -> T {
    loop {
        match write().await {
            Ok(value) => return value,
            Err(kube::Error::Api(status)) if matches!(status.code, 500 | 503) => {
                *failures += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflector_converges_through_failing_writes_and_dropped_watches() {
    let server = ApiServer::with_options(ApiServerOptions {
        bookmark_interval: Duration::from_millis(300),
        ..ApiServerOptions::default()
    });
    server
        .faults()
        .seed(42)
        .write_error_rate(0.05)
        .drop_watches_every(Some(Duration::from_secs(2)));
    let client: Client = server.client();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let (reader, writer) = reflector::store();
    let watch = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .for_each(|_| futures::future::ready(()));
    let watch = tokio::spawn(watch);

    let mut failures = 0;
    let started = tokio::time::Instant::now();
    let mut i = 0u32;
    // Long enough for the watch to be cut at least twice.
    while started.elapsed() < Duration::from_millis(5_000) || i < 150 {
        let name = format!("cm-{}", i % 40);
        match i % 4 {
            0 | 1 => {
                let exists = api.get_opt(&name).await.unwrap().is_some();
                if exists {
                    let patch = json!({"data": {"n": i.to_string()}});
                    retry(&mut failures, async || {
                        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                    })
                    .await;
                } else {
                    let cm: ConfigMap = serde_json::from_value(
                        json!({"metadata": {"name": name}, "data": {"n": i.to_string()}}),
                    )
                    .unwrap();
                    retry(&mut failures, async || {
                        match api.create(&PostParams::default(), &cm).await {
                            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                            other => other.map(|_| ()),
                        }
                    })
                    .await;
                }
            }
            2 => {
                let ssa = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"n": i.to_string()}});
                retry(&mut failures, async || {
                    api.patch(
                        &name,
                        &PatchParams::apply("faults-test").force(),
                        &Patch::Apply(&ssa),
                    )
                    .await
                })
                .await;
            }
            _ => {
                retry(&mut failures, async || {
                    match api.delete(&name, &DeleteParams::default()).await {
                        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                        other => other.map(|_| ()),
                    }
                })
                .await;
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(failures > 0, "the injected faults made some writes fail");

    let truth = snapshot(api.list(&ListParams::default()).await.unwrap().items.iter());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let seen = snapshot(reader.state().iter().map(AsRef::as_ref));
        if seen == truth {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reflector did not converge:\nseen  {seen:?}\ntruth {truth:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.abort();
}
