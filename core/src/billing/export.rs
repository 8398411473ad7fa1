//! Exports: FOCUS rows from invoices, a plain usage listing, and a CSV
//! writer for both. Everything is written to a [`fmt::Write`] (a `String`,
//! usually); the hub decides where the text goes.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::BillingError;
use super::invoice::{ChargeCategory, Invoice};
use super::rating::{UsageInterval, billable_span, format_device_hours, minor_unit_string};
use super::time::{BillingPeriod, UnixSeconds};

/// The FOCUS columns, in export order.
pub const FOCUS_COLUMNS: [&str; 29] = [
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeDescription",
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ListUnitPrice",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingQuantity",
    "PricingUnit",
    "ServiceProvider",
    "ServiceName",
    "ServiceCategory",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "SkuId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
];

const SERVICE_NAME: &str = "modelfleet model serving";
/// One of FOCUS's allowed ServiceCategory values.
const SERVICE_CATEGORY: &str = "AI and Machine Learning";
const RESOURCE_TYPE: &str = "Model deployment";
/// FOCUS units: a count of tokens, and the million tokens prices are per.
const TOKEN_UNIT: &str = "Tokens";
const MILLION_TOKENS_UNIT: &str = "1000000 Tokens";

/// One FOCUS row: an invoice line as FinOps tools read it. Costs are decimal
/// text in the billing currency, times are ISO 8601 in UTC, and empty text
/// stands for a null. The billing account is the tenant; modelfleet has no
/// accounts below a tenant, so the sub-account is the tenant too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FocusRow {
    pub billing_account_id: String,
    pub billing_account_name: String,
    pub billing_currency: String,
    pub billing_period_start: String,
    pub billing_period_end: String,
    pub charge_period_start: String,
    pub charge_period_end: String,
    pub charge_category: String,
    pub charge_description: String,
    /// The line amount after discount: these add up to the invoice total.
    pub billed_cost: String,
    pub effective_cost: String,
    /// Before discount.
    pub list_cost: String,
    /// Per device-hour, or per million tokens.
    pub list_unit_price: String,
    /// Exact, in device-seconds or tokens.
    pub consumed_quantity: String,
    pub consumed_unit: String,
    /// Device-hours, four decimals (display precision of the quantity), or
    /// millions of tokens, six decimals (exact).
    pub pricing_quantity: String,
    pub pricing_unit: String,
    /// The cloud the devices ran on; `modelfleet` for tokens.
    pub service_provider: String,
    pub service_name: String,
    pub service_category: String,
    pub region_id: String,
    pub region_name: String,
    /// The deployment id.
    pub resource_id: String,
    pub resource_name: String,
    pub resource_type: String,
    /// The price key: `cloud/region/accelerator/capacity`, or
    /// `tokens/<model>/<input|output>`.
    pub sku_id: String,
    pub sub_account_id: String,
    pub sub_account_name: String,
    /// A JSON object of `modelfleet.io/…` tags.
    pub tags: String,
}

impl FocusRow {
    /// The values in [`FOCUS_COLUMNS`] order.
    pub fn values(&self) -> [&str; 29] {
        [
            &self.billing_account_id,
            &self.billing_account_name,
            &self.billing_currency,
            &self.billing_period_start,
            &self.billing_period_end,
            &self.charge_period_start,
            &self.charge_period_end,
            &self.charge_category,
            &self.charge_description,
            &self.billed_cost,
            &self.effective_cost,
            &self.list_cost,
            &self.list_unit_price,
            &self.consumed_quantity,
            &self.consumed_unit,
            &self.pricing_quantity,
            &self.pricing_unit,
            &self.service_provider,
            &self.service_name,
            &self.service_category,
            &self.region_id,
            &self.region_name,
            &self.resource_id,
            &self.resource_name,
            &self.resource_type,
            &self.sku_id,
            &self.sub_account_id,
            &self.sub_account_name,
            &self.tags,
        ]
    }
}

