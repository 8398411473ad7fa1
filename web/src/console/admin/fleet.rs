//! Admin pages: clusters with their pools, and the price catalog.

use modelfleet_api::clusters::ClusterView;
use modelfleet_api::service::clusters::RegisterCluster;
use modelfleet_api::service::prices::CreatePrice;

use super::*;

// ---------------------------------------------------------------- clusters

#[derive(Debug)]
struct PoolRow {
    name: String,
    accelerator: String,
    capacity: String,
    nodes_total: u32,
    nodes_free: u32,
    devices_free: u64,
    devices_total: u64,
    price: String,
}

#[derive(Debug)]
struct ClusterRow {
    name: String,
    region: String,
    kind: String,
    reachable: bool,
    error: String,
    pools: Vec<PoolRow>,
}

#[derive(Debug)]
struct CloudGroup {
    cloud: &'static str,
    clusters: Vec<ClusterRow>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct ClusterForm {
    name: String,
    cloud: String,
    region: String,
    kubeconfig: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/admin/fleet/clusters.html")]
struct ClustersPage {
    c: Chrome,
    groups: Vec<CloudGroup>,
    clouds: Vec<&'static str>,
    draft: ClusterForm,
    error: Option<String>,
}

async fn render_clusters(
    state: &AppState,
    viewer: &Viewer,
    draft: ClusterForm,
    refused: Option<Refusal>,
) -> Result<Response, PageError> {
    let list = state
        .hub()
        .clusters(&viewer.caller)
        .await
        .map_err(|e| viewer.fail(e))?;
    let mut by_cloud: BTreeMap<&'static str, Vec<ClusterRow>> = BTreeMap::new();
    for observed in list.into_iter().take(LIST_LIMIT) {
        let ClusterView { cluster, pools } = observed.view;
        let (pools, error) = match pools {
            Ok(discovered) => (discovered.pools, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let pools = pools
            .into_iter()
            .map(|p| PoolRow {
                devices_total: u64::from(p.nodes_total) * u64::from(p.devices_per_node),
                devices_free: p.devices_free(),
                name: p.name,
                accelerator: p.accelerator,
                capacity: p.capacity_type.to_string(),
                nodes_total: p.nodes_total,
                nodes_free: p.nodes_free,
                price: p
                    .price_per_device_hour
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            })
            .collect();
        by_cloud
            .entry(cluster.cloud.name())
            .or_default()
            .push(ClusterRow {
                name: cluster.name,
                region: cluster.region,
                kind: cluster.kind.name().to_owned(),
                reachable: error.is_none(),
                error: error.unwrap_or_default(),
                pools,
            });
    }
    let groups = by_cloud
        .into_iter()
        .map(|(cloud, mut clusters)| {
            clusters.sort_by(|a, b| a.name.cmp(&b.name));
            CloudGroup { cloud, clusters }
        })
        .collect();
    let (status, error) = match refused {
        Some(r) => (r.status, Some(r.message)),
        None => (StatusCode::OK, None),
    };
    let page = ClustersPage {
        c: viewer.chrome("admin", TEXT),
        groups,
        clouds: Cloud::ALL.iter().map(|c| c.name()).collect(),
        // A kubeconfig holds credentials: it is never sent back.
        draft: ClusterForm {
            kubeconfig: String::new(),
            ..draft
        },
        error,
    };
    Ok((status, page).into_response())
}

pub(super) async fn clusters_page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    platform_admin(&viewer)?;
    render_clusters(&state, &viewer, ClusterForm::default(), None).await
}

pub(super) async fn register_cluster(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<ClusterForm>,
) -> Result<Response, PageError> {
    platform_admin(&viewer)?;
    let kubeconfig = if form.kubeconfig.trim().is_empty() {
        Value::Null
    } else {
        Value::String(form.kubeconfig.clone())
    };
    let body = object(vec![
        ("name", Value::String(form.name.trim().to_owned())),
        ("cloud", Value::String(form.cloud.trim().to_owned())),
        ("region", Value::String(form.region.trim().to_owned())),
        ("kubeconfig", kubeconfig),
    ]);
    let result = match api_json::<RegisterCluster>(body).await {
        Ok(body) => state
            .hub()
            .register_cluster(&viewer.caller, body)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(back_to("/admin/clusters")),
        Err(e) => {
            let r = refusal(&viewer, e)?;
            render_clusters(&state, &viewer, form, Some(r)).await
        }
    }
}

// ------------------------------------------------------------------ prices

#[derive(Debug)]
struct PriceRow {
    cloud: &'static str,
    region: String,
    accelerator: String,
    capacity: String,
    price: String,
    effective_from: String,
    source: String,
    in_force: bool,
}

#[derive(Debug)]
struct TokenPriceRow {
    model: String,
    input: String,
    output: String,
    effective_from: String,
    in_force: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct PriceForm {
    cloud: String,
    region: String,
    accelerator: String,
    capacity: String,
    price: String,
    currency: String,
    effective_from: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/admin/fleet/prices.html")]
struct PricesPage {
    c: Chrome,
    prices: Vec<PriceRow>,
    token_prices: Vec<TokenPriceRow>,
    clouds: Vec<&'static str>,
    currencies: Vec<&'static str>,
    draft: PriceForm,
    error: Option<String>,
}

async fn render_prices(
    state: &AppState,
    viewer: &Viewer,
    draft: PriceForm,
    refused: Option<Refusal>,
) -> Result<Response, PageError> {
    let list = state
        .hub()
        .prices(&viewer.caller)
        .await
        .map_err(|e| viewer.fail(e))?;
    let rows = list
        .into_iter()
        .map(|p| {
            let (stored, in_force) = (p.stored, p.in_force);
            PriceRow {
                cloud: stored.price.key.cloud.name(),
                region: stored.price.key.region,
                accelerator: stored.price.key.accelerator,
                capacity: stored.price.key.capacity.name().to_owned(),
                price: stored.price.per_device_hour.to_string(),
                effective_from: stored
                    .effective_from
                    .format("%Y-%m-%d %H:%M UTC")
                    .to_string(),
                source: stored.price.source.name().to_owned(),
                in_force,
            }
        })
        .collect();
    let token_prices = state
        .hub()
        .token_prices(&viewer.caller)
        .await
        .map_err(|e| viewer.fail(e))?
        .into_iter()
        .map(|p| TokenPriceRow {
            model: p.stored.price.model,
            input: p.stored.price.per_million_input.to_string(),
            output: p.stored.price.per_million_output.to_string(),
            effective_from: p
                .stored
                .effective_from
                .format("%Y-%m-%d %H:%M UTC")
                .to_string(),
            in_force: p.in_force,
        })
        .collect();
    let (status, error) = match refused {
        Some(r) => (r.status, Some(r.message)),
        None => (StatusCode::OK, None),
    };
    let page = PricesPage {
        c: viewer.chrome("admin", TEXT),
        prices: rows,
        token_prices,
        clouds: Cloud::ALL.iter().map(|c| c.name()).collect(),
        currencies: Currency::ALL.iter().map(|c| c.code()).collect(),
        draft,
        error,
    };
    Ok((status, page).into_response())
}

pub(super) async fn prices_page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    platform_admin(&viewer)?;
    let draft = PriceForm {
        capacity: "on-demand".to_owned(),
        currency: Currency::Usd.code().to_owned(),
        ..PriceForm::default()
    };
    render_prices(&state, &viewer, draft, None).await
}

pub(super) async fn create_price(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<PriceForm>,
) -> Result<Response, PageError> {
    platform_admin(&viewer)?;
    let body = parse_time("effectiveFrom", &form.effective_from).map(|from| {
        object(vec![
            ("cloud", Value::String(form.cloud.trim().to_owned())),
            ("region", Value::String(form.region.trim().to_owned())),
            (
                "accelerator",
                Value::String(form.accelerator.trim().to_owned()),
            ),
            ("capacity", text(&form.capacity)),
            (
                "pricePerDeviceHour",
                Value::String(format!("{} {}", form.price.trim(), form.currency.trim())),
            ),
            ("effectiveFrom", from.map_or(Value::Null, |t| json!(t))),
        ])
    });
    let result = match body {
        Ok(body) => match api_json::<CreatePrice>(body).await {
            Ok(body) => state
                .hub()
                .create_price(&viewer.caller, body)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(back_to("/admin/prices")),
        Err(e) => {
            let r = refusal(&viewer, e)?;
            render_prices(&state, &viewer, form, Some(r)).await
        }
    }
}
