//! `modelfleet fetch hf://…` against a local server speaking the Hugging
//! Face Hub's download API: the file list with LFS SHA-256s from
//! `/api/models/<repo>/revision/<rev>?blobs=true`, files by commit from
//! `/<repo>/resolve/<commit>/<path>` with `Range`, a gated model that
//! wants a Bearer token, and a mirror that serves a corrupted shard; and
//! the node cache (`--cache`) over it.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use modelfleet_fetch::endpoint::EndpointOverrides;
use modelfleet_fetch::{Cache, Env, FetchOptions, cache_key, fetch, fetch_through_cache};
use serde_json::json;
use sha2::{Digest, Sha256};
use support::{MIB, content, refusal};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const TOKEN: &str = "hf_testtoken_granted_1234";

struct Repo {
    gated: bool,
    files: BTreeMap<String, Vec<u8>>,
    /// Files served with other bytes than their published SHA-256.
    corrupt: Vec<String>,
    /// Whether the file list gives non-LFS files' sizes (a mirror may not).
    sizes: bool,
}

#[derive(Clone)]
struct Hub {
    repos: Arc<BTreeMap<String, Repo>>,
    downloads: Arc<AtomicUsize>,
}

fn files() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        (
            "config.json".to_owned(),
            br#"{"model_type": "llama"}"#.to_vec(),
        ),
        (
            "model-00001-of-00002.safetensors".to_owned(),
            content(7, 3 * MIB + 5),
        ),
        (
            "model-00002-of-00002.safetensors".to_owned(),
            content(8, 2 * MIB),
        ),
        ("tokenizer.json".to_owned(), content(9, 10_000)),
    ])
}

fn is_lfs(name: &str) -> bool {
    name.ends_with(".safetensors")
}

fn authorized(repo: &Repo, headers: &HeaderMap) -> bool {
    !repo.gated
        || headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {TOKEN}"))
}

async fn info(
    State(hub): State<Hub>,
    UrlPath((org, name, _revision)): UrlPath<(String, String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(repo) = hub.repos.get(&format!("{org}/{name}")) else {
        return (StatusCode::NOT_FOUND, "Repository not found").into_response();
    };
    if !authorized(repo, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            "Access to this model is restricted",
        )
            .into_response();
    }
    assert_eq!(query.get("blobs").map(String::as_str), Some("true"));
    let siblings: Vec<_> = repo
        .files
        .iter()
        .map(|(name, bytes)| {
            if is_lfs(name) {
                json!({"rfilename": name, "size": bytes.len(), "lfs": {
                    "sha256": hex::encode(Sha256::digest(bytes)), "size": bytes.len(),
                    "pointerSize": 134}})
            } else if repo.sizes {
                json!({"rfilename": name, "size": bytes.len()})
            } else {
                json!({"rfilename": name})
            }
        })
        .collect();
    axum::Json(json!({"id": format!("{org}/{name}"), "sha": COMMIT, "siblings": siblings}))
        .into_response()
}

