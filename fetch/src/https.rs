//! One file from any HTTPS server (`https://host[:port]/path/to/file`),
//! into `<dest>/<its last path segment>`. A ranged GET of its first byte
//! gives the size (from `Content-Range`), the ETag and whether the server
//! honours `Range`; then the file comes in parallel ranged GETs like any
//! other source's, each pinned with `If-Match` to a strong ETag, so that
//! a file replaced mid-download is refused (HTTP 412) rather than
//! stitched from two versions. A server that ignores `Range` is refused
//! with one line, unless the whole file fits in one chunk. No credentials
//! are sent: an HTTPS source is a public or network-private file.

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_MATCH, RANGE};
use reqwest::{StatusCode, Url};

use crate::http::describe;
use crate::store::{Body, CredentialSource, Failure};
use crate::{Env, FetchError, Object};

pub(crate) const HTTPS_DENIED_FIX: &str = "an https:// source carries no credentials: make the \
     file readable without them, or put it in an object store or hub that takes credentials";

pub(crate) struct Https {
    client: reqwest::Client,
    url: Url,
}

/// Looks at the file at `uri` (`https://<host>/<path>`, checked by core):
/// the one object it is, and how the server was reached.
pub(crate) async fn connect(
    uri: &str,
    host: &str,
    path: &str,
    chunk_size: u64,
    env: &Env,
) -> Result<(Https, Vec<Object>, CredentialSource), FetchError> {
    let url = Url::parse(&format!("https://{host}/{path}"))
        .map_err(|e| FetchError::BadSource(format!("{uri} is not a URL: {e}")))?;
    let name = path.rsplit('/').next().unwrap_or(path).to_owned();
    let source = Https {
        client: crate::http::client(env)?,
        url,
    };
    let credentials = CredentialSource("no credentials (an https:// source takes none)".into());
    let what = format!("cannot read {uri}");
    let response = source
        .client
        .get(source.url.clone())
        .header(RANGE, "bytes=0-0")
        .send()
        .await
        .map_err(|e| FetchError::Source(format!("{what}: {}", describe(&e))))?;
    let status = response.status();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let size = match status {
        StatusCode::PARTIAL_CONTENT => header(CONTENT_RANGE)
            .and_then(|v| v.rsplit_once('/').and_then(|(_, t)| t.parse::<u64>().ok())),
        StatusCode::OK => header(CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok()),
        // An empty file has no first byte.
        StatusCode::RANGE_NOT_SATISFIABLE => Some(0),
        StatusCode::NOT_FOUND | StatusCode::GONE => {
            return Err(FetchError::Source(format!(
                "{what}: no such file on the server (HTTP {}); check the URL",
                status.as_u16()
            )));
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(FetchError::Source(format!(
                "{what}: access denied (HTTP {}); {HTTPS_DENIED_FIX}",
                status.as_u16()
            )));
        }
        s => {
            return Err(FetchError::Source(format!(
                "{what}: the server answered HTTP {}",
                s.as_u16()
            )));
        }
    };
    let Some(size) = size else {
        return Err(FetchError::Source(format!(
            "{what}: the server gave no size for the file (no Content-Range or Content-Length)"
        )));
    };
    if status == StatusCode::OK && size > chunk_size {
        return Err(FetchError::Source(format!(
            "{what}: the server does not honour Range requests (it answered a ranged GET with \
             the whole file), which a parallel, resumable fetch needs; serve the file from a \
             server that does (nginx, Apache, any object store)"
        )));
    }
    // `If-Match` compares strongly: a weak ETag (W/"…") would refuse
    // every request, so only a strong one pins the download.
    let etag = header(ETAG).filter(|e| !e.starts_with("W/"));
    let object = Object {
        key: path.to_owned(),
        relative: name,
        size,
        etag,
        sha256: None,
    };
    Ok((source, vec![object], credentials))
}

impl Https {
    pub(crate) async fn open(
        &self,
        object: &Object,
        start: u64,
        end: u64,
    ) -> Result<Body, Failure> {
        let mut request = self
            .client
            .get(self.url.clone())
            .header(RANGE, format!("bytes={start}-{end}"));
        if let Some(etag) = &object.etag {
            request = request.header(IF_MATCH, etag);
        }
        let response = request
            .send()
            .await
            .map_err(|e| crate::http::unanswered(&e))?;
        crate::http::ranged(response, object, start, end, "no such file on the server")
    }
}
