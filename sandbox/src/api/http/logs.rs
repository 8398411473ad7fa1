//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: a container's output,
//! as `kubectl logs` reads it. The real API server proxies this request to
//! the node's kubelet; here the kubelet writes into the server's
//! [`PodLogs`]. Parameters and refusals are the real ones: `container`
//! (required when the pod has more than one), `tailLines`, `sinceSeconds`
//! or `sinceTime`, `timestamps`, `limitBytes`, `follow` (the response
//! streams until the container exits or the client goes), and `previous`
//! (no earlier run is kept, so it is refused as the real server refuses a
//! container that never restarted).

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{StatusCode, header};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::super::Shared;
use super::super::error::{ApiError, ApiResult, Cause};
use super::super::ops::{self, Target};
use super::request::Query;
use crate::logs::{Line, PodLogs};

/// What a request asks of the lines.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    container: String,
    tail: Option<usize>,
    since: Option<Timestamp>,
    timestamps: bool,
    limit_bytes: Option<u64>,
    follow: bool,
}

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name")?.as_str().map(str::to_owned))
        .collect()
}

/// Why `container` shows no output: the reason it is waiting, as the
/// kubelet reports it (`ContainerCreating` when it reports nothing yet).
fn waiting_reason(pod: &Value, container: &str) -> Option<String> {
    let statuses = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .filter_map(|list| pod.pointer(&format!("/status/{list}"))?.as_array())
        .flatten();
    let mut reported = false;
    for status in statuses {
        if status.get("name").and_then(Value::as_str) != Some(container) {
            continue;
        }
        reported = true;
        if let Some(waiting) = status.pointer("/state/waiting") {
            return Some(
                waiting
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("ContainerCreating")
                    .to_owned(),
            );
        }
    }
    (!reported).then(|| "ContainerCreating".to_owned())
}

fn options(pod: &Value, name: &str, query: &Query, now: Timestamp) -> ApiResult<Options> {
    let containers = names(pod, "containers");
    let inits = names(pod, "initContainers");
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(c) if containers.iter().chain(&inits).any(|n| n == c) => c.to_owned(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            let mut message = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !inits.is_empty() {
                message.push_str(&format!(
                    " or one of the init containers: [{}]",
                    inits.join(" ")
                ));
            }
            return Err(ApiError::bad_request(message));
        }
    };
    let mut causes = Vec::new();
    let tail = query.int("tailLines")?;
    if let Some(t) = tail.filter(|t| *t < 0) {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "tailLines",
            format!("Invalid value: {t}: must be greater than or equal to 0"),
        ));
    }
    let limit = query.int("limitBytes")?;
    if let Some(l) = limit.filter(|l| *l < 1) {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "limitBytes",
            format!("Invalid value: {l}: must be greater than 0"),
        ));
    }
    let since_seconds = query.int("sinceSeconds")?;
    if let Some(s) = since_seconds.filter(|s| *s < 1) {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "sinceSeconds",
            format!("Invalid value: {s}: must be greater than 0"),
        ));
    }
    let since_time = match query.get("sinceTime").filter(|t| !t.is_empty()) {
        Some(t) => Some(t.parse::<Timestamp>().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid value for sinceTime: {t} (an RFC 3339 time, like 2026-12-06T10:00:00Z)"
            ))
        })?),
        None => None,
    };
    if since_seconds.is_some() && since_time.is_some() {
        causes.push(Cause::new(
            "FieldValueForbidden",
            "",
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        ));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid("PodLogOptions", "", name, causes));
    }
    let since = match (since_seconds, since_time) {
        (Some(s), _) => {
            let back = k8s_openapi::jiff::SignedDuration::from_secs(s);
            Some(now.checked_sub(back).unwrap_or(Timestamp::MIN))
        }
        (None, t) => t,
    };
    Ok(Options {
        container,
        tail: tail.map(|t| usize::try_from(t).unwrap_or(usize::MAX)),
        since,
        timestamps: query.flag("timestamps"),
        limit_bytes: limit.map(i64::unsigned_abs),
        follow: query.flag("follow"),
    })
}

