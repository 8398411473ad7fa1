//! Billing worked to the cent. Every expected amount is computed by hand in
//! the comment above it: `device-seconds × price per device-hour ÷ 3600`,
//! rounded half up to the cent once per invoice line.
//!
//! Run with `cargo test … -- billing` (every test sits in a `billing_…`
//! module so the filter finds them).

use modelfleet_core::billing::{
    Adjustment, BillingError, BillingPeriod, Capacity, ChargeCategory, Discount, DiscountScope,
    Discounts, ExactAmount, FOCUS_COLUMNS, Invoice, InvoiceStatus, Price, PriceCatalog, PriceKey,
    PriceSource, UnixSeconds, UsageInterval, build_invoices, focus_csv, focus_rows, rate_interval,
    usage_csv, usage_rows,
};
use modelfleet_core::fleet::{Cloud, Fleet};
use modelfleet_core::money::{Currency, MICROS_PER_UNIT, Money};

fn t(text: &str) -> UnixSeconds {
    UnixSeconds::parse_rfc3339(text).unwrap()
}

fn november() -> BillingPeriod {
    BillingPeriod::new(2026, 11).unwrap()
}

fn october() -> BillingPeriod {
    BillingPeriod::new(2026, 10).unwrap()
}

/// Mid-November: the November invoice is a draft.
fn mid_november() -> UnixSeconds {
    t("2026-11-29T09:04:15Z")
}

/// After November: its invoice is final.
fn december() -> UnixSeconds {
    t("2026-12-02T00:00:00Z")
}

fn usd(text: &str) -> Money {
    Money::parse_amount(text, Currency::Usd).unwrap()
}

fn cny(text: &str) -> Money {
    Money::parse_amount(text, Currency::Cny).unwrap()
}

/// The seeded AWS list prices plus the example fleet's other prices (the
/// CNY clouds, L40S, A10, the A100 spot pool), all in force since the epoch.
fn catalog() -> PriceCatalog {
    let mut catalog = PriceCatalog::seed();
    let fleet = PriceCatalog::from_fleet(&Fleet::example(), UnixSeconds::EPOCH).unwrap();
    for price in fleet.prices() {
        if catalog.history(&price.key).is_empty() {
            catalog.insert(price.clone()).unwrap();
        }
    }
    catalog
}

/// One replica of deployment `id` on AWS us-east-1 H100s (6.88 USD).
fn h100(id: &str, devices: u32, start: &str, end: Option<&str>) -> UsageInterval {
    UsageInterval {
        deployment: id.to_owned(),
        deployment_name: format!("{id}-name"),
        tenant: "acme".to_owned(),
        cluster: "aws-use1-prod".to_owned(),
        pool: "p5-h100".to_owned(),
        cloud: Cloud::Aws,
        region: "us-east-1".to_owned(),
        accelerator: "h100-80gb".to_owned(),
        capacity: Capacity::OnDemand,
        devices,
        start: t(start),
        end: end.map(t),
    }
}

fn h200(id: &str, capacity: Capacity, devices: u32, start: &str, end: &str) -> UsageInterval {
    UsageInterval {
        accelerator: "h200".to_owned(),
        pool: "p5en-h200".to_owned(),
        capacity,
        ..h100(id, devices, start, Some(end))
    }
}

fn invoices(
    period: BillingPeriod,
    intervals: &[UsageInterval],
    catalog: &PriceCatalog,
    discounts: &Discounts,
    adjustments: &[Adjustment],
    now: UnixSeconds,
) -> Vec<Invoice> {
    let invoices = build_invoices(
        "acme",
        period,
        intervals,
        catalog,
        discounts,
        adjustments,
        now,
    )
    .unwrap();
    for invoice in &invoices {
        check_invariants(invoice);
    }
    invoices
}