async fn resolve(
    State(hub): State<Hub>,
    UrlPath((org, name, commit, path)): UrlPath<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(repo) = hub.repos.get(&format!("{org}/{name}")) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !authorized(repo, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    assert_eq!(commit, COMMIT, "files are fetched by commit, not by branch");
    let Some(bytes) = repo.files.get(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    hub.downloads.fetch_add(1, Ordering::SeqCst);
    let mut bytes = bytes.clone();
    if repo.corrupt.contains(&path) {
        bytes[0] ^= 0xff;
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
    let Some((start, end)) = range else {
        return (StatusCode::OK, bytes).into_response();
    };
    let end = end.min(bytes.len() - 1);
    (
        StatusCode::PARTIAL_CONTENT,
        [(
            header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{}", bytes.len()),
        )],
        bytes[start..=end].to_vec(),
    )
        .into_response()
}

async fn start() -> (String, Hub) {
    let repos = BTreeMap::from([
        (
            "acme/open-model".to_owned(),
            Repo {
                gated: false,
                files: files(),
                corrupt: vec![],
                sizes: true,
            },
        ),
        (
            "acme/gated-model".to_owned(),
            Repo {
                gated: true,
                files: files(),
                corrupt: vec![],
                sizes: true,
            },
        ),
        (
            "acme/bad-mirror".to_owned(),
            Repo {
                gated: false,
                files: files(),
                corrupt: vec!["model-00002-of-00002.safetensors".to_owned()],
                sizes: true,
            },
        ),
        (
            "acme/sizeless-mirror".to_owned(),
            Repo {
                gated: false,
                files: files(),
                corrupt: vec![],
                sizes: false,
            },
        ),
    ]);
    let hub = Hub {
        repos: Arc::new(repos),
        downloads: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/api/models/{org}/{name}/revision/{revision}", get(info))
        .route("/{org}/{name}/resolve/{commit}/{*path}", get(resolve))
        .with_state(hub.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), hub)
}

fn options(
    endpoint: &str,
    source: &str,
    dest: &std::path::Path,
    token: Option<&str>,
) -> FetchOptions {
    FetchOptions {
        source: source.to_owned(),
        dest: dest.to_owned(),
        endpoint: EndpointOverrides::default(),
        tuning: support::tuning(),
        env: Env {
            hf_endpoint: Some(endpoint.to_owned()),
            hf_token: token.map(str::to_owned),
            ..Env::default()
        },
    }
}

#[tokio::test]
async fn a_model_comes_from_the_hub_by_commit_in_ranged_chunks() {
    let (endpoint, hub) = start().await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("open");
    let fetched = fetch(
        &options(&endpoint, "hf://acme/open-model@main", &dest, None),
        Duration::from_secs(1),
        |_| {},
    )
    .await
    .unwrap();
    for (name, bytes) in files() {
        assert!(std::fs::read(dest.join(&name)).unwrap() == bytes, "{name}");
    }
    assert_eq!(fetched.files, 4);
    let chunks: usize = files().values().map(|b| b.len().div_ceil(MIB)).sum();
    assert_eq!(hub.downloads.load(Ordering::SeqCst), chunks);
}

#[tokio::test]
async fn a_gated_model_needs_a_token_and_says_so() {
    let (endpoint, _hub) = start().await;
    let out = tempfile::tempdir().unwrap();
    let e = refusal(&options(
        &endpoint,
        "hf://acme/gated-model",
        &out.path().join("a"),
        None,
    ))
    .await;
    assert!(e.contains("cannot list hf://acme/gated-model"), "{e}");
    assert!(e.contains("access denied (HTTP 401)"), "{e}");
    assert!(e.contains("no token (HF_TOKEN is not set)"), "{e}");
    assert!(e.contains("set HF_TOKEN"), "{e}");

    let wrong = "hf_wrong_token_9999";
    let e = refusal(&options(
        &endpoint,
        "hf://acme/gated-model",
        &out.path().join("b"),
        Some(wrong),
    ))
    .await;
    assert!(e.contains("HF_TOKEN …9999"), "names the token's tail: {e}");
    assert!(!e.contains(wrong), "never the token: {e}");

    let dest = out.path().join("c");
    fetch(
        &options(&endpoint, "hf://acme/gated-model", &dest, Some(TOKEN)),
        Duration::from_secs(1),
        |_| {},
    )
    .await
    .unwrap();
    assert!(dest.join("config.json").exists());

    let e = refusal(&options(
        &endpoint,
        "hf://acme/no-such-model",
        &out.path().join("d"),
        None,
    ))
    .await;
    assert!(e.contains("no such model or revision"), "{e}");
}

#[tokio::test]
async fn a_file_that_does_not_match_its_published_sha256_is_refused() {
    let (endpoint, _hub) = start().await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("bad");
    let e = refusal(&options(&endpoint, "hf://acme/bad-mirror", &dest, None)).await;
    assert!(e.contains("model-00002-of-00002.safetensors"), "{e}");
    assert!(e.contains("does not match the SHA-256"), "{e}");
    assert!(!dest.exists(), "nothing published");
}

#[tokio::test]
async fn a_listing_without_sizes_is_refused_rather_than_guessed() {
    let (endpoint, hub) = start().await;
    let out = tempfile::tempdir().unwrap();
    let e = refusal(&options(
        &endpoint,
        "hf://acme/sizeless-mirror",
        &out.path().join("s"),
        None,
    ))
    .await;
    assert!(e.contains("gave no size for config.json"), "{e}");
    assert_eq!(hub.downloads.load(Ordering::SeqCst), 0);
}

// The node cache (`fetch --cache`): one download per node, verified on
// every use, evicted least recently used first.

fn cache(dir: &std::path::Path, max_bytes: u64) -> Cache {
    Cache {
        dir: dir.to_owned(),
        max_bytes,
    }
}

fn model_bytes() -> u64 {
    files().values().map(|b| b.len() as u64).sum()
}

#[tokio::test]
async fn two_pods_of_a_node_download_a_model_once_into_its_cache() {
    let (endpoint, hub) = start().await;
    let node = tempfile::tempdir().unwrap();
    let store = cache(&node.path().join("cache"), 1 << 30);
    let source = "hf://acme/open-model@main";
    // Two pods start at once; one downloads, the other waits for it.
    let (a, b) = (
        node.path().join("pod-a/model"),
        node.path().join("pod-b/model"),
    );
    let (for_a, for_b) = (
        options(&endpoint, source, &a, None),
        options(&endpoint, source, &b, None),
    );
    let every = Duration::from_secs(1);
    let (first, second) = tokio::join!(
        fetch_through_cache(&for_a, &store, every, |_| {}),
        fetch_through_cache(&for_b, &store, every, |_| {}),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(
        [first.from_cache, second.from_cache]
            .iter()
            .filter(|c| **c)
            .count(),
        1,
        "one downloaded, the other found it in the cache"
    );
    let chunks: usize = files().values().map(|b| b.len().div_ceil(MIB)).sum();
    assert_eq!(
        hub.downloads.load(Ordering::SeqCst),
        chunks,
        "downloaded once"
    );
    let entry = store.dir.join(cache_key(source));
    for dest in [&a, &b] {
        assert_eq!(std::fs::read_link(dest).unwrap(), entry);
        for (name, bytes) in files() {
            assert!(std::fs::read(dest.join(&name)).unwrap() == bytes, "{name}");
        }
    }

    // A third pod: the cache is checked against the source's listing and
    // used, nothing downloaded.
    let c = node.path().join("pod-c/model");
    let third = fetch_through_cache(
        &options(&endpoint, source, &c, None),
        &store,
        Duration::from_secs(1),
        |_| {},
    )
    .await
    .unwrap();
    assert!(third.from_cache);
    assert_eq!(third.bytes, model_bytes());
    assert_eq!(hub.downloads.load(Ordering::SeqCst), chunks);

    // A damaged copy (a shard cut short) is fetched again, not served.
    let shard = entry.join("model-00002-of-00002.safetensors");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap()
        .set_len(10)
        .unwrap();
    let d = node.path().join("pod-d/model");
    let fourth = fetch_through_cache(
        &options(&endpoint, source, &d, None),
        &store,
        Duration::from_secs(1),
        |_| {},
    )
    .await
    .unwrap();
    assert!(!fourth.from_cache);
    assert_eq!(hub.downloads.load(Ordering::SeqCst), 2 * chunks);
    assert_eq!(std::fs::metadata(&shard).unwrap().len(), 2 * MIB as u64);
}

#[tokio::test]
async fn a_pod_that_cannot_read_the_source_cannot_use_the_cache_either() {
    let (endpoint, _hub) = start().await;
    let node = tempfile::tempdir().unwrap();
    let store = cache(&node.path().join("cache"), 1 << 30);
    let source = "hf://acme/gated-model";
    let with_token = node.path().join("pod-a/model");
    fetch_through_cache(
        &options(&endpoint, source, &with_token, Some(TOKEN)),
        &store,
        Duration::from_secs(1),
        |_| {},
    )
    .await
    .unwrap();
    let without = node.path().join("pod-b/model");
    let error = fetch_through_cache(
        &options(&endpoint, source, &without, None),
        &store,
        Duration::from_secs(1),
        |_| {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("access denied (HTTP 401)"), "{error}");
    assert!(!without.exists(), "no link for a pod refused by the source");
}

#[tokio::test]
async fn the_least_recently_used_model_makes_room_and_a_model_too_big_is_refused() {
    let (endpoint, _hub) = start().await;
    let node = tempfile::tempdir().unwrap();
    // Room for one model, not two.
    let store = cache(&node.path().join("cache"), model_bytes() * 3 / 2);
    let (old, new) = ("hf://acme/open-model", "hf://acme/gated-model");
    for (source, pod) in [(old, "a"), (new, "b")] {
        let dest = node.path().join(pod).join("model");
        let with_token = options(&endpoint, source, &dest, Some(TOKEN));
        fetch_through_cache(&with_token, &store, Duration::from_secs(1), |_| {})
            .await
            .unwrap();
    }
    assert!(
        !store.dir.join(cache_key(old)).exists(),
        "the older model was evicted"
    );
    assert!(store.dir.join(cache_key(new)).join("config.json").exists());

    let tiny = cache(&node.path().join("tiny"), 1024);
    let error = fetch_through_cache(
        &options(&endpoint, old, &node.path().join("c/model"), None),
        &tiny,
        Duration::from_secs(1),
        |_| {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("more than the node cache's 1024 bytes"),
        "{error}"
    );
    assert!(error.contains("modelfleet.io/model-cache-size"), "{error}");
}
