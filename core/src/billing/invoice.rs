//! Invoices: a tenant's rated usage for one month, one invoice per currency.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::BillingError;
use super::catalog::{Capacity, PriceCatalog, PriceSource};
use super::discount::Discounts;
use super::rating::{
    ExactAmount, UsageInterval, for_each_piece, format_device_hours, minor_unit_micros,
};
use super::time::{BillingPeriod, UnixSeconds};
use super::tokens::{
    TokenAmount, TokenDirection, TokenPriceCatalog, TokenUsage, format_million_tokens,
};
use crate::fleet::Cloud;
use crate::money::{Currency, Money};

/// Whether an invoice can still change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvoiceStatus {
    /// The month has not ended: usage is still being added.
    Draft,
    /// The month has ended; only an [`Adjustment`] changes it now.
    Final,
}

/// FOCUS's ChargeCategory values that billing produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChargeCategory {
    Usage,
    /// A negative adjustment: money given back.
    Credit,
    /// A positive correction.
    Adjustment,
}

impl ChargeCategory {
    pub fn name(self) -> &'static str {
        match self {
            ChargeCategory::Usage => "Usage",
            ChargeCategory::Credit => "Credit",
            ChargeCategory::Adjustment => "Adjustment",
        }
    }
}

/// A correction an administrator enters for a tenant's month: negative for
/// a credit, positive for a charge. It must be a whole number of the
/// currency's minor unit, since it goes on the invoice as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    pub description: String,
    pub amount: Money,
}

impl Adjustment {
    pub fn validate(&self) -> Result<(), BillingError> {
        if self.description.trim().is_empty() {
            return Err(BillingError::EmptyAdjustmentDescription {
                description: self.description.clone(),
            });
        }
        if self.amount.micros() == 0 {
            return Err(BillingError::ZeroAdjustment {
                description: self.description.clone(),
            });
        }
        if self.amount.micros() % minor_unit_micros(self.amount.currency()) != 0 {
            return Err(BillingError::AdjustmentNotInMinorUnits {
                description: self.description.clone(),
                amount: self.amount,
            });
        }
        Ok(())
    }
}

/// What a usage line is for: one deployment's devices of one kind, on one
/// cloud and region, at one unit price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineUsage {
    pub deployment: String,
    pub deployment_name: String,
    pub cloud: Cloud,
    pub region: String,
    pub accelerator: String,
    pub capacity: Capacity,
    /// The exact quantity: devices × billed seconds, summed.
    pub device_seconds: u64,
    /// Price per device-hour.
    pub unit_price: Money,
    /// `Default` if any of the usage was priced with a default (unchecked)
    /// price.
    pub price_source: PriceSource,
    /// The discount applied, in basis points.
    pub discount_basis_points: u32,
}

impl LineUsage {
    /// The quantity for display, four decimals.
    pub fn device_hours(&self) -> String {
        format_device_hours(self.device_seconds)
    }
}

/// What a token line is for: one deployment's input or output tokens of
/// one model, at one price per million.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenLineUsage {
    pub deployment: String,
    pub deployment_name: String,
    pub model: String,
    pub direction: TokenDirection,
    /// The exact quantity.
    pub tokens: u64,
    /// Price per million tokens of this direction.
    pub unit_price: Money,
    /// The discount applied, in basis points.
    pub discount_basis_points: u32,
}

impl TokenLineUsage {
    /// The quantity in millions, six decimals (exact).
    pub fn million_tokens(&self) -> String {
        format_million_tokens(self.tokens)
    }
}

/// One line of an invoice. `list_amount = discount_amount + amount`, all in
/// whole minor units of the invoice's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub category: ChargeCategory,
    pub description: String,
    /// The usage this line covers, `[charge_start, charge_end)`; the whole
    /// month for adjustments.
    pub charge_start: UnixSeconds,
    pub charge_end: UnixSeconds,
    /// Device usage; `None` for token lines, credits and adjustments.
    pub usage: Option<LineUsage>,
    /// Token usage; `None` for every other line (and absent from invoices
    /// issued before token pricing, which read back unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenLineUsage>,
    pub list_amount: Money,
    pub discount_amount: Money,
    pub amount: Money,
}

