//! The billing page: the month's cost as charts and tables, invoices, the usage download.

use super::*;

// ---------------------------------------------------------------- billing

/// A row of a chart's table: the exact amounts of one group.
struct AmountRow {
    key: String,
    currency: String,
    device_hours: String,
    list_cost: String,
    discount: String,
    cost: String,
}

fn amount_row(key: String, g: &UsageGroup) -> AmountRow {
    AmountRow {
        key,
        currency: g.currency.to_string(),
        device_hours: g.device_hours.clone(),
        list_cost: g.list_cost.to_string(),
        discount: g.discount.to_string(),
        cost: g.cost.to_string(),
    }
}

/// A chart and the table of its exact amounts.
struct Figure {
    chart: Chart,
    rows: Vec<AmountRow>,
}

struct InvoiceRow {
    href: String,
    period: String,
    currency: String,
    issued: bool,
    total: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/billing/usage.html")]
struct BillingPage {
    c: Chrome,
    tenant: Tenant,
    /// The tenant's id for the month form, for platform staff.
    tenant_field: String,
    month: String,
    prev_href: String,
    next_href: Option<String>,
    csv_href: String,
    budget_href: String,
    totals: Vec<String>,
    /// The charts show this currency when the month has more than one.
    chart_currency: String,
    several_currencies: bool,
    budget: Option<BudgetBar>,
    by_cloud: Option<Figure>,
    by_accelerator: Option<Figure>,
    by_deployment: Option<Figure>,
    invoices: Vec<InvoiceRow>,
}

struct Report {
    state: AppState,
    viewer: Viewer,
    tenant: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl Report {
    async fn groups(
        &self,
        group_by: &str,
        cloud: Option<Cloud>,
        accelerator: Option<String>,
    ) -> Result<UsageReport, PageError> {
        let params = UsageParams {
            from: Some(self.from),
            to: Some(self.to),
            deployment: None,
            cloud,
            accelerator,
            group_by: Some(group_by.to_owned()),
            tenant: Some(self.tenant),
        };
        self.state
            .hub()
            .usage(&self.viewer.caller, params)
            .await
            .map_err(|e| self.viewer.fail(e))
    }

    /// Cost per day of each group of `by` (cloud or accelerator), stacked.
    async fn per_day(
        &self,
        by: &str,
        days: &[String],
        currency: Currency,
    ) -> Result<Figure, PageError> {
        let totals = self.groups(by, None, None).await?;
        let mut series = Vec::new();
        for g in totals.groups.iter().filter(|g| g.currency == currency) {
            let (cloud, accelerator) = if by == "cloud" {
                (g.key.parse::<Cloud>().ok(), None)
            } else {
                (None, Some(g.key.clone()))
            };
            let daily = self.groups("day", cloud, accelerator).await?;
            let points = daily
                .groups
                .iter()
                .filter(|d| d.currency == currency)
                .filter_map(|d| {
                    let day: usize = d.key.get(8..10)?.parse().ok()?;
                    Some((
                        day - 1,
                        d.cost.micros(),
                        format!("{} {}: {}", g.key, d.key, d.cost),
                    ))
                })
                .collect();
            series.push(Series {
                name: g.key.clone(),
                points,
            });
        }
        Ok(Figure {
            chart: chart::stacked_columns(days, &series, currency),
            rows: totals
                .groups
                .iter()
                .map(|g| amount_row(g.key.clone(), g))
                .collect(),
        })
    }
}

fn parse_month(viewer: &Viewer, text: Option<&str>) -> Result<BillingPeriod, PageError> {
    match text.map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => text
            .parse()
            .map_err(|e: modelfleet_core::billing::BillingError| {
                viewer.fail(ApiError::invalid("month", e.to_string()))
            }),
        None => Ok(BillingPeriod::containing(UnixSeconds(now().timestamp()))),
    }
}

pub(super) async fn billing_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> PageResult {
    let Some(tenant) = tenant_of(&viewer, query.tenant.as_deref())? else {
        return pick_tenant(&state, &viewer, "billing", "/billing").await;
    };
    let period = parse_month(&viewer, query.month.as_deref())?;
    let view = tenant_view(&state, &viewer, tenant).await?;
    let tq = tenant_query(&viewer, tenant);
    let month = period.to_string();
    let previous = BillingPeriod::containing(UnixSeconds(period.start().0 - 1));
    let current = BillingPeriod::containing(UnixSeconds(now().timestamp()));
    let next = period.next();
    let month_q = |p: BillingPeriod| format!("month={p}");

    let from = at(period.start());
    let to = at(period.end()).min(now());
    let report = Report {
        state: state.clone(),
        viewer: viewer.clone(),
        tenant,
        from,
        to,
    };
    let mut totals: BTreeMap<Currency, Money> = BTreeMap::new();
    let (mut by_cloud, mut by_accelerator, mut by_deployment) = (None, None, None);
    let mut chart_currency = Currency::Usd;
    if from < to {
        let deployments = report.groups("deployment", None, None).await?;
        for g in &deployments.groups {
            let sum = totals.entry(g.currency).or_insert(Money::zero(g.currency));
            *sum = sum.checked_add(g.cost).unwrap_or(*sum);
        }
        if let Some(&currency) = totals.keys().next() {
            chart_currency = currency;
            let days: Vec<String> = (1..=((period.end().0 - period.start().0) / 86_400))
                .map(|d| d.to_string())
                .collect();
            by_cloud = Some(report.per_day("cloud", &days, currency).await?);
            by_accelerator = Some(report.per_day("accelerator", &days, currency).await?);
            let bars: Vec<Bar> = deployments
                .groups
                .iter()
                .filter(|g| g.currency == currency)
                .map(|g| Bar {
                    name: g.name.clone().unwrap_or_else(|| g.key.clone()),
                    micros: g.cost.micros(),
                    amount: g.cost.to_string(),
                })
                .collect();
            by_deployment = Some(Figure {
                chart: chart::horizontal_bars(&bars),
                rows: deployments
                    .groups
                    .iter()
                    .map(|g| amount_row(g.name.clone().unwrap_or_else(|| g.key.clone()), g))
                    .collect(),
            });
        }
    }

    let budget = match state.hub().budget(&viewer.caller, tenant).await {
        Ok(b) => Some(budget_bar(&b)),
        Err(e) if e.status() == StatusCode::NOT_FOUND => None,
        Err(e) => return Err(viewer.fail(e)),
    };

    let invoices = state
        .hub()
        .invoices(&viewer.caller, Some(tenant), Some(&month))
        .await
        .map_err(|e| viewer.fail(e))?
        .iter()
        .map(|i: &TenantInvoice| InvoiceRow {
            href: format!("/billing/invoices/{}", i.id),
            period: i.invoice.period.to_string(),
            currency: i.invoice.currency.to_string(),
            issued: i.finalized_at.is_some(),
            total: i.invoice.total.to_string(),
        })
        .collect();

    Ok(BillingPage {
        c: viewer.chrome("billing", TEXT),
        tenant: view,
        tenant_field: if tq.is_empty() {
            String::new()
        } else {
            tenant.to_string()
        },
        prev_href: with_query("/billing", &[&tq, &month_q(previous)]),
        next_href: (next <= current).then(|| with_query("/billing", &[&tq, &month_q(next)])),
        csv_href: with_query("/billing/usage.csv", &[&tq, &month_q(period)]),
        budget_href: with_query("/billing/budget", &[&tq]),
        month,
        several_currencies: totals.len() > 1,
        chart_currency: chart_currency.to_string(),
        totals: totals.values().map(Money::to_string).collect(),
        budget,
        by_cloud,
        by_accelerator,
        by_deployment,
        invoices,
    }
    .into_response())
}

pub(super) async fn usage_csv(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> PageResult {
    let tenant = tenant_of(&viewer, query.tenant.as_deref())?;
    let period = parse_month(&viewer, query.month.as_deref())?;
    state
        .hub()
        .usage_csv(&viewer.caller, tenant, Some(&period.to_string()))
        .await
        .map(IntoResponse::into_response)
        .map_err(|e| viewer.fail(e))
}
