//! A tenant's webhook receiver on a loopback port: every budget alert the
//! hubs post, as it arrived.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use serde_json::Value;

/// One post: the alert's id, its threshold and the delivery id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Post {
    pub alert: String,
    pub threshold: i64,
    pub delivery: String,
}

/// The receiver, serving until dropped.
pub struct Receiver {
    pub url: String,
    posts: Arc<Mutex<Vec<Post>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let posts: Arc<Mutex<Vec<Post>>> = Arc::default();
        let kept = posts.clone();
        let app = axum::Router::new().route(
            "/alerts",
            axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
                let kept = kept.clone();
                async move {
                    let delivery = headers
                        .get("modelfleet-delivery")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    kept.lock().unwrap().push(Post {
                        alert: body["alertId"].as_str().unwrap_or_default().to_owned(),
                        threshold: body["thresholdPercent"].as_i64().unwrap_or_default(),
                        delivery,
                    });
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/alerts", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url, posts, task }
    }

    pub fn posts(&self) -> Vec<Post> {
        let mut posts = self.posts.lock().unwrap().clone();
        posts.sort();
        posts
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