/// A tenant's charges for one month in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub tenant: String,
    pub period: BillingPeriod,
    pub currency: Currency,
    pub status: InvoiceStatus,
    pub lines: Vec<InvoiceLine>,
    pub list_total: Money,
    pub discount_total: Money,
    /// `sum(line.amount)`, exactly.
    pub total: Money,
}

/// Rates a tenant's usage intervals for a month, in one pass, holding one
/// accumulator per invoice line rather than the intervals, so memory grows
/// with the number of lines, not of intervals.
#[derive(Debug)]
pub struct InvoiceBuilder<'a> {
    tenant: String,
    period: BillingPeriod,
    window: Range<UnixSeconds>,
    now: UnixSeconds,
    catalog: &'a PriceCatalog,
    discounts: &'a Discounts,
    names: Interner,
    lines: HashMap<LineKey, LineTally>,
    /// Set for a tenant on token pricing.
    tokens: Option<TokenBilling<'a>>,
    token_lines: HashMap<TokenLineKey, TokenTally>,
    adjustments: Vec<Adjustment>,
}

/// What token billing needs: the prices, and each deployment's model, to
/// know from when its device time gives way to its tokens.
#[derive(Debug)]
struct TokenBilling<'a> {
    catalog: &'a TokenPriceCatalog,
    models: HashMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TokenLineKey {
    deployment: u32,
    model: u32,
    direction: TokenDirection,
    currency: Currency,
    unit_micros: i64,
}

#[derive(Debug)]
struct TokenTally {
    deployment_name: String,
    tokens: u64,
    exact: TokenAmount,
    first: UnixSeconds,
    last: UnixSeconds,
}

/// A line's identity with its strings interned, so adding a piece to an
/// existing line allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct LineKey {
    deployment: u32,
    cloud: Cloud,
    region: u32,
    accelerator: u32,
    capacity: Capacity,
    currency: Currency,
    unit_micros: i64,
}

#[derive(Debug)]
struct LineTally {
    deployment_name: String,
    device_seconds: u64,
    exact: ExactAmount,
    first: UnixSeconds,
    last: UnixSeconds,
    source: PriceSource,
}

/// Each distinct string once, by number.
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 2³² distinct names");
        self.ids.insert(name.to_owned(), id);
        self.names.push(name.to_owned());
        id
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

impl<'a> InvoiceBuilder<'a> {
    /// `now` decides draft or final, and how far open intervals are rated.
    pub fn new(
        tenant: &str,
        period: BillingPeriod,
        catalog: &'a PriceCatalog,
        discounts: &'a Discounts,
        now: UnixSeconds,
    ) -> Self {
        InvoiceBuilder {
            tenant: tenant.to_owned(),
            period,
            window: period.start()..period.end(),
            now,
            catalog,
            discounts,
            names: Interner::default(),
            lines: HashMap::new(),
            tokens: None,
            token_lines: HashMap::new(),
            adjustments: Vec::new(),
        }
    }

    /// Bills the tenant by tokens (see the rules in [`crate::billing`]):
    /// `models` names each deployment's model. A deployment whose model
    /// has a token price is billed by [`InvoiceBuilder::add_tokens`] from
    /// the hour its model was first priced, and by its device time only
    /// before that. Without this call, tokens add nothing.
    pub fn bill_by_tokens(
        &mut self,
        catalog: &'a TokenPriceCatalog,
        models: impl IntoIterator<Item = (String, String)>,
    ) {
        self.tokens = Some(TokenBilling {
            catalog,
            models: models.into_iter().collect(),
        });
    }

    /// When `deployment`'s device time stops being billed, if it does.
    fn tokens_from(&self, deployment: &str) -> Option<UnixSeconds> {
        let billing = self.tokens.as_ref()?;
        billing.catalog.priced_from(billing.models.get(deployment)?)
    }

