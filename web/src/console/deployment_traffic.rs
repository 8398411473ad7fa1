//! The traffic figures on a deployment's page: requests and tokens per
//! second over the last 15 minutes, time to first token and per output
//! token (p50, p90, p99), and what a million tokens cost
//! (`Hub::deployment_traffic`). Their own fragment,
//! `/deployments/{id}/traffic`, which htmx refreshes every 10 seconds and
//! when "Try it" has had an answer. Rates and times are shown rounded;
//! money is formatted from the exact amounts billing keeps.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use modelfleet_api::AppState;
use modelfleet_api::service::DeploymentRef;
use modelfleet_api::service::traffic::{DeploymentTraffic, TRAFFIC_WINDOW_MINUTES, TokenCost};
use modelfleet_api::store::{Deployment, Percentiles};

use super::deployments::{TEXT, parse_id};
use super::page::{Chrome, PageError, Viewer};

/// The figures as the page shows them.
#[derive(Debug)]
pub struct TrafficView {
    /// The deployment's id, for the fragment's URL.
    pub id: String,
    /// Refreshed by itself (not once the deployment is deleted).
    pub polling: bool,
    pub minutes: i64,
    /// `None` when the viewer may not read usage, or the figures could
    /// not be read (`unavailable` says why).
    pub figures: Option<Figures>,
    pub unavailable: Option<String>,
}

#[derive(Debug)]
pub struct Figures {
    pub requests: u64,
    pub errors: u64,
    pub requests_per_second: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub input_per_second: String,
    pub output_per_second: String,
    /// `p50 / p90 / p99` in milliseconds, and how many answers; `None`
    /// without streamed answers.
    pub ttft: Option<(String, u64)>,
    pub tpot: Option<(String, u64)>,
    pub cost: CostView,
}

/// What a million tokens cost, formatted.
#[derive(Debug, Default)]
pub struct CostView {
    /// Billed by tokens: the list prices per million input and output
    /// tokens.
    pub by_tokens: Option<(String, String)>,
    /// Billed by device time: that cost per million of the window's
    /// tokens, per currency; empty when no tokens (`no_traffic`).
    pub per_million: Vec<String>,
    /// The window's device cost it comes from.
    pub window_cost: Vec<String>,
    pub no_traffic: bool,
    /// Billed by device time that has no price: why.
    pub unpriced: Option<String>,
}

/// A rate per second, rounded to what reads well.
fn per_second(count: u64, seconds: i64) -> String {
    if count == 0 {
        return "0".to_owned();
    }
    let rate = count as f64 / seconds.max(1) as f64;
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else if rate >= 0.1 {
        format!("{rate:.2}")
    } else {
        format!("{rate:.4}")
    }
}

fn millis(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn percentiles(p: Option<Percentiles>) -> Option<(String, u64)> {
    p.map(|p| {
        (
            format!("{} / {} / {}", millis(p.p50), millis(p.p90), millis(p.p99)),
            p.samples,
        )
    })
}

fn figures(t: &DeploymentTraffic) -> Figures {
    let seconds = t.seconds();
    let traffic = &t.traffic;
    let tokens = traffic.input_tokens.saturating_add(traffic.output_tokens);
    let cost = match &t.cost {
        TokenCost::Tokens { input, output } => CostView {
            by_tokens: Some((input.to_string(), output.to_string())),
            ..CostView::default()
        },
        TokenCost::Time {
            window_cost,
            per_million,
        } => CostView {
            by_tokens: None,
            per_million: per_million
                .iter()
                .flatten()
                .map(ToString::to_string)
                .collect(),
            window_cost: window_cost.iter().map(ToString::to_string).collect(),
            no_traffic: tokens == 0,
            unpriced: None,
        },
        TokenCost::Unpriced { reason } => CostView {
            unpriced: Some(reason.clone()),
            no_traffic: tokens == 0,
            ..CostView::default()
        },
    };
    Figures {
        requests: traffic.requests,
        errors: traffic.errors,
        requests_per_second: per_second(traffic.requests, seconds),
        input_tokens: traffic.input_tokens,
        output_tokens: traffic.output_tokens,
        input_per_second: per_second(traffic.input_tokens, seconds),
        output_per_second: per_second(traffic.output_tokens, seconds),
        ttft: percentiles(traffic.ttft_ms),
        tpot: percentiles(traffic.tpot_ms),
        cost,
    }
}

/// The figures of `d` for `viewer`. A failure to read them leaves the
/// rest of the page as it is.
pub(super) async fn traffic_of(state: &AppState, viewer: &Viewer, d: &Deployment) -> TrafficView {
    let (figures, unavailable) = match state.hub().deployment_traffic(&viewer.caller, d).await {
        Ok(found) => (found.as_ref().map(figures), None),
        Err(e) => {
            tracing::warn!(deployment = %d.id, error = %e.detail(), "could not read a deployment's traffic");
            (None, Some(e.detail().to_owned()))
        }
    };
    TrafficView {
        id: d.id.to_string(),
        polling: d.deleted_at.is_none(),
        minutes: TRAFFIC_WINDOW_MINUTES,
        figures,
        unavailable,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/deployments/traffic.html")]
pub(super) struct TrafficFragment {
    c: Chrome,
    traffic: TrafficView,
}

/// The figures alone, for htmx to swap in.
pub(super) async fn traffic(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<TrafficFragment, PageError> {
    let id = parse_id(viewer.lang, &id)?;
    let d = state
        .hub()
        .deployment(&viewer.caller, &DeploymentRef::Id(id))
        .await
        .map_err(|e| viewer.fail(e))?;
    Ok(TrafficFragment {
        c: viewer.chrome("deployments", TEXT),
        traffic: traffic_of(&state, &viewer, &d).await,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_times_read_well() {
        assert_eq!(per_second(0, 900), "0");
        assert_eq!(per_second(1, 900), "0.0011");
        assert_eq!(per_second(450, 900), "0.50");
        assert_eq!(per_second(900_000, 900), "1000");
        assert_eq!(millis(12.34), "12.3");
        assert_eq!(millis(0.456), "0.46");
        assert_eq!(millis(250.4), "250");
    }
}
