//! Watch streams, as the real server sends them: newline-delimited
//! `{"type", "object"}` events after the requested resourceVersion
//! (replayed from the bounded history), the current state as ADDED events
//! when no resourceVersion is given, BOOKMARKs when asked for, an ERROR
//! event with a 410 `Expired` Status for a version older than the history,
//! and an end after `timeoutSeconds`. A watch with a selector sees an
//! object that stops matching as DELETED and one that starts as ADDED.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::SinkExt;
use futures::channel::mpsc;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::Shared;
use super::convert::to_view;
use super::error::{ApiError, ApiResult};
use super::ops::{self, Target};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{EventType, WatchEvent};
use super::table::{self, IncludeObject};

/// A parsed watch request.
#[derive(Debug)]
pub struct WatchRequest {
    pub target: Target,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Duration,
    pub table: Option<IncludeObject>,
}

struct Filter {
    target: Target,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, view: &Value) -> bool {
        let namespace_ok = self
            .target
            .namespace
            .as_deref()
            .is_none_or(|ns| ops::meta(view, "namespace") == Some(ns));
        namespace_ok && self.labels.matches_object(view) && self.fields.matches(view)
    }

    /// What this watcher sees of a committed change, if anything.
    fn translate(&self, event: &WatchEvent) -> Option<(&'static str, Value)> {
        let view = to_view(&self.target.ty, &self.target.version, event.object.clone());
        let now = self.matches(&view);
        let kind = match event.type_ {
            EventType::Modified => {
                let before = event
                    .previous
                    .as_ref()
                    .map(|p| {
                        self.matches(&to_view(&self.target.ty, &self.target.version, p.clone()))
                    })
                    .unwrap_or(false);
                match (before, now) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                }
            }
            other if now => other.as_str(),
            _ => return None,
        };
        Some((kind, view))
    }
}

fn line(kind: &str, object: Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn expired(requested: u64, oldest: u64) -> Bytes {
    let status =
        ApiError::gone(format!("too old resource version: {requested} ({oldest})")).to_status();
    line("ERROR", status)
}

fn stream_response(rx: mpsc::Receiver<Result<Bytes, Infallible>>) -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        Body::from_stream(rx),
    )
        .into_response()
}

/// Starts a watch; the response streams until the timeout, a fault, or
/// the client goes away.
pub fn start(shared: &Arc<Shared>, request: WatchRequest) -> ApiResult<Response> {
    let since = match request.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
        ),
    };
    let filter = Filter {
        target: request.target,
        labels: request.labels,
        fields: request.fields,
    };
    let (mut tx, rx) = mpsc::channel(64);
    let (initial, subscription, start_rv) = {
        let mut state = shared.lock();
        let initial = match since {
            None => ops::list(&state, &filter.target, &filter.labels, &filter.fields).0,
            Some(_) => Vec::new(),
        };
        let start_rv = state.store.current_rv();
        match state.store.subscribe(&filter.target.ty.storage, since) {
            Ok(sub) => (initial, sub, start_rv),
            Err(oldest) => {
                let requested = since.unwrap_or_default();
                tokio::spawn(async move {
                    let _ = tx.send(Ok(expired(requested, oldest))).await;
                });
                return Ok(stream_response(rx));
            }
        }
    };
    let faults = shared.faults.clone();
    let timeout = match faults.watch_lifetime() {
        Some(lifetime) => lifetime.min(request.timeout),
        None => request.timeout,
    };
    let bookmark_every = shared.options.bookmark_interval;
    let shared = shared.clone();
    let table_mode = request.table;
    let bookmarks = request.bookmarks;
    let send_initial_events = request.send_initial_events;
    tokio::spawn(async move {
        let mut first = true;
        let mut render = |kind: &str, object: Value| -> Bytes {
            if kind == "BOOKMARK" || kind == "ERROR" {
                return line(kind, object);
            }
            match table_mode {
                Some(include) => {
                    let t = table::table(
                        &filter.target.ty,
                        &filter.target.version,
                        &[object],
                        None,
                        include,
                        first,
                    );
                    first = false;
                    line(kind, t)
                }
                None => line(kind, object),
            }
        };
        let bookmark = |rv: u64, initial_end: bool| {
            let mut metadata = json!({"resourceVersion": rv.to_string()});
            if initial_end {
                metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            json!({"kind": filter.target.ty.kind, "apiVersion": filter.target.ty.api_version(&filter.target.version),
                   "metadata": metadata})
        };
        for object in initial {
            if tx.send(Ok(render("ADDED", object))).await.is_err() {
                return;
            }
        }
        if send_initial_events
            && tx
                .send(Ok(render("BOOKMARK", bookmark(start_rv, true))))
                .await
                .is_err()
        {
            return;
        }
        for event in &subscription.replay {
            if let Some((kind, object)) = filter.translate(event)
                && tx.send(Ok(render(kind, object))).await.is_err()
            {
                return;
            }
        }
        let mut live = subscription.live;
        let mut disconnects = faults.disconnects();
        disconnects.borrow_and_update();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + bookmark_every, bookmark_every);
        loop {
            let out = tokio::select! {
                _ = &mut deadline => return,
                _ = disconnects.changed() => return,
                received = live.recv() => match received {
                    Ok(event) => filter.translate(&event).map(|(kind, object)| render(kind, object)),
                    // A watcher too slow for the feed is closed; it resumes
                    // from the last version it saw, or re-lists on 410.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
                _ = ticker.tick(), if bookmarks => {
                    let rv = shared.lock().store.current_rv();
                    loop {
                        match live.try_recv() {
                            Ok(event) => {
                                if let Some((kind, object)) = filter.translate(&event)
                                    && tx.send(Ok(render(kind, object))).await.is_err()
                                {
                                    return;
                                }
                            }
                            Err(TryRecvError::Empty) => break,
                            Err(_) => return,
                        }
                    }
                    Some(render("BOOKMARK", bookmark(rv, false)))
                }
            };
            if let Some(bytes) = out
                && tx.send(Ok(bytes)).await.is_err()
            {
                return;
            }
        }
    });
    Ok(stream_response(rx))
}