/// One row per invoice line. `BilledCost` is the line amount, so the rows'
/// BilledCost adds up to the invoice total exactly; `ListCost − BilledCost`
/// adds up to the discounts.
pub fn focus_rows(invoice: &Invoice, account_name: &str) -> Vec<FocusRow> {
    invoice
        .lines
        .iter()
        .map(|line| {
            let mut row = FocusRow {
                billing_account_id: invoice.tenant.clone(),
                billing_account_name: account_name.to_owned(),
                billing_currency: invoice.currency.code().to_owned(),
                billing_period_start: invoice.period.start().to_rfc3339(),
                billing_period_end: invoice.period.end().to_rfc3339(),
                charge_period_start: line.charge_start.to_rfc3339(),
                charge_period_end: line.charge_end.to_rfc3339(),
                charge_category: line.category.name().to_owned(),
                charge_description: line.description.clone(),
                billed_cost: minor_unit_string(line.amount),
                effective_cost: minor_unit_string(line.amount),
                list_cost: minor_unit_string(line.list_amount),
                list_unit_price: String::new(),
                consumed_quantity: String::new(),
                consumed_unit: String::new(),
                pricing_quantity: String::new(),
                pricing_unit: String::new(),
                service_provider: "modelfleet".to_owned(),
                service_name: SERVICE_NAME.to_owned(),
                service_category: SERVICE_CATEGORY.to_owned(),
                region_id: String::new(),
                region_name: String::new(),
                resource_id: String::new(),
                resource_name: String::new(),
                resource_type: String::new(),
                sku_id: String::new(),
                sub_account_id: invoice.tenant.clone(),
                sub_account_name: account_name.to_owned(),
                tags: "{}".to_owned(),
            };
            if let (ChargeCategory::Usage, Some(usage)) = (line.category, &line.usage) {
                let tags: BTreeMap<&str, String> = [
                    ("modelfleet.io/accelerator", usage.accelerator.clone()),
                    ("modelfleet.io/capacity", usage.capacity.to_string()),
                    ("modelfleet.io/cloud", usage.cloud.to_string()),
                    (
                        "modelfleet.io/discount-basis-points",
                        usage.discount_basis_points.to_string(),
                    ),
                    (
                        "modelfleet.io/price-source",
                        match usage.price_source {
                            super::PriceSource::Default => "default",
                            super::PriceSource::Admin => "admin",
                        }
                        .to_owned(),
                    ),
                ]
                .into_iter()
                .collect();
                row.list_unit_price = usage.unit_price.amount_string();
                row.consumed_quantity = usage.device_seconds.to_string();
                row.consumed_unit = "Device-Seconds".to_owned();
                row.pricing_quantity = usage.device_hours();
                row.pricing_unit = "Device-Hours".to_owned();
                row.service_provider = usage.cloud.to_string();
                row.region_id = usage.region.clone();
                row.region_name = usage.region.clone();
                row.resource_id = usage.deployment.clone();
                row.resource_name = usage.deployment_name.clone();
                row.resource_type = RESOURCE_TYPE.to_owned();
                row.sku_id = format!(
                    "{}/{}/{}/{}",
                    usage.cloud, usage.region, usage.accelerator, usage.capacity
                );
                row.tags = serde_json::to_string(&tags).expect("a map of strings is JSON");
            }
            if let (ChargeCategory::Usage, Some(tokens)) = (line.category, &line.tokens) {
                let tags: BTreeMap<&str, String> = [
                    (
                        "modelfleet.io/discount-basis-points",
                        tokens.discount_basis_points.to_string(),
                    ),
                    ("modelfleet.io/model", tokens.model.clone()),
                    (
                        "modelfleet.io/token-direction",
                        tokens.direction.to_string(),
                    ),
                ]
                .into_iter()
                .collect();
                row.list_unit_price = tokens.unit_price.amount_string();
                row.consumed_quantity = tokens.tokens.to_string();
                row.consumed_unit = TOKEN_UNIT.to_owned();
                row.pricing_quantity = tokens.million_tokens();
                row.pricing_unit = MILLION_TOKENS_UNIT.to_owned();
                row.resource_id = tokens.deployment.clone();
                row.resource_name = tokens.deployment_name.clone();
                row.resource_type = RESOURCE_TYPE.to_owned();
                row.sku_id = format!("tokens/{}/{}", tokens.model, tokens.direction);
                row.tags = serde_json::to_string(&tags).expect("a map of strings is JSON");
            }
            row
        })
        .collect()
}

/// The FOCUS rows as CSV (RFC 4180: a header row, CRLF line ends, fields
/// quoted when they hold a comma, a quote or a line break).
pub fn write_focus_csv(rows: &[FocusRow], out: &mut impl fmt::Write) -> fmt::Result {
    write_record(out, FOCUS_COLUMNS)?;
    for row in rows {
        write_record(out, row.values())?;
    }
    Ok(())
}

