//! December's invoice by hand: the prices the scenario sets, and integer
//! arithmetic on the scenario's times.

use chrono::{DateTime, Utc};

use super::{
    ALPHA, BRAVO, bravo_deleted, bravo_deployed, failed_over, month_end, node_lost, price_change,
    scale_back, scale_down, scale_up, start,
};

// The prices, USD per device-hour, in micro-dollars.
/// aws us-east-1 l40s on-demand, from December 1.
pub const AWS_ON_DEMAND: i128 = 1_861_700;
/// aws us-east-1 l40s on-demand, from December 14 (set on December 1).
pub const AWS_ON_DEMAND_FROM_14TH: i128 = 2_034_900;
/// aws us-east-1 l40s spot.
pub const AWS_SPOT: i128 = 743_700;
/// aliyun cn-hangzhou l40s on-demand.
pub const ALIYUN_ON_DEMAND: i128 = 1_692_700;

/// `1_861_700` → `"1.8617 USD"`.
pub fn usd(micros: i128) -> String {
    format!("{}.{:06} USD", micros / 1_000_000, micros % 1_000_000)
}

/// One invoice line as the hand arithmetic sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandLine {
    pub deployment: &'static str,
    pub cloud: &'static str,
    pub region: &'static str,
    pub capacity: &'static str,
    pub device_seconds: i128,
    pub unit_price_micros: i128,
    pub cents: i128,
}

/// Seconds from `from` to `to`, at least the 60 billed for any interval.
fn billed_seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> i128 {
    i128::from((to - from).num_seconds().max(60))
}

/// Half-up to cents, once per line: device-seconds × micro-dollars per
/// device-hour ÷ 3600 is micro-dollars; a cent is 10 000 of them.
fn cents(device_seconds: i128, price_micros: i128) -> i128 {
    const MICROS_PER_CENT_HOUR: i128 = 3600 * 10_000;
    (device_seconds * price_micros + MICROS_PER_CENT_HOUR / 2) / MICROS_PER_CENT_HOUR
}

/// December's invoice, by hand, for `alpha_devices` and `bravo_devices`
/// devices per replica (1 and 1 for llama-3.1-8b on an L40S).
///
/// With one device per replica the numbers are:
///
/// | line | device-seconds | × µUSD/h | ÷ 36 000 000 = cents |
/// |---|---|---|---|
/// | alpha aws on-demand until the 14th | 1 123 200 + 561 600 + 60 = 1 684 860 | 1 861 700 | 87 130.66 → 87 131 |
/// | alpha aws on-demand from the 14th | 518 400 + 2 = 518 402 | 2 034 900 | 29 302.67 → 29 303 |
/// | alpha aliyun on-demand | 1 036 200 | 1 692 700 | 48 721.55 → 48 722 |
/// | bravo aws spot | 1 123 200 | 743 700 | 23 203.44 → 23 203 |
///
/// Total 188 359 cents: **1883.59 USD**. (Rounding the unrounded sum,
/// 188 358.32, would say 1883.58.)
pub fn expected_invoice(alpha_devices: i128, bravo_devices: i128) -> Vec<HandLine> {
    // alpha's first replica: December 1 until its node is lost on the 20th,
    // split at the price change.
    let first_before = alpha_devices * billed_seconds(start(), price_change());
    let first_after = alpha_devices * i128::from((node_lost() - price_change()).num_seconds());
    // The two replicas added on the 3rd: one lives 30 s (billed 60), the
    // other until the 10th.
    let second = alpha_devices * billed_seconds(scale_up(), scale_down());
    let third = alpha_devices * billed_seconds(scale_up(), scale_back());
    // After failover, on aliyun until the month ends (it is deleted later).
    let moved = alpha_devices * billed_seconds(failed_over(), month_end());
    let bravo = bravo_devices * billed_seconds(bravo_deployed(), bravo_deleted());

    let line = |deployment, cloud, region, capacity, device_seconds, price| HandLine {
        deployment,
        cloud,
        region,
        capacity,
        device_seconds,
        unit_price_micros: price,
        cents: cents(device_seconds, price),
    };
    vec![
        line(
            ALPHA,
            "aws",
            "us-east-1",
            "on-demand",
            first_before + second + third,
            AWS_ON_DEMAND,
        ),
        line(
            ALPHA,
            "aws",
            "us-east-1",
            "on-demand",
            first_after,
            AWS_ON_DEMAND_FROM_14TH,
        ),
        line(
            ALPHA,
            "aliyun",
            "cn-hangzhou",
            "on-demand",
            moved,
            ALIYUN_ON_DEMAND,
        ),
        line(BRAVO, "aws", "us-east-1", "spot", bravo, AWS_SPOT),
    ]
}

/// `12345` cents → `"123.45"`.
pub fn amount(cents: i128) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}
