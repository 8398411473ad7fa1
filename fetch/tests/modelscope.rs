//! `modelfleet fetch modelscope://…` against a local server speaking
//! ModelScope's API as its reference client (`modelscope/hub/api.py`)
//! uses it: the file list with sizes and SHA-256 from
//! `/api/v1/models/<org>/<model>/repo/files?Revision=…&Recursive=true`
//! (`Data.Files[]`), files from `/api/v1/models/<org>/<model>/repo?Revision=…&FilePath=…`
//! with `Range`, a private model that wants the token as the
//! `m_session_id` cookie, and a mirror that serves a corrupted shard.

#[path = "support/ranged.rs"]
mod ranged;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use modelfleet_fetch::endpoint::EndpointOverrides;
use modelfleet_fetch::{Env, FetchOptions, fetch};
use serde_json::json;
use sha2::{Digest, Sha256};
use support::{MIB, content, refusal};

const TOKEN: &str = "ms-testtoken-granted-5678";

struct Repo {
    private: bool,
    /// The revisions it has.
    revisions: Vec<&'static str>,
    files: BTreeMap<String, Vec<u8>>,
    /// Files served with other bytes than their published SHA-256.
    corrupt: Vec<String>,
}

#[derive(Clone, Default)]
struct Hub {
    repos: Arc<BTreeMap<String, Repo>>,
    /// Every file request: (path, revision, range).
    downloads: Arc<Mutex<Vec<(String, String, String)>>>,
}

fn files() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        (
            "config.json".to_owned(),
            br#"{"model_type": "qwen3"}"#.to_vec(),
        ),
        (
            "model-00001-of-00002.safetensors".to_owned(),
            content(3, 3 * MIB + 11),
        ),
        (
            "model-00002-of-00002.safetensors".to_owned(),
            content(4, 2 * MIB),
        ),
        ("tokenizer/vocab.json".to_owned(), content(5, 20_000)),
        (
            ".gitattributes".to_owned(),
            b"*.safetensors filter=lfs".to_vec(),
        ),
    ])
}

fn authorized(repo: &Repo, headers: &HeaderMap) -> bool {
    !repo.private
        || headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .any(|c| c.trim() == format!("m_session_id={TOKEN}"))
}

/// The API's error envelope.
fn refused(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"Code": status.as_u16(), "Success": false, "Message": message})),
    )
        .into_response()
}

async fn list(
    State(hub): State<Hub>,
    UrlPath((org, name)): UrlPath<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let repo = match hub.repos.get(&format!("{org}/{name}")) {
        Some(repo) if authorized(repo, &headers) => repo,
        // ModelScope does not tell a private model from a missing one to
        // a stranger.
        Some(_) => return refused(StatusCode::UNAUTHORIZED, "Unauthorized"),
        None => return refused(StatusCode::NOT_FOUND, "model not found"),
    };
    let revision = query.get("Revision").cloned().unwrap_or_default();
    if !repo.revisions.contains(&revision.as_str()) {
        return refused(StatusCode::NOT_FOUND, "revision not found");
    }
    assert_eq!(query.get("Recursive").map(String::as_str), Some("true"));
    let mut listed: Vec<_> = repo
        .files
        .iter()
        .map(|(path, bytes)| {
            let name = path.rsplit('/').next().unwrap();
            json!({"Name": name, "Path": path, "Type": "blob", "Size": bytes.len(),
                "Sha256": hex::encode(Sha256::digest(bytes)), "Revision": "c0ffee", "Mode": "33188"})
        })
        .collect();
    listed.push(
        json!({"Name": "tokenizer", "Path": "tokenizer", "Type": "tree", "Size": 0,
        "Sha256": "", "Revision": "c0ffee"}),
    );
    axum::Json(json!({"Code": 200, "Success": true, "Message": "success",
        "Data": {"Files": listed}}))
    .into_response()
}

async fn file(
    State(hub): State<Hub>,
    UrlPath((org, name)): UrlPath<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(repo) = hub.repos.get(&format!("{org}/{name}")) else {
        return refused(StatusCode::NOT_FOUND, "model not found");
    };
    if !authorized(repo, &headers) {
        return refused(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let (Some(path), Some(revision)) = (query.get("FilePath"), query.get("Revision")) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "FilePath and Revision are required",
        );
    };
    let Some(bytes) = repo.files.get(path) else {
        return refused(StatusCode::NOT_FOUND, "file not found");
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    hub.downloads
        .lock()
        .unwrap()
        .push((path.clone(), revision.clone(), range));
    let mut bytes = bytes.clone();
    if repo.corrupt.contains(path) {
        bytes[0] ^= 0xff;
    }
    ranged::answer(&bytes, &headers)
}

async fn start() -> (String, Hub) {
    let repo = |private, corrupt: &[&str]| Repo {
        private,
        revisions: vec!["master", "v1.0"],
        files: files(),
        corrupt: corrupt.iter().map(|s| (*s).to_owned()).collect(),
    };
    let repos = BTreeMap::from([
        ("acme/open-model".to_owned(), repo(false, &[])),
        ("acme/private-model".to_owned(), repo(true, &[])),
        (
            "acme/bad-mirror".to_owned(),
            repo(false, &["model-00002-of-00002.safetensors"]),
        ),
    ]);
    let hub = Hub {
        repos: Arc::new(repos),
        ..Hub::default()
    };
    let app = Router::new()
        .route("/api/v1/models/{org}/{name}/repo/files", get(list))
        .route("/api/v1/models/{org}/{name}/repo", get(file))
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
            modelscope_endpoint: Some(endpoint.to_owned()),
            modelscope_token: token.map(str::to_owned),
            ..Env::default()
        },
    }
}