    /// Rates one hour of a deployment's tokens into the token lines, at
    /// the price of its model in force in that hour. Tokens of a tenant
    /// billed by time, of an hour outside the month, or of a model with no
    /// price in force then (that time is billed by devices) add nothing.
    pub fn add_tokens(&mut self, usage: &TokenUsage) -> Result<(), BillingError> {
        if usage.tenant != self.tenant {
            return Err(BillingError::WrongTenantTokens {
                deployment: usage.deployment.clone(),
                expected: self.tenant.clone(),
                found: usage.tenant.clone(),
            });
        }
        let Some(catalog) = self.tokens.as_ref().map(|b| b.catalog) else {
            return Ok(());
        };
        if !self.window.contains(&usage.hour) {
            return Ok(());
        }
        let Some(price) = catalog.price_at(&usage.model, usage.hour) else {
            return Ok(());
        };
        let overflow = || BillingError::Overflow(format!("deployment {}", usage.deployment));
        let hour_end = UnixSeconds(usage.hour.0.checked_add(3600).ok_or_else(overflow)?);
        for direction in [TokenDirection::Input, TokenDirection::Output] {
            let tokens = usage.tokens(direction);
            if tokens == 0 {
                continue;
            }
            let per_million = price.per_million(direction);
            let key = TokenLineKey {
                deployment: self.names.id(&usage.deployment),
                model: self.names.id(&usage.model),
                direction,
                currency: per_million.currency(),
                unit_micros: per_million.micros(),
            };
            let exact = TokenAmount::of(tokens, per_million).ok_or_else(overflow)?;
            let tally = self.token_lines.entry(key).or_insert_with(|| TokenTally {
                deployment_name: usage.deployment_name.clone(),
                tokens: 0,
                exact: TokenAmount::default(),
                first: usage.hour,
                last: hour_end,
            });
            tally.tokens = tally.tokens.checked_add(tokens).ok_or_else(overflow)?;
            tally.exact = tally.exact.checked_add(exact).ok_or_else(overflow)?;
            tally.first = tally.first.min(usage.hour);
            tally.last = tally.last.max(hour_end);
        }
        Ok(())
    }

    /// Rates one interval into the lines. Intervals outside the month add
    /// nothing; an interval of another tenant is refused, because it means
    /// the caller queried the wrong rows.
    pub fn add(&mut self, interval: &UsageInterval) -> Result<(), BillingError> {
        if interval.tenant != self.tenant {
            return Err(BillingError::WrongTenant {
                deployment: interval.deployment.clone(),
                expected: self.tenant.clone(),
                found: interval.tenant.clone(),
            });
        }
        // A deployment billed by tokens from some hour has no device time
        // billed from that hour on.
        let mut window = self.window.clone();
        if let Some(from) = self.tokens_from(&interval.deployment) {
            window.end = window.end.min(from);
        }
        let window = &window;
        let Self {
            names,
            lines,
            catalog,
            now,
            ..
        } = self;
        let overflow = || BillingError::Overflow(format!("deployment {}", interval.deployment));
        for_each_piece(interval, catalog, window, *now, |piece| {
            if piece.device_seconds == 0 {
                // Zero devices held: nothing to bill, and no empty line.
                return Ok(());
            }
            let key = LineKey {
                deployment: names.id(&interval.deployment),
                cloud: interval.cloud,
                region: names.id(&interval.region),
                accelerator: names.id(&interval.accelerator),
                capacity: interval.capacity,
                currency: piece.price.per_device_hour.currency(),
                unit_micros: piece.price.per_device_hour.micros(),
            };
            let tally = lines.entry(key).or_insert_with(|| LineTally {
                deployment_name: interval.deployment_name.clone(),
                device_seconds: 0,
                exact: ExactAmount::default(),
                first: piece.start,
                last: piece.end,
                source: piece.price.source,
            });
            tally.device_seconds = tally
                .device_seconds
                .checked_add(piece.device_seconds)
                .ok_or_else(overflow)?;
            tally.exact = tally.exact.checked_add(piece.exact).ok_or_else(overflow)?;
            tally.first = tally.first.min(piece.start);
            tally.last = tally.last.max(piece.end);
            if piece.price.source == PriceSource::Default {
                tally.source = PriceSource::Default;
            }
            Ok(())
        })
    }