/// The lines of the first answer: those since `since`, then the last `tail`.
fn select(lines: Vec<Line>, options: &Options) -> Vec<Line> {
    let mut lines: Vec<Line> = lines
        .into_iter()
        .filter(|l| options.since.is_none_or(|since| l.at >= since))
        .collect();
    if let Some(tail) = options.tail {
        let skip = lines.len().saturating_sub(tail);
        lines.drain(..skip);
    }
    lines
}

fn render(lines: &[Line], timestamps: bool) -> String {
    let mut out = String::new();
    for line in lines {
        if timestamps {
            out.push_str(&format!("{} ", line.at));
        }
        out.push_str(&line.text);
        out.push('\n');
    }
    out
}

/// What is left of `limit_bytes` after `chunk`; the chunk cut to fit.
fn within_limit(mut chunk: String, left: &mut Option<u64>) -> String {
    if let Some(left) = left {
        let keep = usize::try_from(*left)
            .unwrap_or(usize::MAX)
            .min(chunk.len());
        let mut cut = keep;
        while !chunk.is_char_boundary(cut) {
            cut -= 1;
        }
        chunk.truncate(cut);
        *left -= cut as u64;
    }
    chunk
}

/// Answers one `pods/{name}/log` request.
pub(super) fn serve(
    shared: &Arc<Shared>,
    target: &Target,
    name: &str,
    query: &Query,
    now: Timestamp,
) -> ApiResult<Response> {
    let pod = ops::get(&shared.lock(), target, name)?;
    let options = options(&pod, name, query, now)?;
    if query.flag("previous") {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{}\" in pod \"{name}\" not found",
            options.container
        )));
    }
    let namespace = target.namespace.clone().unwrap_or_default();
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let logs = shared.logs.clone();
    // Subscribed before the first read, so no line written between the
    // two is missed by a follower.
    let changes = logs.subscribe();
    let key = (namespace.as_str(), name, uid.as_str());
    let first = match logs.read(key, &options.container, 0) {
        Some(snapshot) => snapshot,
        None => match waiting_reason(&pod, &options.container) {
            Some(reason) => {
                return Err(ApiError::bad_request(format!(
                    "container \"{}\" in pod \"{name}\" is waiting to start: {reason}",
                    options.container
                )));
            }
            // Started, and has printed nothing.
            None => crate::logs::Snapshot {
                lines: Vec::new(),
                ended: true,
            },
        },
    };
    let next = first.lines.last().map_or(0, |l| l.seq + 1);
    let mut left = options.limit_bytes;
    let head = within_limit(
        render(&select(first.lines, &options), options.timestamps),
        &mut left,
    );
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain");
    let body = if options.follow && !first.ended && left != Some(0) {
        let follow = Follow {
            logs,
            changes,
            key: (namespace, name.to_owned(), uid),
            container: options.container.clone(),
            next,
            left,
            timestamps: options.timestamps,
            done: false,
        };
        let rest = futures::stream::unfold(follow, Follow::next_chunk);
        let head = futures::stream::iter([Ok::<_, std::convert::Infallible>(Bytes::from(head))]);
        Body::from_stream(futures::StreamExt::chain(head, rest))
    } else {
        Body::from(head)
    };
    response
        .body(body)
        .map_err(|e| ApiError::internal(format!("building the log response: {e}")))
}

/// A follower's place in a container's lines.
struct Follow {
    logs: PodLogs,
    changes: tokio::sync::watch::Receiver<u64>,
    key: (String, String, String),
    container: String,
    next: u64,
    left: Option<u64>,
    timestamps: bool,
    done: bool,
}

