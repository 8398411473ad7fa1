//! A deployment's replicas' last lines: a page of its own, read from the
//! cluster when it is asked for, so that the deployment's page, which polls
//! itself, never calls the cluster.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use modelfleet_api::AppState;
use modelfleet_api::service::DeploymentRef;

use super::deployments::{TEXT, parse_id};
use super::page::{Chrome, PageError, Viewer};

/// Lines of each container the logs page shows.
const LOG_LINES: u32 = 20;

/// The replicas' last lines: read from the cluster when the page is asked
/// for (never by the polled deployment page), at most 16 pods.
#[derive(Template, WebTemplate)]
#[template(path = "console/deployments/logs.html")]
pub(super) struct LogsPage {
    c: Chrome,
    id: String,
    name: String,
    replicas: Vec<modelfleet_api::clusters::PodLogs>,
    /// Why the logs could not be read, when they could not.
    note: Option<String>,
}

pub(super) async fn logs(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<LogsPage, PageError> {
    let id = parse_id(viewer.lang, &id)?;
    let hub = state.hub();
    let which = DeploymentRef::Id(id);
    let d = hub
        .deployment(&viewer.caller, &which)
        .await
        .map_err(|e| viewer.fail(e))?;
    let (replicas, note) = match hub.deployment_logs(&viewer.caller, &which, LOG_LINES).await {
        Ok(replicas) => (replicas, None),
        // Said on the page, which stays up: a busy or unreachable cluster
        // is not the viewer's mistake.
        Err(e) => (Vec::new(), Some(e.detail().to_owned())),
    };
    Ok(LogsPage {
        c: viewer.chrome("deployments", TEXT),
        id: id.to_string(),
        name: d.name,
        replicas,
        note,
    })
}