fn only_invoice(period: BillingPeriod, intervals: &[UsageInterval]) -> Invoice {
    let mut all = invoices(
        period,
        intervals,
        &catalog(),
        &Discounts::none(),
        &[],
        december(),
    );
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

/// Decimal text (possibly negative) back to micro-units, exactly.
fn parse_decimal(text: &str) -> i64 {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    sign * Money::parse_amount(digits, Currency::Usd).unwrap().micros()
}

/// total = Σ amount; list = discount + amount on every line; Σ FOCUS
/// BilledCost = total; every amount is a whole cent.
fn check_invariants(invoice: &Invoice) {
    let sum = |f: fn(&modelfleet_core::billing::InvoiceLine) -> Money| -> i64 {
        invoice.lines.iter().map(|l| f(l).micros()).sum()
    };
    assert_eq!(invoice.total.micros(), sum(|l| l.amount));
    assert_eq!(invoice.list_total.micros(), sum(|l| l.list_amount));
    assert_eq!(invoice.discount_total.micros(), sum(|l| l.discount_amount));
    for line in &invoice.lines {
        assert_eq!(
            line.list_amount.micros(),
            line.discount_amount.micros() + line.amount.micros()
        );
        for m in [line.list_amount, line.discount_amount, line.amount] {
            assert_eq!(m.currency(), invoice.currency);
            assert_eq!(m.micros() % 10_000, 0, "{m} is not whole cents");
        }
        if line.category == ChargeCategory::Usage {
            assert!(line.amount.micros() >= 0);
        }
    }
    let rows = focus_rows(invoice, "Acme Corp");
    assert_eq!(rows.len(), invoice.lines.len());
    let billed: i64 = rows.iter().map(|r| parse_decimal(&r.billed_cost)).sum();
    assert_eq!(
        billed,
        invoice.total.micros(),
        "Σ BilledCost ≠ invoice total"
    );
    let list: i64 = rows.iter().map(|r| parse_decimal(&r.list_cost)).sum();
    assert_eq!(list, invoice.list_total.micros());
}

mod billing_rules {
    use super::*;

    #[test]
    fn sixty_second_minimum() {
        // 30 s on 1 device is billed 60 s: 60 × 6.88 / 3600 = 0.114666… → 0.11.
        let invoice = only_invoice(
            november(),
            &[h100(
                "a",
                1,
                "2026-11-02T10:00:00Z",
                Some("2026-11-02T10:00:30Z"),
            )],
        );
        let line = &invoice.lines[0];
        assert_eq!(line.usage.as_ref().unwrap().device_seconds, 60);
        assert_eq!(line.amount, usd("0.11"));

        // 30 s on 8 devices: 8 × 60 = 480 device-seconds;
        // 480 × 6.88 / 3600 = 0.917333… → 0.92.
        let invoice = only_invoice(
            november(),
            &[h100(
                "a",
                8,
                "2026-11-02T10:00:00Z",
                Some("2026-11-02T10:00:30Z"),
            )],
        );
        assert_eq!(invoice.lines[0].usage.as_ref().unwrap().device_seconds, 480);
        assert_eq!(invoice.total, usd("0.92"));

        // A replica released the second it was bound still costs a minute.
        let invoice = only_invoice(
            november(),
            &[h100(
                "a",
                1,
                "2026-11-02T10:00:00Z",
                Some("2026-11-02T10:00:00Z"),
            )],
        );
        assert_eq!(invoice.lines[0].usage.as_ref().unwrap().device_seconds, 60);

        // Exactly 60 s and 61 s are billed as they are, not rounded to minutes:
        // 61 × 6.88 / 3600 = 0.116577… → 0.12.
        let invoice = only_invoice(
            november(),
            &[h100(
                "a",
                1,
                "2026-11-02T10:00:00Z",
                Some("2026-11-02T10:01:01Z"),
            )],
        );
        assert_eq!(invoice.lines[0].usage.as_ref().unwrap().device_seconds, 61);
        assert_eq!(invoice.total, usd("0.12"));
    }

    #[test]
    fn per_second_granularity() {
        // 8 devices for 1 h 30 min 15 s = 5415 s → 43 320 device-seconds;
        // 43 320 × 6.88 / 3600 = 82.789333… → 82.79.
        let invoice = only_invoice(
            november(),
            &[h100(
                "a",
                8,
                "2026-11-03T00:00:00Z",
                Some("2026-11-03T01:30:15Z"),
            )],
        );
        let usage = invoice.lines[0].usage.as_ref().unwrap();
        assert_eq!(usage.device_seconds, 43_320);
        // 43 320 / 3600 = 12.0333… device-hours.
        assert_eq!(usage.device_hours(), "12.0333");
        assert_eq!(invoice.total, usd("82.79"));
        // One more second: 43 328 × 6.88 / 3600 = 82.804622… → 82.80.
        let invoice = only_invoice(
            november(),
            &[h100(
                "a",
                8,
                "2026-11-03T00:00:00Z",
                Some("2026-11-03T01:30:16Z"),
            )],
        );
        assert_eq!(invoice.total, usd("82.80"));
    }

    #[test]
    fn a_price_change_mid_interval_splits_it() {
        let mut catalog = catalog();
        let key = PriceKey::new(Cloud::Aws, "us-east-1", "h100-80gb", Capacity::OnDemand);
        catalog
            .insert(Price {
                key: key.clone(),
                per_device_hour: usd("5.00"),
                effective_from: t("2026-11-10T12:00:00Z"),
                source: PriceSource::Admin,
            })
            .unwrap();
        assert_eq!(
            catalog
                .price_at(&key, t("2026-11-10T11:59:59Z"))
                .unwrap()
                .per_device_hour,
            usd("6.88")
        );
        // 2 devices 11:00–13:30 across the 12:00 change:
        //   11:00–12:00 = 3600 s × 2 = 7200 device-seconds × 6.88 / 3600 = 13.76
        //   12:00–13:30 = 5400 s × 2 = 10 800 device-seconds × 5.00 / 3600 = 15.00
        let usage = [h100(
            "a",
            2,
            "2026-11-10T11:00:00Z",
            Some("2026-11-10T13:30:00Z"),
        )];
        let invoice = invoices(
            november(),
            &usage,
            &catalog,
            &Discounts::none(),
            &[],
            december(),
        )
        .remove(0);
        let lines: Vec<_> = invoice
            .lines
            .iter()
            .map(|l| {
                let u = l.usage.as_ref().unwrap();
                (
                    u.unit_price,
                    u.device_seconds,
                    u.price_source,
                    l.charge_start,
                    l.charge_end,
                    l.amount,
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                (
                    usd("6.88"),
                    7200,
                    PriceSource::Default,
                    t("2026-11-10T11:00:00Z"),
                    t("2026-11-10T12:00:00Z"),
                    usd("13.76")
                ),
                (
                    usd("5.00"),
                    10_800,
                    PriceSource::Admin,
                    t("2026-11-10T12:00:00Z"),
                    t("2026-11-10T13:30:00Z"),
                    usd("15.00")
                ),
            ]
        );
        assert_eq!(invoice.total, usd("28.76"));
    }

    #[test]
    fn an_interval_across_a_month_boundary_is_split_at_midnight_utc() {
        // 4 × H200 (7.9125 USD) from 23:30 on 31 October to 00:45 on 1 November.
        //   October:  1800 s × 4 = 7200 device-seconds × 7.9125 / 3600 = 15.825 → 15.83 (half up)
        //   November: 2700 s × 4 = 10 800 device-seconds × 7.9125 / 3600 = 23.7375 → 23.74
        let usage = [h200(
            "a",
            Capacity::OnDemand,
            4,
            "2026-10-31T23:30:00Z",
            "2026-11-01T00:45:00Z",
        )];
        let oct = only_invoice(october(), &usage);
        let nov = only_invoice(november(), &usage);
        assert_eq!(oct.lines[0].usage.as_ref().unwrap().device_seconds, 7200);
        assert_eq!(oct.total, usd("15.83"));
        assert_eq!(oct.lines[0].charge_end, t("2026-11-01T00:00:00Z"));
        assert_eq!(nov.lines[0].usage.as_ref().unwrap().device_seconds, 10_800);
        assert_eq!(nov.total, usd("23.74"));
        assert_eq!(nov.lines[0].charge_start, t("2026-11-01T00:00:00Z"));
        // The pieces add up exactly: 18 000 device-seconds, the whole interval.
        let catalog = catalog();
        let whole = rate_interval(
            &usage[0],
            &catalog,
            UnixSeconds::EPOCH..t("2030-01-01T00:00:00Z"),
            december(),
        )
        .unwrap();
        let exact: i128 = whole.iter().map(|p| p.exact.0).sum();
        // 18 000 × 7 912 500 micros = 39.5625 USD × 3600.
        assert_eq!(exact, 18_000 * 7_912_500);
        // Each invoice rounds its own line, so the two months together
        // (15.83 + 23.74 = 39.57) can differ from rounding the whole
        // (39.5625 → 39.56) by at most half a cent per invoice.

        // The 60-second minimum is applied once, in the month the interval
        // starts: 40 s across midnight → October 30 s + 20 s top-up, November 10 s.
        let short = [h100(
            "b",
            1,
            "2026-10-31T23:59:30Z",
            Some("2026-11-01T00:00:10Z"),
        )];
        let oct = only_invoice(october(), &short);
        let nov = only_invoice(november(), &short);
        assert_eq!(oct.lines[0].usage.as_ref().unwrap().device_seconds, 50);
        assert_eq!(nov.lines[0].usage.as_ref().unwrap().device_seconds, 10);
    }

    #[test]
    fn spot_and_on_demand_are_separate_lines_at_their_own_prices() {
        // 8 × H200 for one hour each:
        //   on-demand: 8 × 7.9125 = 63.30
        //   spot:      8 × 3.375  = 27.00
        let invoice = only_invoice(
            november(),
            &[
                h200(
                    "a",
                    Capacity::OnDemand,
                    8,
                    "2026-11-05T00:00:00Z",
                    "2026-11-05T01:00:00Z",
                ),
                h200(
                    "a",
                    Capacity::Spot,
                    8,
                    "2026-11-05T00:00:00Z",
                    "2026-11-05T01:00:00Z",
                ),
            ],
        );
        let amounts: Vec<_> = invoice
            .lines
            .iter()
            .map(|l| (l.usage.as_ref().unwrap().capacity, l.amount))
            .collect();
        assert_eq!(
            amounts,
            [
                (Capacity::OnDemand, usd("63.30")),
                (Capacity::Spot, usd("27.00"))
            ]
        );
        assert_eq!(invoice.total, usd("90.30"));
    }

    #[test]
    fn the_cloud_discount_beats_the_overall_one_and_currencies_stay_apart() {
        let discounts = Discounts::new([
            Discount::new(DiscountScope::All, 500).unwrap(),
            Discount::new(DiscountScope::Cloud(Cloud::Aws), 1250).unwrap(),
        ])
        .unwrap();
        let aliyun = UsageInterval {
            cloud: Cloud::Aliyun,
            region: "cn-beijing".to_owned(),
            accelerator: "a100-80gb".to_owned(),
            cluster: "ack-bj-prod".to_owned(),
            pool: "gn7e-a100".to_owned(),
            ..h100("b", 1, "2026-11-06T00:00:00Z", Some("2026-11-06T01:00:00Z"))
        };
        let usage = [
            // AWS, 12.50 % off: 1 × 6.88 = 6.88; 6.88 × 0.125 = 0.86; 6.02 to pay.
            h100("a", 1, "2026-11-06T00:00:00Z", Some("2026-11-06T01:00:00Z")),
            // Alibaba, the overall 5 % applies: 26.00 CNY; 1.30 off; 24.70 to pay.
            aliyun,
            // AWS again, 8 devices 61 s = 488 device-seconds:
            // 488 × 6.88 / 3600 = 0.932622… → list 0.93;
            // discount 0.932622… × 0.125 = 0.116577… → 0.12; amount 0.81.
            h100("c", 8, "2026-11-06T00:00:00Z", Some("2026-11-06T00:01:01Z")),
        ];
        let all = invoices(november(), &usage, &catalog(), &discounts, &[], december());
        assert_eq!(all.len(), 2, "one invoice per currency");
        let (usd_invoice, cny_invoice) = (&all[0], &all[1]);
        assert_eq!(usd_invoice.currency, Currency::Usd);
        let got: Vec<_> = usd_invoice
            .lines
            .iter()
            .map(|l| (l.list_amount, l.discount_amount, l.amount))
            .collect();
        assert_eq!(
            got,
            [
                (usd("6.88"), usd("0.86"), usd("6.02")),
                (usd("0.93"), usd("0.12"), usd("0.81"))
            ]
        );
        assert_eq!(usd_invoice.total, usd("6.83"));
        assert_eq!(cny_invoice.currency, Currency::Cny);
        let line = &cny_invoice.lines[0];
        assert_eq!(line.usage.as_ref().unwrap().discount_basis_points, 500);
        assert_eq!(
            (line.list_amount, line.discount_amount, line.amount),
            (cny("26.00"), cny("1.30"), cny("24.70"))
        );
        assert_eq!(cny_invoice.total, cny("24.70"));
    }

    #[test]
    fn rounding_happens_once_per_line_not_per_piece() {
        // Two replicas of one deployment, 61 s each on 1 device.
        // Per piece: 61 × 6.88 / 3600 = 0.116577… → 0.12, twice = 0.24.
        // Once per line: 122 × 6.88 / 3600 = 0.233155… → 0.23.
        let usage = [
            h100("a", 1, "2026-11-07T00:00:00Z", Some("2026-11-07T00:01:01Z")),
            h100("a", 1, "2026-11-08T00:00:00Z", Some("2026-11-08T00:01:01Z")),
        ];
        let per_piece: i64 = usage
            .iter()
            .map(|i| {
                only_invoice(november(), std::slice::from_ref(i))
                    .total
                    .micros()
            })
            .sum();
        assert_eq!(per_piece, usd("0.24").micros());
        let invoice = only_invoice(november(), &usage);
        assert_eq!(invoice.lines.len(), 1);
        assert_eq!(invoice.lines[0].usage.as_ref().unwrap().device_seconds, 122);
        assert_eq!(invoice.total, usd("0.23"));
    }

    #[test]
    fn totals_lines_and_focus_billed_cost_agree_with_a_credit() {
        // 6.88 (1 h H100) + 63.30 (1 h 8 × H200) − 5.00 credit = 65.18.
        let usage = [
            h100("a", 1, "2026-11-09T00:00:00Z", Some("2026-11-09T01:00:00Z")),
            h200(
                "b",
                Capacity::OnDemand,
                8,
                "2026-11-09T00:00:00Z",
                "2026-11-09T01:00:00Z",
            ),
        ];
        let credit = Adjustment {
            description: "Credit for the outage on 3 November, \"us-east-1\"".to_owned(),
            amount: Money::from_micros(-5 * MICROS_PER_UNIT, Currency::Usd),
        };
        let invoice = invoices(
            november(),
            &usage,
            &catalog(),
            &Discounts::none(),
            &[credit],
            december(),
        )
        .remove(0);
        assert_eq!(invoice.total, usd("65.18"));
        let last = invoice.lines.last().unwrap();
        assert_eq!(last.category, ChargeCategory::Credit);
        assert_eq!(last.amount.micros(), -5_000_000);

        let rows = focus_rows(&invoice, "Acme Corp");
        let billed: Vec<_> = rows.iter().map(|r| r.billed_cost.as_str()).collect();
        assert_eq!(billed, ["6.88", "63.30", "-5.00"]);
        let first = &rows[0];
        assert_eq!(first.billing_account_id, "acme");
        assert_eq!(first.billing_currency, "USD");
        assert_eq!(first.billing_period_start, "2026-11-01T00:00:00Z");
        assert_eq!(first.billing_period_end, "2026-12-01T00:00:00Z");
        assert_eq!(first.charge_period_start, "2026-11-09T00:00:00Z");
        assert_eq!(first.charge_period_end, "2026-11-09T01:00:00Z");
        assert_eq!(first.charge_category, "Usage");
        assert_eq!(first.list_unit_price, "6.88");
        assert_eq!(first.consumed_quantity, "3600");
        assert_eq!(first.consumed_unit, "Device-Seconds");
        assert_eq!(first.pricing_quantity, "1.0000");
        assert_eq!(first.pricing_unit, "Device-Hours");
        assert_eq!(first.service_provider, "aws");
        assert_eq!(first.region_id, "us-east-1");
        assert_eq!(first.resource_id, "a");
        assert_eq!(first.resource_name, "a-name");
        assert_eq!(first.sku_id, "aws/us-east-1/h100-80gb/on-demand");
        assert!(
            first
                .tags
                .contains("\"modelfleet.io/price-source\":\"default\""),
            "{}",
            first.tags
        );
        assert_eq!(rows[2].charge_category, "Credit");

        let csv = focus_csv(&rows);
        let mut lines = csv.split("\r\n");
        assert_eq!(lines.next().unwrap(), FOCUS_COLUMNS.join(","));
        assert!(
            csv.contains(
                ",Credit,\"Credit for the outage on 3 November, \"\"us-east-1\"\"\",-5.00,-5.00,-5.00,"
            ),
            "{csv}"
        );
        assert_eq!(csv.matches("\r\n").count(), 4);
    }

    #[test]
    fn draft_until_the_month_ends_then_final() {
        // An open replica started an hour before "now" is rated to now:
        // 1 × 3600 s × 6.88 / 3600 = 6.88.
        let usage = [h100("a", 1, "2026-11-29T08:04:15Z", None)];
        let draft = invoices(
            november(),
            &usage,
            &catalog(),
            &Discounts::none(),
            &[],
            mid_november(),
        )
        .remove(0);
        assert_eq!(draft.status, InvoiceStatus::Draft);
        assert_eq!(draft.total, usd("6.88"));
        // Still open when November ends: rated to midnight, 1 day 15 h 55 min
        // 45 s = 143 745 s; 143 745 × 6.88 / 3600 = 274.713… → 274.71.
        let final_invoice = invoices(
            november(),
            &usage,
            &catalog(),
            &Discounts::none(),
            &[],
            december(),
        )
        .remove(0);
        assert_eq!(final_invoice.status, InvoiceStatus::Final);
        assert_eq!(
            final_invoice.lines[0]
                .usage
                .as_ref()
                .unwrap()
                .device_seconds,
            143_745
        );
        assert_eq!(final_invoice.total, usd("274.71"));
        // The first second of December already makes November final.
        let at_midnight = invoices(
            november(),
            &usage,
            &catalog(),
            &Discounts::none(),
            &[],
            t("2026-12-01T00:00:00Z"),
        );
        assert_eq!(at_midnight[0].status, InvoiceStatus::Final);
        // An open interval younger than a minute gets no minimum yet.
        let young = [h100("a", 1, "2026-11-29T09:04:00Z", None)];
        let draft = invoices(
            november(),
            &young,
            &catalog(),
            &Discounts::none(),
            &[],
            mid_november(),
        )
        .remove(0);
        assert_eq!(draft.lines[0].usage.as_ref().unwrap().device_seconds, 15);
        // No usage, no invoice.
        assert!(
            invoices(
                october(),
                &young,
                &catalog(),
                &Discounts::none(),
                &[],
                mid_november()
            )
            .is_empty()
        );
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let no_price = UsageInterval {
            region: "eu-west-1".to_owned(),
            ..h100("a", 1, "2026-11-02T00:00:00Z", Some("2026-11-02T01:00:00Z"))
        };
        let err = build_invoices(
            "acme",
            november(),
            &[no_price],
            &catalog(),
            &Discounts::none(),
            &[],
            december(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no price for aws/eu-west-1/h100-80gb/on-demand at 2026-11-02T00:00:00Z \
             (usage of deployment a); set a price effective at or before that time"
        );
        let other = UsageInterval {
            tenant: "globex".to_owned(),
            ..h100("a", 1, "2026-11-02T00:00:00Z", None)
        };
        let err = build_invoices(
            "acme",
            november(),
            &[other],
            &catalog(),
            &Discounts::none(),
            &[],
            december(),
        )
        .unwrap_err();
        assert!(matches!(err, BillingError::WrongTenant { .. }), "{err}");
        for (amount, needle) in [
            (
                Money::from_micros(-1_000, Currency::Usd),
                "whole number of cents",
            ),
            (Money::zero(Currency::Usd), "is zero"),
        ] {
            let err = build_invoices(
                "acme",
                november(),
                &[],
                &catalog(),
                &Discounts::none(),
                &[Adjustment {
                    description: "goodwill".to_owned(),
                    amount,
                }],
                december(),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn usage_csv_lists_what_each_interval_is_billed_for_in_the_month() {
        let usage = [
            h100("a", 2, "2026-10-31T23:00:00Z", Some("2026-11-01T00:00:20Z")),
            h100("b,c", 1, "2026-11-29T09:00:00Z", None),
        ];
        let rows = usage_rows(november(), &usage, mid_november()).unwrap();
        let csv = usage_csv(&rows);
        let lines: Vec<_> = csv.split("\r\n").collect();
        assert!(lines[0].starts_with("tenant,deployment,deployment_name,"));
        // 20 s of November on 2 devices (the minimum already counted in October).
        assert_eq!(
            lines[1],
            "acme,a,a-name,aws-use1-prod,p5-h100,aws,us-east-1,h100-80gb,on-demand,2,\
             2026-10-31T23:00:00Z,2026-11-01T00:00:20Z,2026-11-01T00:00:00Z,2026-11-01T00:00:20Z,20,40,0.0111"
        );
        // Open: 255 s so far, no end.
        assert_eq!(
            lines[2],
            "acme,\"b,c\",\"b,c-name\",aws-use1-prod,p5-h100,aws,us-east-1,h100-80gb,on-demand,1,\
             2026-11-29T09:00:00Z,,2026-11-29T09:00:00Z,2026-11-29T09:04:15Z,255,255,0.0708"
        );
    }
}

mod billing_properties {
    use proptest::prelude::*;

    use super::*;

    /// 2026-10-01T00:00:00Z: intervals are drawn from October to December.
    const BASE: i64 = 1_790_812_800;
    const SPAN: i64 = 92 * 86_400;

    /// The test catalog plus an H100 price change in mid-November and an
    /// H200 spot price change in late October.
    fn changing_catalog() -> PriceCatalog {
        let mut c = catalog();
        for (key, price, at) in [
            (
                PriceKey::new(Cloud::Aws, "us-east-1", "h100-80gb", Capacity::OnDemand),
                "5.55",
                "2026-11-15T06:30:00Z",
            ),
            (
                PriceKey::new(Cloud::Aws, "us-east-1", "h200", Capacity::Spot),
                "3.123457",
                "2026-10-28T00:00:01Z",
            ),
        ] {
            c.insert(Price {
                key,
                per_device_hour: usd(price),
                effective_from: t(at),
                source: PriceSource::Admin,
            })
            .unwrap();
        }
        c
    }

    prop_compose! {
        fn interval()(
            deployment in 0..4u8,
            kind in 0..4u8,
            devices in 0..17u32,
            start in 0..SPAN,
            short in any::<bool>(),
            length in 0..20 * 86_400i64,
            short_length in 0..120i64,
            open in prop::bool::weighted(0.2),
        ) -> UsageInterval {
            let start_at = UnixSeconds(BASE + start).to_rfc3339();
            let end = UnixSeconds(BASE + start + if short { short_length } else { length });
            let end_text = end.to_rfc3339();
            let end = (!open).then_some(end_text.as_str());
            let id = format!("d{deployment}");
            match kind {
                0 => h100(&id, devices, &start_at, end),
                1 => UsageInterval {
                    capacity: Capacity::Spot,
                    accelerator: "h200".to_owned(),
                    ..h100(&id, devices, &start_at, end)
                },
                2 => UsageInterval {
                    cloud: Cloud::Aliyun,
                    region: "cn-beijing".to_owned(),
                    accelerator: "a10".to_owned(),
                    ..h100(&id, devices, &start_at, end)
                },
                _ => UsageInterval {
                    cloud: Cloud::Huaweicloud,
                    region: "cn-southwest-2".to_owned(),
                    accelerator: "ascend-910b".to_owned(),
                    ..h100(&id, devices, &start_at, end)
                },
            }
        }
    }

    fn discounts() -> impl Strategy<Value = Discounts> {
        (0..=10_000u32, proptest::option::of(0..=10_000u32)).prop_map(|(all, aws)| {
            let mut list = vec![Discount::new(DiscountScope::All, all).unwrap()];
            if let Some(aws) = aws {
                list.push(Discount::new(DiscountScope::Cloud(Cloud::Aws), aws).unwrap());
            }
            Discounts::new(list).unwrap()
        })
    }

    fn exact_total(interval: &UsageInterval, catalog: &PriceCatalog) -> (u64, i128) {
        let pieces = rate_interval(
            interval,
            catalog,
            UnixSeconds(BASE - 86_400)..UnixSeconds(BASE + 2 * SPAN),
            UnixSeconds(BASE + SPAN),
        )
        .unwrap();
        (
            pieces.iter().map(|p| p.device_seconds).sum(),
            pieces.iter().map(|p| p.exact.0).sum(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// For any usage: total = Σ lines, Σ BilledCost = total (checked in
        /// `invoices`), one invoice per currency, draft before the month ends.
        #[test]
        fn billing_invoice_totals_are_exact(
            usage in prop::collection::vec(interval(), 0..40),
            discounts in discounts(),
            now_offset in 0..SPAN,
            credit_cents in proptest::option::of(1..100_000i64),
        ) {
            let catalog = changing_catalog();
            let now = UnixSeconds(BASE + now_offset);
            let credits: Vec<_> = credit_cents
                .map(|c| Adjustment {
                    description: "credit".to_owned(),
                    amount: Money::from_micros(-c * 10_000, Currency::Cny),
                })
                .into_iter()
                .collect();
            for period in [october(), november(), BillingPeriod::new(2026, 12).unwrap()] {
                let all = invoices(period, &usage, &catalog, &discounts, &credits, now);
                let mut currencies: Vec<_> = all.iter().map(|i| i.currency).collect();
                currencies.dedup();
                prop_assert_eq!(currencies.len(), all.len());
                for invoice in &all {
                    let expected = if now >= period.end() {
                        InvoiceStatus::Final
                    } else {
                        InvoiceStatus::Draft
                    };
                    prop_assert_eq!(invoice.status, expected);
                }
            }
        }

        /// The month pieces of an interval add up exactly to the interval
        /// rated as a whole: splitting at month boundaries and price changes
        /// never bills a second more, nor a fraction of a micro-unit.
        #[test]
        fn billing_month_pieces_add_up_to_the_whole(usage in interval()) {
            let catalog = changing_catalog();
            let whole = exact_total(&usage, &catalog);
            let mut period = BillingPeriod::containing(UnixSeconds(BASE - 86_400));
            let (mut device_seconds, mut exact) = (0u64, 0i128);
            while period.start() < UnixSeconds(BASE + 2 * SPAN) {
                for p in rate_interval(
                    &usage,
                    &catalog,
                    period.start()..period.end(),
                    UnixSeconds(BASE + SPAN),
                )
                .unwrap()
                {
                    device_seconds += p.device_seconds;
                    exact += p.exact.0;
                }
                period = period.next();
            }
            prop_assert_eq!((device_seconds, exact), whole);
            if let Some(end) = usage.end {
                let billed = (end.0 - usage.start.0).max(60) as u64 * u64::from(usage.devices);
                prop_assert_eq!(whole.0, billed);
            }
        }

        /// Cutting a closed interval into several closed ones (a replica
        /// restarted) never bills less, and bills more only by the minimum:
        /// at most 60 s × devices for each extra interval, at most at the
        /// highest price. On the invoice, no line's list amount shrinks.
        #[test]
        fn billing_splitting_never_bills_more_than_the_minimum_rule_allows(
            usage in interval(),
            cuts in prop::collection::vec(0..=1000i64, 1..5),
            discounts in discounts(),
        ) {
            let Some(end) = usage.end else { return Ok(()) };
            let catalog = changing_catalog();
            let length = end.0 - usage.start.0;
            // Cut points drawn in thousandths of the length.
            let mut points: Vec<i64> = cuts
                .iter()
                .map(|c| usage.start.0 + length * c / 1000)
                .collect();
            points.push(usage.start.0);
            points.push(end.0);
            points.sort_unstable();
            let parts: Vec<UsageInterval> = points
                .windows(2)
                .map(|w| UsageInterval {
                    start: UnixSeconds(w[0]),
                    end: Some(UnixSeconds(w[1])),
                    ..usage.clone()
                })
                .collect();
            let extra_intervals = parts.len() as u64 - 1;
            let (whole_ds, whole_exact) = exact_total(&usage, &catalog);
            let (split_ds, split_exact) = parts
                .iter()
                .map(|p| exact_total(p, &catalog))
                .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
            let minimum_ds = 60 * u64::from(usage.devices) * extra_intervals;
            prop_assert!(split_ds >= whole_ds);
            prop_assert!(split_ds <= whole_ds + minimum_ds);
            let highest = catalog
                .history(&usage.price_key())
                .iter()
                .map(|p| p.per_device_hour.micros())
                .max()
                .unwrap();
            prop_assert!(split_exact >= whole_exact);
            prop_assert!(
                split_exact <= whole_exact + i128::from(minimum_ds) * i128::from(highest)
            );
            // When every part lasts a minute or more no minimum applies, and
            // the parts are billed exactly like the whole.
            if parts.iter().all(|p| p.end.unwrap().0 - p.start.0 >= 60) {
                prop_assert_eq!((split_ds, split_exact), (whole_ds, whole_exact));
            }
            let mut period = BillingPeriod::containing(usage.start);
            while period.start() <= end {
                let total = |intervals: &[UsageInterval]| {
                    let mut lines: Vec<_> =
                        invoices(period, intervals, &catalog, &discounts, &[], december())
                            .into_iter()
                            .flat_map(|i| i.lines)
                            .map(|l| {
                                let u = l.usage.unwrap();
                                (u.unit_price.micros(), l.list_amount.micros())
                            })
                            .collect();
                    lines.sort_unstable();
                    lines
                };
                let (whole_lines, split_lines) = (total(std::slice::from_ref(&usage)), total(&parts));
                for (unit, amount) in &whole_lines {
                    let split = split_lines.iter().find(|(u, _)| u == unit).map(|(_, a)| *a);
                    prop_assert!(split.unwrap_or(0) >= *amount);
                }
                period = period.next();
            }
        }
    }

    #[test]
    fn billing_exact_amount_is_exact() {
        // 3 device-seconds at 0.000001 USD per device-hour: 3 units of
        // 1/3600 micro — kept, not rounded away, until a line is rounded.
        let tiny = ExactAmount::of_usage(3, Money::from_micros(1, Currency::Usd)).unwrap();
        assert_eq!(tiny.0, 3);
        assert_eq!(tiny.round(Currency::Usd).unwrap().micros(), 0);
    }
}

/// Token pricing: a tenant billed by its calls. Amounts by hand again:
/// `tokens × price per million ÷ 1 000 000`, rounded half up to the cent
/// once per line.
mod billing_tokens {
    use super::*;
    use modelfleet_core::billing::{
        InvoiceBuilder, TokenDirection, TokenPrice, TokenPriceCatalog, TokenUsage, invoice_csv,
    };

    const MODEL: &str = "llama-3.1-8b";

    /// llama-3.1-8b: 0.50 / 1.50 USD per million input / output tokens
    /// from 10 November, 0.40 / 1.20 from 20 November.
    fn token_prices() -> TokenPriceCatalog {
        let mut catalog = TokenPriceCatalog::new();
        for (from, input, output) in [
            ("2026-11-10T00:00:00Z", "0.50", "1.50"),
            ("2026-11-20T00:00:00Z", "0.40", "1.20"),
        ] {
            catalog
                .insert(TokenPrice {
                    model: MODEL.to_owned(),
                    per_million_input: usd(input),
                    per_million_output: usd(output),
                    effective_from: t(from),
                })
                .unwrap();
        }
        catalog
    }

    fn tokens(deployment: &str, model: &str, hour: &str, input: u64, output: u64) -> TokenUsage {
        TokenUsage {
            deployment: deployment.to_owned(),
            deployment_name: format!("{deployment}-name"),
            tenant: "acme".to_owned(),
            model: model.to_owned(),
            hour: t(hour),
            requests: 1,
            input_tokens: input,
            output_tokens: output,
        }
    }

    fn usage() -> (Vec<UsageInterval>, Vec<TokenUsage>) {
        let intervals = vec![
            // "chat" serves llama-3.1-8b on 2 H100s for 48 h, across the
            // hour its first token price takes effect.
            h100(
                "chat",
                2,
                "2026-11-09T00:00:00Z",
                Some("2026-11-11T00:00:00Z"),
            ),
            // "embed" serves a model with no token price: 1 h on 1 H100.
            h100(
                "embed",
                1,
                "2026-11-12T00:00:00Z",
                Some("2026-11-12T01:00:00Z"),
            ),
        ];
        let tokens = vec![
            // Before the first price: covered by the device time.
            tokens("chat", MODEL, "2026-11-09T23:00:00Z", 1_000_000, 50_000),
            tokens("chat", MODEL, "2026-11-10T05:00:00Z", 1_234_567, 3_000),
            tokens("chat", MODEL, "2026-11-15T13:00:00Z", 765_433, 3_000),
            // After the price change, no output (an embedding, say).
            tokens("chat", MODEL, "2026-11-25T10:00:00Z", 12_500, 0),
            // December's tokens are not November's.
            tokens("chat", MODEL, "2026-12-01T00:00:00Z", 9_000_000, 0),
            tokens("embed", "bge-m3", "2026-11-12T00:00:00Z", 5_000_000, 0),
        ];
        (intervals, tokens)
    }

    fn discounts() -> Discounts {
        Discounts::new([
            Discount::new(DiscountScope::All, 1000).unwrap(),
            Discount::new(DiscountScope::Cloud(Cloud::Aws), 2000).unwrap(),
        ])
        .unwrap()
    }

    fn build(on_tokens: bool, now: UnixSeconds) -> Vec<Invoice> {
        let (intervals, usage) = usage();
        let catalog = catalog();
        let prices = token_prices();
        let discounts = discounts();
        let mut builder = InvoiceBuilder::new("acme", november(), &catalog, &discounts, now);
        if on_tokens {
            builder.bill_by_tokens(
                &prices,
                [
                    ("chat".to_owned(), MODEL.to_owned()),
                    ("embed".to_owned(), "bge-m3".to_owned()),
                ],
            );
        }
        for interval in &intervals {
            builder.add(interval).unwrap();
        }
        for tokens in &usage {
            builder.add_tokens(tokens).unwrap();
        }
        let invoices = builder.finish().unwrap();
        for invoice in &invoices {
            check_invariants(invoice);
        }
        invoices
    }

    #[test]
    fn token_lines_replace_device_time_from_the_first_price_and_round_once() {
        let invoices = build(true, december());
        assert_eq!(invoices.len(), 1);
        let invoice = &invoices[0];
        assert_eq!(invoice.status, InvoiceStatus::Final);
        let got: Vec<_> = invoice
            .lines
            .iter()
            .map(|l| {
                (
                    l.description.as_str(),
                    l.list_amount,
                    l.discount_amount,
                    l.amount,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                // 24 h × 2 devices until the price took effect =
                // 172 800 device-seconds × 6.88 / 3600 = 330.24;
                // AWS's own 20 % = 66.048 → 66.05.
                (
                    "chat-name: 48.0000 device-hours of h100-80gb (on-demand) on aws us-east-1 \
                     at 6.88 USD per device-hour",
                    usd("330.24"),
                    usd("66.05"),
                    usd("264.19")
                ),
                // 1 234 567 + 765 433 = 2 000 000 × 0.50 = 1.00; the
                // all-clouds 10 % = 0.10.
                (
                    "chat-name: 2000000 input tokens of llama-3.1-8b at 0.50 USD per million \
                     input tokens",
                    usd("1.00"),
                    usd("0.10"),
                    usd("0.90")
                ),
                // 3 000 × 1.50 = 0.0045 per hour would round to 0.00 twice;
                // the line's 6 000 × 1.50 = 0.009 rounds once → 0.01;
                // 10 % = 0.0009 → 0.00.
                (
                    "chat-name: 6000 output tokens of llama-3.1-8b at 1.50 USD per million \
                     output tokens",
                    usd("0.01"),
                    usd("0.00"),
                    usd("0.01")
                ),
                // The new price: 12 500 × 0.40 = 0.005 → half up 0.01.
                (
                    "chat-name: 12500 input tokens of llama-3.1-8b at 0.40 USD per million \
                     input tokens",
                    usd("0.01"),
                    usd("0.00"),
                    usd("0.01")
                ),
                // No token price for bge-m3: billed by time, 6.88; 20 % = 1.376 → 1.38.
                (
                    "embed-name: 1.0000 device-hours of h100-80gb (on-demand) on aws us-east-1 \
                     at 6.88 USD per device-hour",
                    usd("6.88"),
                    usd("1.38"),
                    usd("5.50")
                ),
            ]
        );
        assert_eq!(invoice.list_total, usd("338.14"));
        assert_eq!(invoice.total, usd("270.61"));
        // The 48 h device line is 24 h: the other 24 are billed by tokens.
        assert_eq!(
            invoice.lines[0].usage.as_ref().unwrap().device_seconds,
            172_800
        );
        let first = invoice.lines[1].tokens.as_ref().unwrap();
        assert_eq!(
            (first.direction, first.tokens, first.discount_basis_points),
            (TokenDirection::Input, 2_000_000, 1000)
        );
        assert_eq!(invoice.lines[1].charge_start, t("2026-11-10T05:00:00Z"));
        assert_eq!(invoice.lines[1].charge_end, t("2026-11-15T14:00:00Z"));
    }

    #[test]
    fn a_tenant_on_time_gets_no_token_lines() {
        let invoices = build(false, december());
        let invoice = &invoices[0];
        assert!(invoice.lines.iter().all(|l| l.tokens.is_none()));
        // All 48 h of "chat": 345 600 × 6.88 / 3600 = 660.48; 20 % = 132.096 → 132.10.
        assert_eq!(
            (invoice.lines[0].list_amount, invoice.lines[0].amount),
            (usd("660.48"), usd("528.38"))
        );
        assert_eq!(invoice.lines.len(), 2);
    }

    #[test]
    fn a_draft_counts_the_tokens_so_far_and_another_tenants_are_refused() {
        let invoices = build(true, mid_november());
        assert_eq!(invoices[0].status, InvoiceStatus::Draft);
        assert_eq!(invoices[0].total, usd("270.61"));

        let catalog = catalog();
        let prices = token_prices();
        let discounts = Discounts::none();
        let mut builder = InvoiceBuilder::new("acme", november(), &catalog, &discounts, december());
        builder.bill_by_tokens(&prices, []);
        let mut theirs = tokens("x", MODEL, "2026-11-12T00:00:00Z", 1, 1);
        theirs.tenant = "globex".to_owned();
        let err = builder.add_tokens(&theirs).unwrap_err();
        assert!(
            matches!(err, BillingError::WrongTenantTokens { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("globex"), "{err}");
    }

    #[test]
    fn focus_and_csv_carry_tokens_and_old_invoices_read_back() {
        let invoices = build(true, december());
        let invoice = &invoices[0];
        let rows = focus_rows(invoice, "Acme Corp");
        let row = &rows[1];
        assert_eq!(row.consumed_quantity, "2000000");
        assert_eq!(row.consumed_unit, "Tokens");
        assert_eq!(row.pricing_quantity, "2.000000");
        assert_eq!(row.pricing_unit, "1000000 Tokens");
        assert_eq!(row.list_unit_price, "0.50");
        assert_eq!(row.list_cost, "1.00");
        assert_eq!(row.billed_cost, "0.90");
        assert_eq!(row.sku_id, "tokens/llama-3.1-8b/input");
        assert_eq!(row.resource_id, "chat");
        assert!(
            row.tags
                .contains("\"modelfleet.io/model\":\"llama-3.1-8b\"")
        );
        assert_eq!(rows[0].consumed_unit, "Device-Seconds");

        let csv = invoice_csv(invoice, "inv-1");
        let mut lines = csv.lines();
        let header = lines.next().unwrap();
        assert!(
            header.ends_with("price_unit,model,token_direction,tokens"),
            "{header}"
        );
        let token_row = lines.nth(1).unwrap();
        assert!(
            token_row.ends_with("million input tokens,llama-3.1-8b,input,2000000"),
            "{token_row}"
        );
        assert!(token_row.contains(",chat,chat-name,"), "{token_row}");

        // An invoice issued before token lines existed has no `tokens`
        // keys; it reads back exactly, and device lines still write none.
        let json = serde_json::to_string(&build(false, december())[0]).unwrap();
        assert!(!json.contains("\"tokens\""), "{json}");
        let back: Invoice = serde_json::from_str(&json).unwrap();
        assert_eq!(back, build(false, december())[0]);
        let json = serde_json::to_string(invoice).unwrap();
        let back: Invoice = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, invoice);
    }
}