pub fn focus_csv(rows: &[FocusRow]) -> String {
    let mut out = String::new();
    write_focus_csv(rows, &mut out).expect("writing to a String cannot fail");
    out
}

/// The columns of the plain usage listing.
pub const USAGE_COLUMNS: [&str; 17] = [
    "tenant",
    "deployment",
    "deployment_name",
    "cluster",
    "pool",
    "cloud",
    "region",
    "accelerator",
    "capacity",
    "devices",
    "start",
    "end",
    "billed_from",
    "billed_to",
    "billed_seconds",
    "device_seconds",
    "device_hours",
];

/// One interval's usage in a month, before prices: what the devices were
/// held for and what is billed (with the 60-second minimum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    pub interval: UsageInterval,
    pub billed_from: UnixSeconds,
    pub billed_to: UnixSeconds,
    pub billed_seconds: i64,
    pub device_seconds: u64,
}

/// The usage in `period` of each interval, in the order given; intervals
/// with nothing billed in the month are left out. Open intervals count up
/// to `now`.
pub fn usage_rows(
    period: BillingPeriod,
    intervals: &[UsageInterval],
    now: UnixSeconds,
) -> Result<Vec<UsageRow>, BillingError> {
    let window = period.start()..period.end();
    let mut rows = Vec::new();
    for interval in intervals {
        let Some(span) = billable_span(interval, &window, now)? else {
            continue;
        };
        let billed_seconds = span.billed_seconds();
        let device_seconds = u64::try_from(billed_seconds)
            .ok()
            .and_then(|s| s.checked_mul(u64::from(interval.devices)))
            .ok_or_else(|| BillingError::Overflow(format!("deployment {}", interval.deployment)))?;
        rows.push(UsageRow {
            interval: interval.clone(),
            billed_from: span.from,
            billed_to: span.to,
            billed_seconds,
            device_seconds,
        });
    }
    Ok(rows)
}

pub fn write_usage_csv(rows: &[UsageRow], out: &mut impl fmt::Write) -> fmt::Result {
    write_record(out, USAGE_COLUMNS)?;
    for row in rows {
        let i = &row.interval;
        write_record(
            out,
            [
                i.tenant.clone(),
                i.deployment.clone(),
                i.deployment_name.clone(),
                i.cluster.clone(),
                i.pool.clone(),
                i.cloud.to_string(),
                i.region.clone(),
                i.accelerator.clone(),
                i.capacity.to_string(),
                i.devices.to_string(),
                i.start.to_rfc3339(),
                i.end.map(UnixSeconds::to_rfc3339).unwrap_or_default(),
                row.billed_from.to_rfc3339(),
                row.billed_to.to_rfc3339(),
                row.billed_seconds.to_string(),
                row.device_seconds.to_string(),
                format_device_hours(row.device_seconds),
            ],
        )?;
    }
    Ok(())
}

/// The columns of an invoice's CSV: one row per line. `unit_price` is per
/// `price_unit`; a token line fills `model`, `token_direction` and
/// `tokens`, a device line the device columns.
pub const INVOICE_COLUMNS: [&str; 27] = [
    "invoice_id",
    "tenant",
    "period",
    "currency",
    "status",
    "line",
    "category",
    "description",
    "deployment",
    "deployment_name",
    "cloud",
    "region",
    "accelerator",
    "capacity",
    "device_seconds",
    "device_hours",
    "unit_price",
    "discount_basis_points",
    "list_amount",
    "discount_amount",
    "amount",
    "charge_start",
    "charge_end",
    "price_unit",
    "model",
    "token_direction",
    "tokens",
];

/// An invoice as CSV, one row per line; `amount` sums to the total.
pub fn invoice_csv(invoice: &Invoice, invoice_id: &str) -> String {
    let mut out = String::new();
    write_invoice_csv(invoice, invoice_id, &mut out).expect("writing to a String cannot fail");
    out
}

