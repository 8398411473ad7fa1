//! Hugging Face (`hf://org/model[@revision]`), or a mirror of it
//! (`HF_ENDPOINT`): the file list and the commit a revision points to from
//! `<endpoint>/api/models/<repo>/revision/<revision>?blobs=true`, each file
//! from `<endpoint>/<repo>/resolve/<commit>/<path>` with a `Range` header —
//! pinned to the commit, so a branch moving mid-fetch changes nothing. LFS
//! files (the weights) carry the SHA-256 the hub publishes, checked once
//! they are down. `HF_TOKEN` is sent as a Bearer token to the hub (reqwest
//! drops it when a download is redirected to another host, such as the
//! hub's CDN).

use reqwest::header::{AUTHORIZATION, RANGE};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::http::{describe, segments};
use crate::store::{Body, CredentialSource, Failure};
use crate::{Env, FetchError, Object};

pub(crate) const HUB_DENIED_FIX: &str = "the model is gated or private: set HF_TOKEN to a token \
     of an account that has been granted access to it (accept its licence on its page first)";

pub(crate) const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

pub(crate) struct Hub {
    client: reqwest::Client,
    endpoint: Url,
    repo: String,
    commit: String,
    token: Option<String>,
}

#[derive(Deserialize)]
struct RepoInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
    lfs: Option<Lfs>,
}

#[derive(Deserialize)]
struct Lfs {
    sha256: String,
    size: u64,
}

/// `org/model` and the revision (`main` unless `@revision` is given).
pub(crate) fn repo_and_revision(root: &str, path: &str) -> Option<(String, String)> {
    let full = if path.is_empty() {
        root.to_owned()
    } else {
        format!("{root}/{path}")
    };
    let (repo, revision) = match full.rsplit_once('@') {
        Some((repo, revision)) => (repo.to_owned(), revision.to_owned()),
        None => (full, "main".to_owned()),
    };
    let parts: Vec<&str> = repo.split('/').collect();
    let name_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let revision_ok = !revision.is_empty()
        && revision
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    (parts.len() <= 2 && parts.iter().all(|p| name_ok(p)) && revision_ok)
        .then_some((repo, revision))
}

/// Lists `repo` at `revision`; the objects and how the hub was reached.
pub(crate) async fn connect(
    uri: &str,
    repo: String,
    revision: &str,
    env: &Env,
) -> Result<(Hub, Vec<Object>, CredentialSource), FetchError> {
    let endpoint = crate::http::endpoint(
        env.hf_endpoint.as_deref(),
        "HF_ENDPOINT",
        DEFAULT_ENDPOINT,
        "https://hf-mirror.com",
    )?;
    let token = env.hf_token.clone().filter(|t| !t.trim().is_empty());
    let credentials = match &token {
        Some(t) => CredentialSource::of("HF_TOKEN", t),
        None => CredentialSource("no token (HF_TOKEN is not set)".to_owned()),
    };
    let client = crate::http::client(env)?;
    let mut url = endpoint.clone();
    segments(&mut url, &["api", "models", &repo, "revision", revision]);
    url.query_pairs_mut().append_pair("blobs", "true");
    let mut request = client.get(url);
    if let Some(t) = &token {
        request = request.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    let listed = format!("cannot list {uri}");
    let response = request
        .send()
        .await
        .map_err(|e| FetchError::Source(format!("{listed}: {}", describe(&e))))?;
    match response.status() {
        s if s.is_success() => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(FetchError::Source(format!(
                "{listed}: access denied (HTTP {}) with credentials from {}; {HUB_DENIED_FIX}",
                response.status().as_u16(),
                credentials.0
            )));
        }
        StatusCode::NOT_FOUND => {
            return Err(FetchError::Source(format!(
                "{listed}: no such model or revision at {endpoint}; check the name (org/model) \
                 and the revision after @ (a branch, tag or commit)"
            )));
        }
        s => {
            return Err(FetchError::Source(format!(
                "{listed}: the hub answered HTTP {}",
                s.as_u16()
            )));
        }
    }
    let info: RepoInfo = response.json().await.map_err(|e| {
        FetchError::Source(format!(
            "{listed}: the hub's answer is not a model's file list: {e}"
        ))
    })?;
    let objects = info
        .siblings
        .into_iter()
        .map(|s| {
            let (size, sha256) = match (s.lfs, s.size) {
                (Some(lfs), _) => (lfs.size, Some(lfs.sha256.to_ascii_lowercase())),
                (None, Some(size)) => (size, None),
                // Without a size nothing could tell a short download from
                // a whole one.
                (None, None) => {
                    return Err(FetchError::Source(format!(
                        "{listed}: the hub gave no size for {}; a mirror that lists files \
                         must give their sizes (?blobs=true)",
                        s.rfilename
                    )));
                }
            };
            Ok(Object {
                key: s.rfilename.clone(),
                relative: s.rfilename,
                size,
                etag: None,
                sha256,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let hub = Hub {
        client,
        endpoint,
        repo,
        commit: info.sha,
        token,
    };
    Ok((hub, objects, credentials))
}

impl Hub {
    pub(crate) async fn open(
        &self,
        object: &Object,
        start: u64,
        end: u64,
    ) -> Result<Body, Failure> {
        let mut url = self.endpoint.clone();
        segments(
            &mut url,
            &[&self.repo, "resolve", &self.commit, &object.key],
        );
        let mut request = self
            .client
            .get(url)
            .header(RANGE, format!("bytes={start}-{end}"));
        if let Some(t) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let response = request
            .send()
            .await
            .map_err(|e| crate::http::unanswered(&e))?;
        crate::http::ranged(response, object, start, end, "no such file at that commit")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_and_its_revision_are_read_from_the_source() {
        let parse = |root: &str, path: &str| repo_and_revision(root, path);
        assert_eq!(
            parse("meta-llama", "Llama-3.1-8B-Instruct"),
            Some(("meta-llama/Llama-3.1-8B-Instruct".into(), "main".into()))
        );
        assert_eq!(
            parse("Qwen", "Qwen3-8B@v1.0"),
            Some(("Qwen/Qwen3-8B".into(), "v1.0".into()))
        );
        assert_eq!(parse("gpt2", ""), Some(("gpt2".into(), "main".into())));
        for (root, path) in [("a", "b/c"), ("a", "../b"), ("a", "b@"), ("a", "b c")] {
            assert_eq!(parse(root, path), None, "{root}/{path}");
        }
    }
}
