//! `modelfleet fetch https://…` against a local TLS server (the sandbox's
//! test certificate for 127.0.0.1, signed by its test CA, which the fetch
//! trusts through `Env::ca_file` as `--ca-file` does): one file in
//! parallel ranged GETs pinned by `If-Match`, a file replaced mid-download
//! refused and then fetched anew, a missing file, a server that ignores
//! `Range`, and a certificate the fetch was not told to trust.

#[path = "support/ranged.rs"]
mod ranged;
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::service::TowerToHyperService;
use modelfleet_fetch::endpoint::EndpointOverrides;
use modelfleet_fetch::{Env, FetchOptions, fetch};
use support::{MIB, content, refusal};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

const WEIGHTS: usize = 4 * MIB + 7;

#[derive(Clone, Default)]
struct Server {
    /// GETs of /models/w.bin.
    gets: Arc<AtomicUsize>,
    /// GETs of /models/changing.bin; its version is 2 from the 3rd on.
    changing_gets: Arc<AtomicUsize>,
}

fn etag(version: usize) -> String {
    format!("\"v{version}\"")
}

/// Answers like nginx: a strong ETag, ranges, `If-Match` (412 when it
/// names another version).
fn versioned(bytes: &[u8], tag: &str, headers: &HeaderMap) -> Response {
    if let Some(wanted) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
        && wanted != tag
    {
        return StatusCode::PRECONDITION_FAILED.into_response();
    }
    let mut response = ranged::answer(bytes, headers);
    response
        .headers_mut()
        .insert(header::ETAG, tag.parse().unwrap());
    response
}

async fn weights(State(server): State<Server>, headers: HeaderMap) -> Response {
    server.gets.fetch_add(1, Ordering::SeqCst);
    versioned(&content(1, WEIGHTS), &etag(1), &headers)
}

async fn changing(State(server): State<Server>, headers: HeaderMap) -> Response {
    let n = server.changing_gets.fetch_add(1, Ordering::SeqCst) + 1;
    let version = if n < 3 { 1 } else { 2 };
    versioned(&content(version as u8, WEIGHTS), &etag(version), &headers)
}

async fn no_ranges() -> Response {
    (StatusCode::OK, content(9, 3 * MIB)).into_response()
}

fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .unwrap()
}

fn ca_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/tls/ca.crt")
}

async fn start() -> (String, Server) {
    let server = Server::default();
    let app = Router::new()
        .route("/models/w.bin", get(weights))
        .route("/models/changing.bin", get(changing))
        .route("/models/no-ranges.bin", get(no_ranges))
        .with_state(server.clone());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der(include_str!(
        "support/tls/server.key"
    ))));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(der(include_str!(
                "support/tls/server.crt"
            )))],
            key,
        )
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, service) = (acceptor.clone(), TowerToHyperService::new(app.clone()));
            tokio::spawn(async move {
                // A client that does not trust the certificate hangs up.
                if let Ok(stream) = acceptor.accept(stream).await {
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            });
        }
    });
    (format!("https://{addr}"), server)
}

fn options(source: &str, dest: &Path, ca_file: Option<PathBuf>) -> FetchOptions {
    FetchOptions {
        source: source.to_owned(),
        dest: dest.to_owned(),
        endpoint: EndpointOverrides::default(),
        tuning: support::tuning(),
        env: Env {
            ca_file,
            ..Env::default()
        },
    }
}

#[tokio::test]
async fn one_file_comes_in_ranged_chunks_into_the_destination() {
    let (base, server) = start().await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("w");
    let fetched = fetch(
        &options(&format!("{base}/models/w.bin"), &dest, Some(ca_file())),
        Duration::from_secs(1),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((fetched.files, fetched.bytes), (1, WEIGHTS as u64));
    assert!(std::fs::read(dest.join("w.bin")).unwrap() == content(1, WEIGHTS));
    // The first byte for size and ETag, then one GET per chunk.
    assert_eq!(
        server.gets.load(Ordering::SeqCst),
        1 + WEIGHTS.div_ceil(MIB)
    );
}

#[tokio::test]
async fn a_file_replaced_mid_download_is_refused_then_fetched_anew() {
    let (base, _server) = start().await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("c");
    let source = format!("{base}/models/changing.bin");
    let e = refusal(&options(&source, &dest, Some(ca_file()))).await;
    assert!(
        e.contains("the file changed while it was downloaded"),
        "{e}"
    );
    assert!(
        !dest.exists(),
        "nothing stitched from two versions is published"
    );

    // The next run sees the new ETag and fetches the new version whole.
    fetch(
        &options(&source, &dest, Some(ca_file())),
        Duration::from_secs(1),
        |_| {},
    )
    .await
    .unwrap();
    assert!(std::fs::read(dest.join("changing.bin")).unwrap() == content(2, WEIGHTS));
}

#[tokio::test]
async fn a_missing_file_and_a_server_without_ranges_are_one_line_each() {
    let (base, _server) = start().await;
    let out = tempfile::tempdir().unwrap();
    let e = refusal(&options(
        &format!("{base}/models/nothing.bin"),
        &out.path().join("m"),
        Some(ca_file()),
    ))
    .await;
    assert!(e.contains("no such file on the server (HTTP 404)"), "{e}");
    assert!(e.contains("check the URL"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");

    let e = refusal(&options(
        &format!("{base}/models/no-ranges.bin"),
        &out.path().join("r"),
        Some(ca_file()),
    ))
    .await;
    assert!(e.contains("does not honour Range requests"), "{e}");
}

#[tokio::test]
async fn a_certificate_the_fetch_was_not_told_to_trust_is_refused() {
    let (base, server) = start().await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("u");
    let e = refusal(&options(&format!("{base}/models/w.bin"), &dest, None)).await;
    assert!(e.contains("certificate is not trusted"), "{e}");
    assert!(e.contains("--ca-file or MODELFLEET_FETCH_CA_FILE"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert_eq!(
        server.gets.load(Ordering::SeqCst),
        0,
        "no request got through"
    );
    assert!(!dest.exists());

    let not_pem = out.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let e = refusal(&options(
        &format!("{base}/models/w.bin"),
        &dest,
        Some(not_pem),
    ))
    .await;
    assert!(e.contains("holds no certificate"), "{e}");
}
