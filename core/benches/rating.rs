//! Rates millions of usage intervals into invoices and reports the speed and
//! the peak memory, to show that rating streams: memory grows with the
//! number of invoice lines, not with the number of intervals.
//!
//! `cargo bench --workspace --exclude modelfleet-web --bench rating`
//! (10 million intervals; `RATING_INTERVALS=…` to change). Under
//! `cargo test --all-targets` it runs 10 000 as a smoke test.

use std::hint::black_box;
use std::time::Instant;

use modelfleet_core::billing::{
    BillingPeriod, Capacity, Discount, DiscountScope, Discounts, InvoiceBuilder, Price,
    PriceCatalog, PriceKey, PriceSource, UnixSeconds, UsageInterval,
};
use modelfleet_core::fleet::{Cloud, Fleet};
use modelfleet_core::money::{Currency, Money};

const TENANTS: usize = 10;
const DEPLOYMENTS_PER_TENANT: usize = 100;

/// Peak resident memory so far (VmHWM), in KiB, where Linux reports it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn show_rss(label: &str) {
    match peak_rss_kib() {
        Some(kib) => println!("peak RSS {label}: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak RSS {label}: unavailable (no /proc/self/status)"),
    }
}

/// A small deterministic generator (64-bit LCG, high bits): the bench must
/// not depend on a random-number crate, and needs the same input every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// The seeded AWS prices, the example fleet's others, and an H100 price
/// change in mid-November so some intervals are split by price.
fn catalog() -> PriceCatalog {
    let mut catalog = PriceCatalog::seed();
    let fleet = PriceCatalog::from_fleet(&Fleet::example(), UnixSeconds::EPOCH).unwrap();
    for price in fleet.prices() {
        if catalog.history(&price.key).is_empty() {
            catalog.insert(price.clone()).unwrap();
        }
    }
    catalog
        .insert(Price {
            key: PriceKey::new(Cloud::Aws, "us-east-1", "h100-80gb", Capacity::OnDemand),
            per_device_hour: Money::parse_amount("5.55", Currency::Usd).unwrap(),
            effective_from: UnixSeconds::parse_rfc3339("2026-11-15T06:30:00Z").unwrap(),
            source: PriceSource::Admin,
        })
        .unwrap();
    catalog
}

/// One interval per (tenant, deployment); the loop only moves their times,
/// so generating input allocates nothing while rating is timed.
fn templates() -> Vec<Vec<UsageInterval>> {
    let kinds = [
        (Cloud::Aws, "us-east-1", "h100-80gb", Capacity::OnDemand),
        (Cloud::Aws, "us-east-1", "h200", Capacity::Spot),
        (Cloud::Aliyun, "cn-beijing", "a100-80gb", Capacity::OnDemand),
        (
            Cloud::Huaweicloud,
            "cn-southwest-2",
            "ascend-910b",
            Capacity::OnDemand,
        ),
    ];
    (0..TENANTS)
        .map(|t| {
            (0..DEPLOYMENTS_PER_TENANT)
                .map(|d| {
                    let (cloud, region, accelerator, capacity) = kinds[d % kinds.len()];
                    UsageInterval {
                        deployment: format!("dep-{t}-{d}"),
                        deployment_name: format!("model-{d}"),
                        tenant: format!("tenant-{t}"),
                        cluster: format!("{cloud}-cluster"),
                        pool: "pool".to_owned(),
                        cloud,
                        region: region.to_owned(),
                        accelerator: accelerator.to_owned(),
                        capacity,
                        devices: 1,
                        start: UnixSeconds::EPOCH,
                        end: None,
                    }
                })
                .collect()
        })
        .collect()
}

fn main() {
    let under_bench = std::env::args().any(|a| a == "--bench");
    let count: u64 = std::env::var("RATING_INTERVALS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(if under_bench { 10_000_000 } else { 10_000 });
    show_rss("at start");

    let catalog = catalog();
    let discounts = Discounts::new([
        Discount::new(DiscountScope::All, 500).unwrap(),
        Discount::new(DiscountScope::Cloud(Cloud::Aws), 1250).unwrap(),
    ])
    .unwrap();
    let period = BillingPeriod::new(2026, 11).unwrap();
    let now = UnixSeconds::parse_rfc3339("2026-12-02T00:00:00Z").unwrap();
    let mut templates = templates();
    let mut builders: Vec<_> = (0..TENANTS)
        .map(|t| InvoiceBuilder::new(&format!("tenant-{t}"), period, &catalog, &discounts, now))
        .collect();
    show_rss("before rating");

    // Starts from 25 October to the end of November; a third of the
    // intervals shorter than the 60-second minimum, one in ten still open.
    let first_start = UnixSeconds::parse_rfc3339("2026-10-25T00:00:00Z")
        .unwrap()
        .0;
    let span = (period.end().0 - first_start) as u64;
    let mut rng = Lcg(42);
    let started = Instant::now();
    for i in 0..count {
        let tenant = (i % TENANTS as u64) as usize;
        let deployment = rng.next(DEPLOYMENTS_PER_TENANT as u64) as usize;
        let interval = &mut templates[tenant][deployment];
        let start = first_start + rng.next(span) as i64;
        let length = match rng.next(3) {
            0 => rng.next(60),
            _ => rng.next(2 * 86_400),
        } as i64;
        interval.start = UnixSeconds(start);
        interval.end = (rng.next(10) != 0).then_some(UnixSeconds(start + length));
        interval.devices = 1 << rng.next(4);
        builders[tenant].add(interval).unwrap();
    }
    let rated = started.elapsed();
    let invoices: Vec<_> = builders
        .into_iter()
        .flat_map(|b| b.finish().unwrap())
        .collect();
    let total = started.elapsed();
    show_rss("after rating");

    let lines: usize = invoices.iter().map(|i| i.lines.len()).sum();
    let mut totals = [0i64; 2];
    for invoice in &invoices {
        totals[usize::from(invoice.currency == Currency::Cny)] += invoice.total.micros();
    }
    black_box(&invoices);
    let secs = rated.as_secs_f64();
    println!(
        "rated {count} intervals in {:.3} s ({:.0} intervals/s); with invoices built {:.3} s",
        secs,
        count as f64 / secs,
        total.as_secs_f64()
    );
    println!(
        "{} invoices, {lines} lines; totals {} / {}",
        invoices.len(),
        Money::from_micros(totals[0], Currency::Usd),
        Money::from_micros(totals[1], Currency::Cny),
    );
}