impl Follow {
    /// The lines written since the last chunk, once there are any; the
    /// stream ends when the container has exited, its pod is gone, or
    /// `limitBytes` is reached.
    async fn next_chunk(mut self) -> Option<(Result<Bytes, std::convert::Infallible>, Self)> {
        loop {
            if self.done || self.left == Some(0) {
                return None;
            }
            let key = (
                self.key.0.as_str(),
                self.key.1.as_str(),
                self.key.2.as_str(),
            );
            let Some(snapshot) = self.logs.read(key, &self.container, self.next) else {
                return None; // The pod was deleted or replaced.
            };
            self.done = snapshot.ended;
            if let Some(last) = snapshot.lines.last() {
                self.next = last.seq + 1;
                let chunk = within_limit(render(&snapshot.lines, self.timestamps), &mut self.left);
                return Some((Ok(Bytes::from(chunk)), self));
            }
            if self.done || self.changes.changed().await.is_err() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "llama-0", "namespace": "team-a", "uid": "u1"},
            "spec": {"initContainers": [{"name": "fetch-weights"}],
                     "containers": [{"name": "engine"}, {"name": "sidecar"}]},
            "status": {"initContainerStatuses": [{"name": "fetch-weights", "state": {"running": {}}}],
                       "containerStatuses": [{"name": "engine", "state": {"waiting": {"reason": "PodInitializing"}}}]}
        })
    }

    fn query(q: &str) -> Query {
        Query::parse(Some(q))
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn a_pod_of_several_containers_needs_one_named_as_the_real_server_says() {
        let error = options(&pod(), "llama-0", &query(""), at(0)).unwrap_err();
        assert_eq!(error.code, 400);
        assert_eq!(
            error.message,
            "a container name must be specified for pod llama-0, choose one of: [engine sidecar] \
             or one of the init containers: [fetch-weights]"
        );
        let error = options(&pod(), "llama-0", &query("container=nope"), at(0)).unwrap_err();
        assert_eq!(error.message, "container nope is not valid for pod llama-0");
        let init = options(&pod(), "llama-0", &query("container=fetch-weights"), at(0)).unwrap();
        assert_eq!(init.container, "fetch-weights");
    }

    #[test]
    fn bad_options_are_invalid_with_every_cause() {
        let error = options(
            &pod(),
            "llama-0",
            &query("container=engine&tailLines=-1&limitBytes=0&sinceSeconds=5&sinceTime=2026-12-06T10:00:00Z"),
            at(0),
        )
        .unwrap_err();
        assert_eq!(error.code, 422);
        assert!(
            error.message.starts_with("PodLogOptions \"llama-0\" is invalid: [tailLines: Invalid value: -1: must be greater than or equal to 0, limitBytes: Invalid value: 0: must be greater than 0"),
            "{}",
            error.message
        );
        assert!(
            error
                .message
                .contains("at most one of `sinceTime` or `sinceSeconds`")
        );
        let error = options(
            &pod(),
            "llama-0",
            &query("container=engine&sinceTime=yesterday"),
            at(0),
        )
        .unwrap_err();
        assert_eq!(error.code, 400);
    }

    #[test]
    fn waiting_containers_say_why() {
        let pod = pod();
        assert_eq!(
            waiting_reason(&pod, "engine").as_deref(),
            Some("PodInitializing")
        );
        assert_eq!(
            waiting_reason(&pod, "sidecar").as_deref(),
            Some("ContainerCreating")
        );
        assert_eq!(waiting_reason(&pod, "fetch-weights"), None);
    }

    #[test]
    fn since_then_tail_then_limit() {
        let lines: Vec<Line> = (0..10)
            .map(|i| Line {
                seq: i,
                at: at(i as i64),
                text: format!("line {i}"),
            })
            .collect();
        let o = options(
            &pod(),
            "llama-0",
            &query("container=engine&sinceSeconds=5&tailLines=3"),
            at(9),
        )
        .unwrap();
        let picked = select(lines.clone(), &o);
        assert_eq!(picked.iter().map(|l| l.seq).collect::<Vec<_>>(), [7, 8, 9]);
        let o = options(
            &pod(),
            "llama-0",
            &query("container=engine&sinceSeconds=3"),
            at(9),
        )
        .unwrap();
        assert_eq!(select(lines.clone(), &o).len(), 4, "lines at 6, 7, 8 and 9");
        let text = render(&lines[..2], true);
        assert!(text.starts_with("2027-01-15T08:00:00Z line 0\n"), "{text}");
        let mut left = Some(10);
        assert_eq!(
            within_limit(render(&lines[..2], false), &mut left),
            "line 0\nlin"
        );
        assert_eq!(left, Some(0));
    }
}