    /// Adds a credit or correction to the month's invoice in its currency.
    pub fn adjust(&mut self, adjustment: Adjustment) -> Result<(), BillingError> {
        adjustment.validate()?;
        self.adjustments.push(adjustment);
        Ok(())
    }

    /// The invoices, one per currency with any line, in currency order.
    /// Lines are sorted by deployment, cloud, region, accelerator, capacity
    /// and time; adjustments follow in the order they were added.
    pub fn finish(mut self) -> Result<Vec<Invoice>, BillingError> {
        let status = if self.now >= self.period.end() {
            InvoiceStatus::Final
        } else {
            InvoiceStatus::Draft
        };
        let mut by_currency: BTreeMap<Currency, Vec<(LineSortKey, InvoiceLine)>> = BTreeMap::new();
        for (key, tally) in std::mem::take(&mut self.lines) {
            let line = self.usage_line(&key, tally)?;
            let sort_key = (
                self.names.name(key.deployment).to_owned(),
                LineSort::Device(
                    key.cloud,
                    self.names.name(key.region).to_owned(),
                    self.names.name(key.accelerator).to_owned(),
                    key.capacity,
                    line.charge_start,
                    key.unit_micros,
                ),
            );
            by_currency
                .entry(key.currency)
                .or_default()
                .push((sort_key, line));
        }
        for (key, tally) in std::mem::take(&mut self.token_lines) {
            let line = self.token_line(&key, tally)?;
            let sort_key = (
                self.names.name(key.deployment).to_owned(),
                LineSort::Tokens(
                    self.names.name(key.model).to_owned(),
                    line.charge_start,
                    key.direction,
                    key.unit_micros,
                ),
            );
            by_currency
                .entry(key.currency)
                .or_default()
                .push((sort_key, line));
        }
        let mut lines_by_currency: BTreeMap<Currency, Vec<InvoiceLine>> = by_currency
            .into_iter()
            .map(|(currency, mut lines)| {
                lines.sort_by(|a, b| a.0.cmp(&b.0));
                (currency, lines.into_iter().map(|(_, l)| l).collect())
            })
            .collect();
        for adjustment in self.adjustments {
            let category = if adjustment.amount.micros() < 0 {
                ChargeCategory::Credit
            } else {
                ChargeCategory::Adjustment
            };
            lines_by_currency
                .entry(adjustment.amount.currency())
                .or_default()
                .push(InvoiceLine {
                    category,
                    description: adjustment.description,
                    charge_start: self.window.start,
                    charge_end: self.window.end,
                    usage: None,
                    tokens: None,
                    list_amount: adjustment.amount,
                    discount_amount: Money::zero(adjustment.amount.currency()),
                    amount: adjustment.amount,
                });
        }
        lines_by_currency
            .into_iter()
            .map(|(currency, lines)| {
                let sum = |amount: fn(&InvoiceLine) -> Money| {
                    lines
                        .iter()
                        .try_fold(Money::zero(currency), |acc, l| acc.checked_add(amount(l)))
                        .ok_or_else(|| {
                            BillingError::Overflow(format!("the {currency} invoice total"))
                        })
                };
                Ok(Invoice {
                    tenant: self.tenant.clone(),
                    period: self.period,
                    currency,
                    status,
                    list_total: sum(|l| l.list_amount)?,
                    discount_total: sum(|l| l.discount_amount)?,
                    total: sum(|l| l.amount)?,
                    lines,
                })
            })
            .collect()
    }

