//! ModelScope (`modelscope://org/model[@revision]`), or a mirror of it
//! (`MODELSCOPE_ENDPOINT`), through the HTTP API its reference client
//! (`modelscope/hub/api.py`) uses: the file list with sizes and SHA-256
//! from `<endpoint>/api/v1/models/<org>/<model>/repo/files?Revision=<rev>&Recursive=true`
//! (`Data.Files[]`: `Path`, `Size`, `Sha256`, `Type` `blob` or `tree`),
//! each file from `<endpoint>/api/v1/models/<org>/<model>/repo?Revision=<rev>&FilePath=<path>`
//! with a `Range` header. Files are fetched by the revision named (the
//! API lists no commit to pin to); every file with a published SHA-256 is
//! checked once it is down, so a branch that moves mid-fetch fails the
//! check instead of mixing versions. `MODELSCOPE_API_TOKEN` is sent as the
//! reference client sends it, as the `m_session_id` cookie (reqwest drops
//! it when a download is redirected to another host, such as a CDN).

use reqwest::header::{COOKIE, RANGE};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::http::{describe, segments};
use crate::store::{Body, CredentialSource, Failure};
use crate::{Env, FetchError, Object};

pub(crate) const MODELSCOPE_DENIED_FIX: &str = "the model is private or gated: set \
     MODELSCOPE_API_TOKEN to an access token (your ModelScope account's settings, Access Token) \
     of an account that has been granted access to it";

pub(crate) const DEFAULT_ENDPOINT: &str = "https://www.modelscope.cn";

/// The revision of `modelscope://org/model` without `@revision`, as in
/// the reference client.
pub(crate) const DEFAULT_REVISION: &str = "master";

pub(crate) struct ModelScope {
    client: reqwest::Client,
    endpoint: Url,
    org: String,
    model: String,
    revision: String,
    token: Option<String>,
}

/// The API's envelope: `Code` 200 and `Success` on success, else a
/// `Message`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data: Option<Listing>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listing {
    #[serde(default)]
    files: Option<Vec<File>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct File {
    path: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default, rename = "Type")]
    kind: Option<String>,
}

/// `org`, `model` and the revision of a source core has checked
/// (`model[@revision]` in `path`).
pub(crate) fn model_and_revision(path: &str) -> (String, String) {
    match path.split_once('@') {
        Some((model, revision)) => (model.to_owned(), revision.to_owned()),
        None => (path.to_owned(), DEFAULT_REVISION.to_owned()),
    }
}

/// Lists the model at `revision`; the objects and how ModelScope was
/// reached.
pub(crate) async fn connect(
    uri: &str,
    org: &str,
    model: &str,
    revision: &str,
    env: &Env,
) -> Result<(ModelScope, Vec<Object>, CredentialSource), FetchError> {
    let endpoint = crate::http::endpoint(
        env.modelscope_endpoint.as_deref(),
        "MODELSCOPE_ENDPOINT",
        DEFAULT_ENDPOINT,
        "https://www.modelscope.ai",
    )?;
    let token = env
        .modelscope_token
        .clone()
        .filter(|t| !t.trim().is_empty());
    let credentials = match &token {
        Some(t) => CredentialSource::of("MODELSCOPE_API_TOKEN", t),
        None => CredentialSource("no token (MODELSCOPE_API_TOKEN is not set)".to_owned()),
    };
    let source = ModelScope {
        client: crate::http::client(env)?,
        endpoint,
        org: org.to_owned(),
        model: model.to_owned(),
        revision: revision.to_owned(),
        token,
    };
    let listed = format!("cannot list {uri}");
    let mut url = source.endpoint.clone();
    segments(
        &mut url,
        &["api", "v1", "models", org, model, "repo", "files"],
    );
    url.query_pairs_mut()
        .append_pair("Revision", revision)
        .append_pair("Recursive", "true");
    let response = source
        .authorized(source.client.get(url))
        .send()
        .await
        .map_err(|e| FetchError::Source(format!("{listed}: {}", describe(&e))))?;
    let status = response.status();
    match status {
        s if s.is_success() => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(FetchError::Source(format!(
                "{listed}: access denied (HTTP {}) with credentials from {}; \
                 {MODELSCOPE_DENIED_FIX}",
                status.as_u16(),
                credentials.0
            )));
        }
        StatusCode::NOT_FOUND => {
            return Err(FetchError::Source(format!(
                "{listed}: no such model or revision at {} with credentials from {}; check the \
                 name (org/model) and the revision after @ (a branch or tag, default master), \
                 and for a private model set MODELSCOPE_API_TOKEN",
                source.endpoint, credentials.0
            )));
        }
        s => {
            return Err(FetchError::Source(format!(
                "{listed}: ModelScope answered HTTP {}",
                s.as_u16()
            )));
        }
    }
    let answer: Answer = response.json().await.map_err(|e| {
        FetchError::Source(format!(
            "{listed}: the answer is not a model's file list: {e}"
        ))
    })?;
    // The API may answer HTTP 200 with an error inside.
    let ok = answer.success != Some(false)
        && answer
            .code
            .as_ref()
            .is_none_or(|c| c.as_u64() == Some(200) || c.as_str() == Some("200"));
    let files = match (ok, answer.data.and_then(|d| d.files)) {
        (true, Some(files)) => files,
        (_, _) => {
            return Err(FetchError::Source(format!(
                "{listed}: ModelScope refused: {} (credentials from {}); check the name \
                 (org/model) and the revision after @",
                answer
                    .message
                    .as_deref()
                    .unwrap_or("no file list in its answer"),
                credentials.0
            )));
        }
    };
    let objects = files
        .into_iter()
        .filter(|f| f.kind.as_deref() != Some("tree"))
        // As the reference client does: git's own files are not the model.
        .filter(|f| !matches!(f.path.as_str(), ".gitignore" | ".gitattributes"))
        .map(|f| {
            // Without a size nothing could tell a short download from a
            // whole one.
            let size = f.size.ok_or_else(|| {
                FetchError::Source(format!(
                    "{listed}: ModelScope gave no size for {}; a mirror must list sizes",
                    f.path
                ))
            })?;
            Ok(Object {
                key: f.path.clone(),
                relative: f.path,
                size,
                etag: None,
                sha256: f
                    .sha256
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty()),
            })
        })
        .collect::<Result<Vec<_>, FetchError>>()?;
    Ok((source, objects, credentials))
}

impl ModelScope {
    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => request.header(COOKIE, format!("m_session_id={t}")),
            None => request,
        }
    }

    pub(crate) async fn open(
        &self,
        object: &Object,
        start: u64,
        end: u64,
    ) -> Result<Body, Failure> {
        let mut url = self.endpoint.clone();
        segments(
            &mut url,
            &["api", "v1", "models", &self.org, &self.model, "repo"],
        );
        url.query_pairs_mut()
            .append_pair("Revision", &self.revision)
            .append_pair("FilePath", &object.key);
        let request = self
            .client
            .get(url)
            .header(RANGE, format!("bytes={start}-{end}"));
        let response = self
            .authorized(request)
            .send()
            .await
            .map_err(|e| crate::http::unanswered(&e))?;
        crate::http::ranged(
            response,
            object,
            start,
            end,
            "no such file at that revision",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_is_master_unless_named() {
        assert_eq!(
            model_and_revision("Qwen3-8B"),
            ("Qwen3-8B".into(), "master".into())
        );
        assert_eq!(
            model_and_revision("Qwen3-8B@release/v1"),
            ("Qwen3-8B".into(), "release/v1".into())
        );
    }
}