#[tokio::test]
async fn a_model_comes_from_modelscope_by_revision_in_ranged_chunks() {
    let (endpoint, hub) = start().await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("open");
    let fetched = fetch(
        &options(&endpoint, "modelscope://acme/open-model@v1.0", &dest, None),
        Duration::from_secs(1),
        |_| {},
    )
    .await
    .unwrap();
    let model: BTreeMap<_, _> = files()
        .into_iter()
        .filter(|(path, _)| path != ".gitattributes")
        .collect();
    for (path, bytes) in &model {
        assert!(std::fs::read(dest.join(path)).unwrap() == *bytes, "{path}");
    }
    assert!(
        !dest.join(".gitattributes").exists(),
        "git's files are not the model"
    );
    assert_eq!(fetched.files, model.len());
    let downloads = hub.downloads.lock().unwrap().clone();
    let chunks: usize = model.values().map(|b| b.len().div_ceil(MIB)).sum();
    assert_eq!(downloads.len(), chunks, "one ranged GET per chunk");
    for (path, revision, range) in &downloads {
        assert_eq!(revision, "v1.0", "{path} by the revision named");
        assert!(range.starts_with("bytes="), "{path} ranged: {range:?}");
    }

    // Without @revision: master, as the reference client.
    let dest = out.path().join("master");
    fetch(
        &options(&endpoint, "modelscope://acme/open-model", &dest, None),
        Duration::from_secs(1),
        |_| {},
    )
    .await
    .unwrap();
    let downloads = hub.downloads.lock().unwrap().clone();
    assert!(downloads[chunks..].iter().all(|(_, r, _)| r == "master"));
    assert!(dest.join("config.json").exists());
}

#[tokio::test]
async fn a_private_model_needs_a_token_and_says_so() {
    let (endpoint, _hub) = start().await;
    let out = tempfile::tempdir().unwrap();
    let e = refusal(&options(
        &endpoint,
        "modelscope://acme/private-model",
        &out.path().join("a"),
        None,
    ))
    .await;
    assert!(
        e.contains("cannot list modelscope://acme/private-model"),
        "{e}"
    );
    assert!(e.contains("access denied (HTTP 401)"), "{e}");
    assert!(
        e.contains("no token (MODELSCOPE_API_TOKEN is not set)"),
        "{e}"
    );
    assert!(e.contains("set MODELSCOPE_API_TOKEN"), "{e}");
    assert_eq!(e.lines().count(), 1, "one line: {e}");

    let wrong = "ms-wrong-token-9999";
    let e = refusal(&options(
        &endpoint,
        "modelscope://acme/private-model",
        &out.path().join("b"),
        Some(wrong),
    ))
    .await;
    assert!(
        e.contains("MODELSCOPE_API_TOKEN …9999"),
        "names the token's tail: {e}"
    );
    assert!(!e.contains(wrong), "never the token: {e}");

    let dest = out.path().join("c");
    fetch(
        &options(
            &endpoint,
            "modelscope://acme/private-model",
            &dest,
            Some(TOKEN),
        ),
        Duration::from_secs(1),
        |_| {},
    )
    .await
    .unwrap();
    assert!(
        std::fs::read(dest.join("model-00002-of-00002.safetensors")).unwrap()
            == content(4, 2 * MIB)
    );

    let e = refusal(&options(
        &endpoint,
        "modelscope://acme/no-such-model",
        &out.path().join("d"),
        None,
    ))
    .await;
    assert!(e.contains("no such model or revision"), "{e}");
    assert!(e.contains("MODELSCOPE_API_TOKEN"), "says what to do: {e}");
    let e = refusal(&options(
        &endpoint,
        "modelscope://acme/open-model@v9",
        &out.path().join("e"),
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
    let e = refusal(&options(
        &endpoint,
        "modelscope://acme/bad-mirror",
        &dest,
        None,
    ))
    .await;
    assert!(e.contains("model-00002-of-00002.safetensors"), "{e}");
    assert!(e.contains("does not match the SHA-256"), "{e}");
    assert!(!dest.exists(), "nothing published");
}

#[test]
fn the_token_is_not_printed_with_the_environment() {
    let env = Env {
        modelscope_token: Some(TOKEN.to_owned()),
        ..Env::default()
    };
    let shown = format!("{env:?}");
    assert!(shown.contains("modelscope_token: Some(\"…\")"), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
}
