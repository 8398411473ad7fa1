//! What the sources spoken to over HTTP share — Hugging Face, ModelScope
//! and a plain HTTPS server: one client, which trusts the system's roots
//! and, with `--ca-file` (`MODELFLEET_FETCH_CA_FILE`), a private CA's
//! certificates too; the answer to a ranged GET, read the same way for
//! all; and errors that say so when a certificate is the problem.

use std::time::Duration;

use reqwest::{StatusCode, Url};

use crate::store::{Body, Failure};
use crate::{Env, FetchError, Object};

/// What to do when the server's certificate is not trusted.
pub(crate) const UNTRUSTED_FIX: &str = "if the server's certificate is signed by a private CA, \
     give that CA's certificate (PEM) with --ca-file or MODELFLEET_FETCH_CA_FILE";

/// A client for the HTTP sources: the system's roots, plus those of
/// `env.ca_file`.
pub(crate) fn client(env: &Env) -> Result<reqwest::Client, FetchError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("modelfleet-fetch/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &env.ca_file {
        let bad = |why: String| {
            FetchError::BadSource(format!(
                "--ca-file (MODELFLEET_FETCH_CA_FILE) {}: {why}; give a file of PEM \
                 certificates (-----BEGIN CERTIFICATE-----)",
                path.display()
            ))
        };
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read ({e})")))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| bad(format!("is not PEM ({e})")))?;
        if certificates.is_empty() {
            return Err(bad("holds no certificate".to_owned()));
        }
        builder = builder.tls_certs_merge(certificates);
    }
    builder
        .build()
        .map_err(|e| FetchError::Io(format!("cannot build an HTTP client: {}", describe(&e))))
}

/// An endpoint from the environment (`var`), or `default`: an http:// or
/// https:// URL without a trailing '/'.
pub(crate) fn endpoint(
    value: Option<&str>,
    var: &str,
    default: &str,
    example: &str,
) -> Result<Url, FetchError> {
    let text = value
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .unwrap_or(default);
    Url::parse(text.trim_end_matches('/'))
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            FetchError::BadSource(format!(
                "{var} {text:?} must be an http:// or https:// URL, like {example}"
            ))
        })
}

/// Appends `parts` to `url`'s path, each split at '/' and percent-encoded.
pub(crate) fn segments(url: &mut Url, parts: &[&str]) {
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        for part in parts {
            for segment in part.split('/') {
                path.push(segment);
            }
        }
    }
}

/// A request error and its causes in one line; a certificate the client
/// does not trust says what to do about it.
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    if text.contains("certificate") {
        format!("the server's certificate is not trusted ({text}); {UNTRUSTED_FIX}")
    } else {
        text
    }
}

/// The body of `response` to a GET of bytes `start..=end` of `object`, or
/// what went wrong; `missing` says what a 404 means for this source.
pub(crate) fn ranged(
    response: reqwest::Response,
    object: &Object,
    start: u64,
    end: u64,
    missing: &str,
) -> Result<Body, Failure> {
    let status = response.status();
    match status {
        StatusCode::PARTIAL_CONTENT => {
            // A total other than the listed size is another file.
            let total = response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit_once('/'))
                .and_then(|(_, total)| total.parse::<u64>().ok());
            match total {
                Some(total) if total != object.size => Err(Failure {
                    transient: false,
                    detail: format!(
                        "the file changed while it was downloaded ({total} bytes now, {} when \
                         listed); run the fetch again",
                        object.size
                    ),
                }),
                _ => Ok(Body::Http(response)),
            }
        }
        // The whole file, asked for whole.
        StatusCode::OK if start == 0 && end + 1 >= object.size => Ok(Body::Http(response)),
        StatusCode::OK => Err(Failure {
            transient: false,
            detail: "the server does not honour Range requests".to_owned(),
        }),
        StatusCode::PRECONDITION_FAILED => Err(Failure {
            transient: false,
            detail: "the file changed while it was downloaded (its ETag is no longer the one \
                     listed: HTTP 412); run the fetch again to download the new version"
                .to_owned(),
        }),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Failure {
            transient: false,
            detail: format!("access denied (HTTP {})", status.as_u16()),
        }),
        StatusCode::NOT_FOUND => Err(Failure {
            transient: false,
            detail: missing.to_owned(),
        }),
        s => Err(Failure {
            transient: s.is_server_error()
                || matches!(
                    s,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT
                ),
            detail: format!("HTTP {}", s.as_u16()),
        }),
    }
}

/// A request that failed before an answer: worth another try, unless the
/// certificate is not trusted (which trying again does not change).
pub(crate) fn unanswered(e: &reqwest::Error) -> Failure {
    let detail = describe(e);
    Failure {
        transient: !detail.contains(UNTRUSTED_FIX),
        detail,
    }
}