pub fn write_invoice_csv(
    invoice: &Invoice,
    invoice_id: &str,
    out: &mut impl fmt::Write,
) -> fmt::Result {
    write_record(out, INVOICE_COLUMNS)?;
    let status = match invoice.status {
        super::invoice::InvoiceStatus::Draft => "draft",
        super::invoice::InvoiceStatus::Final => "final",
    };
    for (n, line) in invoice.lines.iter().enumerate() {
        let usage = line.usage.as_ref();
        let tokens = line.tokens.as_ref();
        let text =
            |f: &dyn Fn(&super::invoice::LineUsage) -> String| usage.map(f).unwrap_or_default();
        let token = |f: &dyn Fn(&super::invoice::TokenLineUsage) -> String| {
            tokens.map(f).unwrap_or_default()
        };
        let either = |d: &dyn Fn(&super::invoice::LineUsage) -> String,
                      t: &dyn Fn(&super::invoice::TokenLineUsage) -> String| {
            usage.map(d).or_else(|| tokens.map(t)).unwrap_or_default()
        };
        let price_unit = match (usage, tokens) {
            (Some(_), _) => "device-hour".to_owned(),
            (None, Some(t)) => format!("million {} tokens", t.direction),
            (None, None) => String::new(),
        };
        write_record(
            out,
            [
                invoice_id.to_owned(),
                invoice.tenant.clone(),
                invoice.period.to_string(),
                invoice.currency.to_string(),
                status.to_owned(),
                (n + 1).to_string(),
                line.category.name().to_owned(),
                line.description.clone(),
                either(&|u| u.deployment.clone(), &|t| t.deployment.clone()),
                either(&|u| u.deployment_name.clone(), &|t| {
                    t.deployment_name.clone()
                }),
                text(&|u| u.cloud.to_string()),
                text(&|u| u.region.clone()),
                text(&|u| u.accelerator.clone()),
                text(&|u| u.capacity.to_string()),
                text(&|u| u.device_seconds.to_string()),
                text(&|u| u.device_hours()),
                either(&|u| u.unit_price.amount_string(), &|t| {
                    t.unit_price.amount_string()
                }),
                either(&|u| u.discount_basis_points.to_string(), &|t| {
                    t.discount_basis_points.to_string()
                }),
                minor_unit_string(line.list_amount),
                minor_unit_string(line.discount_amount),
                minor_unit_string(line.amount),
                line.charge_start.to_rfc3339(),
                line.charge_end.to_rfc3339(),
                price_unit,
                token(&|t| t.model.clone()),
                token(&|t| t.direction.to_string()),
                token(&|t| t.tokens.to_string()),
            ],
        )?;
    }
    Ok(())
}

pub fn usage_csv(rows: &[UsageRow]) -> String {
    let mut out = String::new();
    write_usage_csv(rows, &mut out).expect("writing to a String cannot fail");
    out
}

fn write_record<S: AsRef<str>>(
    out: &mut impl fmt::Write,
    fields: impl IntoIterator<Item = S>,
) -> fmt::Result {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        write_field(out, field.as_ref())?;
    }
    out.write_str("\r\n")
}

/// Whether `field` is a plain decimal number, like `-0.05` or `12`.
fn is_number(field: &str) -> bool {
    let digits = field.strip_prefix(['-', '+']).unwrap_or(field);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// A field, quoted (with inner quotes doubled) only when it must be. Text
/// that a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return) gets a leading apostrophe, so an
/// adjustment's description cannot compute anything in a finance team's
/// spreadsheet; numbers such as `-0.05` stay numbers.
fn write_field(out: &mut impl fmt::Write, field: &str) -> fmt::Result {
    let formula = field.starts_with(['=', '+', '-', '@', '\t', '\r']) && !is_number(field);
    let owned;
    let field = if formula {
        owned = format!("'{field}");
        owned.as_str()
    } else {
        field
    };
    let needs_quotes = field.chars().any(|c| matches!(c, ',' | '"' | '\n' | '\r'))
        || field.starts_with(' ')
        || field.ends_with(' ');
    if !needs_quotes {
        return out.write_str(field);
    }
    out.write_char('"')?;
    for c in field.chars() {
        if c == '"' {
            out.write_char('"')?;
        }
        out.write_char(c)?;
    }
    out.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_quoting() {
        let mut out = String::new();
        write_record(
            &mut out,
            [
                "plain",
                "a,b",
                "say \"hi\"",
                "two\nlines",
                " padded",
                "-0.05",
                "",
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\" padded\",-0.05,\r\n"
        );
    }

    #[test]
    fn formulas_are_made_inert_and_numbers_stay_numbers() {
        let mut out = String::new();
        write_record(
            &mut out,
            [
                "=HYPERLINK(\"x\")",
                "+1+1",
                "-0.05",
                "-12",
                "@SUM(A1)",
                "-x",
                "+5",
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "\"'=HYPERLINK(\"\"x\"\")\",'+1+1,-0.05,-12,'@SUM(A1),'-x,+5\r\n"
        );
    }
}