    /// Rounds a line's exact sum once, then takes the discount off it.
    fn usage_line(&self, key: &LineKey, tally: LineTally) -> Result<InvoiceLine, BillingError> {
        let deployment = self.names.name(key.deployment);
        let overflow = || BillingError::Overflow(format!("deployment {deployment}"));
        let currency = key.currency;
        let basis_points = self.discounts.basis_points_for(key.cloud);
        let list_amount = tally.exact.round(currency).ok_or_else(overflow)?;
        let discount_amount = tally
            .exact
            .round_share(basis_points, currency)
            .ok_or_else(overflow)?;
        let amount = Money::from_micros(list_amount.micros() - discount_amount.micros(), currency);
        let usage = LineUsage {
            deployment: deployment.to_owned(),
            deployment_name: tally.deployment_name,
            cloud: key.cloud,
            region: self.names.name(key.region).to_owned(),
            accelerator: self.names.name(key.accelerator).to_owned(),
            capacity: key.capacity,
            device_seconds: tally.device_seconds,
            unit_price: Money::from_micros(key.unit_micros, currency),
            price_source: tally.source,
            discount_basis_points: basis_points,
        };
        let description = format!(
            "{}: {} device-hours of {} ({}) on {} {} at {} per device-hour",
            usage.deployment_name,
            usage.device_hours(),
            usage.accelerator,
            usage.capacity,
            usage.cloud,
            usage.region,
            usage.unit_price,
        );
        Ok(InvoiceLine {
            category: ChargeCategory::Usage,
            description,
            charge_start: tally.first,
            charge_end: tally.last,
            usage: Some(usage),
            tokens: None,
            list_amount,
            discount_amount,
            amount,
        })
    }

    /// Rounds a token line's exact sum once, then takes the tenant's
    /// all-clouds discount off it.
    fn token_line(
        &self,
        key: &TokenLineKey,
        tally: TokenTally,
    ) -> Result<InvoiceLine, BillingError> {
        let deployment = self.names.name(key.deployment);
        let overflow = || BillingError::Overflow(format!("deployment {deployment}"));
        let currency = key.currency;
        let basis_points = self.discounts.basis_points_overall();
        let list_amount = tally.exact.round(currency).ok_or_else(overflow)?;
        let discount_amount = tally
            .exact
            .round_share(basis_points, currency)
            .ok_or_else(overflow)?;
        let amount = Money::from_micros(list_amount.micros() - discount_amount.micros(), currency);
        let tokens = TokenLineUsage {
            deployment: deployment.to_owned(),
            deployment_name: tally.deployment_name,
            model: self.names.name(key.model).to_owned(),
            direction: key.direction,
            tokens: tally.tokens,
            unit_price: Money::from_micros(key.unit_micros, currency),
            discount_basis_points: basis_points,
        };
        let description = format!(
            "{}: {} {} tokens of {} at {} per million {} tokens",
            tokens.deployment_name,
            tokens.tokens,
            tokens.direction,
            tokens.model,
            tokens.unit_price,
            tokens.direction,
        );
        Ok(InvoiceLine {
            category: ChargeCategory::Usage,
            description,
            charge_start: tally.first,
            charge_end: tally.last,
            usage: None,
            tokens: Some(tokens),
            list_amount,
            discount_amount,
            amount,
        })
    }
}

/// Lines sort by deployment, then its device lines (by cloud, region,
/// accelerator, capacity, time and price), then its token lines (by
/// model, time, input before output, and price).
type LineSortKey = (String, LineSort);

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum LineSort {
    Device(Cloud, String, String, Capacity, UnixSeconds, i64),
    Tokens(String, UnixSeconds, TokenDirection, i64),
}

/// A tenant's invoices for `period`: one per currency, draft until the month
/// has ended at `now`, final after. Open intervals are rated up to `now`.
/// Returns no invoice for a month without usage or adjustments.
pub fn build_invoices(
    tenant: &str,
    period: BillingPeriod,
    intervals: &[UsageInterval],
    catalog: &PriceCatalog,
    discounts: &Discounts,
    adjustments: &[Adjustment],
    now: UnixSeconds,
) -> Result<Vec<Invoice>, BillingError> {
    let mut builder = InvoiceBuilder::new(tenant, period, catalog, discounts, now);
    for interval in intervals {
        builder.add(interval)?;
    }
    for adjustment in adjustments {
        builder.adjust(adjustment.clone())?;
    }
    builder.finish()
}
