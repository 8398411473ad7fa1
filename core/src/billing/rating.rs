//! Rating: turning usage intervals into exact charges, piece by piece.
//!
//! See the module documentation of [`crate::billing`] for the rules this
//! file implements (the 60-second minimum, pieces, exactness, rounding).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::BillingError;
use super::catalog::{Capacity, Price, PriceCatalog, PriceKey};
use super::discount::FULL_BASIS_POINTS;
use super::time::UnixSeconds;
use crate::fleet::Cloud;
use crate::money::{Currency, MICROS_PER_UNIT, Money};

/// The shortest time a closed interval is billed for.
pub const MINIMUM_BILLED_SECONDS: i64 = 60;

const SECONDS_PER_HOUR: i128 = 3600;

/// Devices held by one replica of a deployment from `start` until `end`
/// (`None` while it still holds them). The hub makes one from each replica
/// interval that cluster sync records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageInterval {
    /// Deployment id.
    pub deployment: String,
    pub deployment_name: String,
    pub tenant: String,
    pub cluster: String,
    pub pool: String,
    pub cloud: Cloud,
    pub region: String,
    /// Accelerator catalog id.
    pub accelerator: String,
    pub capacity: Capacity,
    pub devices: u32,
    pub start: UnixSeconds,
    pub end: Option<UnixSeconds>,
}

impl UsageInterval {
    pub fn price_key(&self) -> PriceKey {
        PriceKey::new(self.cloud, &self.region, &self.accelerator, self.capacity)
    }
}

/// A charge kept exactly, in units of 1/3600 of a micro-unit: the product
/// `devices × seconds × micro-units per device-hour` before dividing by the
/// 3600 seconds of an hour. Summing these never loses anything; only
/// [`ExactAmount::round`] turns one into money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct ExactAmount(pub i128);

impl ExactAmount {
    /// `device_seconds × per_device_hour` (micro-units), exactly.
    pub fn of_usage(device_seconds: u64, per_device_hour: Money) -> Option<ExactAmount> {
        i128::from(device_seconds)
            .checked_mul(i128::from(per_device_hour.micros()))
            .map(ExactAmount)
    }

    pub fn checked_add(self, other: ExactAmount) -> Option<ExactAmount> {
        self.0.checked_add(other.0).map(ExactAmount)
    }

    /// The amount rounded half up to the currency's minor unit.
    pub fn round(self, currency: Currency) -> Option<Money> {
        let unit = i128::from(minor_unit_micros(currency));
        let minor = div_round_half_up(self.0, SECONDS_PER_HOUR.checked_mul(unit)?)?;
        i64::try_from(minor.checked_mul(unit)?)
            .ok()
            .map(|micros| Money::from_micros(micros, currency))
    }

    /// `basis_points / 10 000` of the amount, rounded half up to the
    /// currency's minor unit: the discount on a line.
    pub fn round_share(self, basis_points: u32, currency: Currency) -> Option<Money> {
        let unit = i128::from(minor_unit_micros(currency));
        let numerator = self.0.checked_mul(i128::from(basis_points))?;
        let denominator = SECONDS_PER_HOUR
            .checked_mul(unit)?
            .checked_mul(i128::from(FULL_BASIS_POINTS))?;
        let minor = div_round_half_up(numerator, denominator)?;
        i64::try_from(minor.checked_mul(unit)?)
            .ok()
            .map(|micros| Money::from_micros(micros, currency))
    }
}

/// `n / d` rounded to the nearest integer, ties toward +∞ ("half up");
/// `d` must be positive. Usage charges are never negative, so for them this
/// is also "half away from zero".
pub(crate) fn div_round_half_up(n: i128, d: i128) -> Option<i128> {
    if d <= 0 {
        return None;
    }
    let quotient = n.div_euclid(d);
    let remainder = n.rem_euclid(d);
    // remainder ≥ d / 2, without the division rounding d / 2 down.
    if remainder.checked_mul(2)? >= d {
        quotient.checked_add(1)
    } else {
        Some(quotient)
    }
}

/// Micro-units in the currency's minor unit: invoices are rounded to it.
pub fn minor_unit_micros(currency: Currency) -> i64 {
    match currency {
        // 1 cent, 1 fen.
        Currency::Usd | Currency::Cny => 10_000,
    }
}

/// A whole number of minor units as decimal text with exactly the minor
/// unit's decimals (`12.30`, `-0.05`), for invoices and FOCUS cost columns.
/// Amounts that are not whole minor units keep their extra digits rather
/// than being silently rounded.
pub fn minor_unit_string(money: Money) -> String {
    let unit = minor_unit_micros(money.currency());
    let decimals = match MICROS_PER_UNIT / unit {
        100 => 2,
        _ => 6,
    };
    let sign = if money.micros() < 0 { "-" } else { "" };
    let abs = money.micros().unsigned_abs();
    let per_unit = MICROS_PER_UNIT.unsigned_abs();
    let frac = format!("{:06}", abs % per_unit);
    let frac = if frac[decimals..].bytes().all(|b| b == b'0') {
        &frac[..decimals]
    } else {
        frac.as_str()
    };
    format!("{sign}{}.{frac}", abs / per_unit)
}

/// Device-seconds as device-hours with four decimals, rounded half up.
/// For display only: the exact quantity is the device-seconds.
pub fn format_device_hours(device_seconds: u64) -> String {
    // ten-thousandths of an hour = seconds × 10 000 / 3600 = seconds × 25 / 9
    let n = u128::from(device_seconds) * 25;
    let tenth_milli_hours = n / 9 + u128::from(n % 9 * 2 >= 9);
    format!(
        "{}.{:04}",
        tenth_milli_hours / 10_000,
        tenth_milli_hours % 10_000
    )
}

/// One piece of an interval: a stretch inside the rating window with one
/// price in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RatedPiece<'c> {
    /// The stretch of actual use, `[start, end)`.
    pub start: UnixSeconds,
    pub end: UnixSeconds,
    /// `end − start`, plus the 60-second top-up on the interval's first
    /// piece when the interval was shorter than a minute.
    pub billed_seconds: i64,
    pub device_seconds: u64,
    pub price: &'c Price,
    pub exact: ExactAmount,
}

/// Where an interval is billed inside a window, before prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BillableSpan {
    pub from: UnixSeconds,
    pub to: UnixSeconds,
    /// Seconds short of the minimum, billed on the piece starting at `from`.
    pub top_up: i64,
}

impl BillableSpan {
    pub fn billed_seconds(&self) -> i64 {
        self.to.0 - self.from.0 + self.top_up
    }
}

/// The part of `interval` billed in `window`: its use clipped to the window,
/// plus the top-up to 60 seconds if it is closed, shorter than a minute and
/// starts in the window. Open intervals count up to `open_until`.
pub(crate) fn billable_span(
    interval: &UsageInterval,
    window: &Range<UnixSeconds>,
    open_until: UnixSeconds,
) -> Result<Option<BillableSpan>, BillingError> {
    let start = interval.start;
    let (end, shortfall) = match interval.end {
        Some(end) if end < start => {
            return Err(BillingError::IntervalEndsBeforeStart {
                deployment: interval.deployment.clone(),
                start,
                end,
            });
        }
        Some(end) => {
            let used = end.0.checked_sub(start.0).ok_or_else(|| {
                BillingError::Overflow(format!(
                    "the length of deployment {}'s usage",
                    interval.deployment
                ))
            })?;
            (end, (MINIMUM_BILLED_SECONDS - used).max(0))
        }
        None => (open_until.max(start), 0),
    };
    let top_up = if window.contains(&start) {
        shortfall
    } else {
        0
    };
    let from = start.max(window.start);
    let to = end.min(window.end);
    if from >= to && top_up == 0 {
        return Ok(None);
    }
    // With a top-up the interval starts in the window, so `to ≥ from`.
    Ok(Some(BillableSpan { from, to, top_up }))
}

/// Rates the part of `interval` that falls in `window` (see the rules in
/// [`crate::billing`]), one piece per price in force. Open intervals are
/// rated up to `open_until`. Fails if some second of the usage has no price.
pub fn rate_interval<'c>(
    interval: &UsageInterval,
    catalog: &'c PriceCatalog,
    window: Range<UnixSeconds>,
    open_until: UnixSeconds,
) -> Result<Vec<RatedPiece<'c>>, BillingError> {
    let mut pieces = Vec::new();
    for_each_piece(interval, catalog, &window, open_until, |piece| {
        pieces.push(piece);
        Ok(())
    })?;
    Ok(pieces)
}

/// [`rate_interval`] without collecting: calls `sink` for every piece.
pub(crate) fn for_each_piece<'c>(
    interval: &UsageInterval,
    catalog: &'c PriceCatalog,
    window: &Range<UnixSeconds>,
    open_until: UnixSeconds,
    mut sink: impl FnMut(RatedPiece<'c>) -> Result<(), BillingError>,
) -> Result<(), BillingError> {
    let Some(span) = billable_span(interval, window, open_until)? else {
        return Ok(());
    };
    let history = catalog.history_of(
        interval.cloud,
        &interval.region,
        &interval.accelerator,
        interval.capacity,
    );
    let unpriced = || BillingError::Unpriced {
        deployment: interval.deployment.clone(),
        key: interval.price_key().to_string(),
        at: span.from,
    };
    let overflow = || BillingError::Overflow(format!("deployment {}", interval.deployment));
    // The price in force at `from`, then each later one that starts before `to`.
    let mut index = history
        .partition_point(|p| p.effective_from <= span.from)
        .checked_sub(1)
        .ok_or_else(unpriced)?;
    let mut cursor = span.from;
    let mut top_up = span.top_up;
    loop {
        let price = &history[index];
        let piece_end = match history.get(index + 1) {
            Some(next) if next.effective_from < span.to => next.effective_from,
            _ => span.to,
        };
        let billed_seconds = piece_end.0 - cursor.0 + top_up;
        top_up = 0;
        let device_seconds = u64::from(interval.devices)
            .checked_mul(u64::try_from(billed_seconds).map_err(|_| overflow())?)
            .ok_or_else(overflow)?;
        let exact =
            ExactAmount::of_usage(device_seconds, price.per_device_hour).ok_or_else(overflow)?;
        sink(RatedPiece {
            start: cursor,
            end: piece_end,
            billed_seconds,
            device_seconds,
            price,
            exact,
        })?;
        if piece_end >= span.to {
            return Ok(());
        }
        cursor = piece_end;
        index += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::catalog::PriceSource;

    #[test]
    fn rounds_half_up_once() {
        // 0.005 USD exactly = 5_000 micros = 5_000 × 3600 units → 0.01.
        let half_cent = ExactAmount(5_000 * 3600);
        assert_eq!(half_cent.round(Currency::Usd).unwrap().micros(), 10_000);
        let just_below = ExactAmount(5_000 * 3600 - 1);
        assert_eq!(just_below.round(Currency::Usd).unwrap().micros(), 0);
        assert_eq!(div_round_half_up(-5, 10), Some(0));
        assert_eq!(div_round_half_up(-6, 10), Some(-1));
        assert_eq!(div_round_half_up(1, 0), None);
        // 12.5 % of 1.00 USD = 0.125 → 0.13.
        let dollar = ExactAmount(1_000_000 * 3600);
        assert_eq!(
            dollar.round_share(1250, Currency::Usd).unwrap().micros(),
            130_000
        );
    }

    #[test]
    fn formats_minor_units_and_device_hours() {
        let usd = |m| minor_unit_string(Money::from_micros(m, Currency::Usd));
        assert_eq!(usd(12_300_000), "12.30");
        assert_eq!(usd(-50_000), "-0.05");
        assert_eq!(usd(0), "0.00");
        assert_eq!(usd(1_234), "0.001234");
        assert_eq!(format_device_hours(3600), "1.0000");
        assert_eq!(format_device_hours(1), "0.0003"); // 0.000277… → 0.0003
        assert_eq!(format_device_hours(61), "0.0169"); // 0.016944…
        assert_eq!(format_device_hours(0), "0.0000");
        // 9 s = 0.0025 h exactly; 18 s = 0.005 h.
        assert_eq!(format_device_hours(18), "0.0050");
    }

    fn interval(start: i64, end: Option<i64>) -> UsageInterval {
        UsageInterval {
            deployment: "d1".into(),
            deployment_name: "chat".into(),
            tenant: "t1".into(),
            cluster: "c1".into(),
            pool: "p1".into(),
            cloud: Cloud::Aws,
            region: "us-east-1".into(),
            accelerator: "h100-80gb".into(),
            capacity: Capacity::OnDemand,
            devices: 2,
            start: UnixSeconds(start),
            end: end.map(UnixSeconds),
        }
    }

    fn catalog() -> PriceCatalog {
        let mut c = PriceCatalog::new();
        for (from, micros) in [(0, 6_880_000), (1_000, 5_000_000)] {
            c.insert(Price {
                key: interval(0, None).price_key(),
                per_device_hour: Money::from_micros(micros, Currency::Usd),
                effective_from: UnixSeconds(from),
                source: PriceSource::Admin,
            })
            .unwrap();
        }
        c
    }

    #[test]
    fn splits_at_price_changes_and_tops_up_the_first_piece() {
        let c = catalog();
        let all = UnixSeconds(0)..UnixSeconds(10_000);
        // 980..1010 is 30 s: 20 s at the old price + 30 s top-up, 10 s at the new.
        let pieces =
            rate_interval(&interval(980, Some(1010)), &c, all.clone(), UnixSeconds(0)).unwrap();
        let summary: Vec<_> = pieces
            .iter()
            .map(|p| {
                (
                    p.start.0,
                    p.end.0,
                    p.billed_seconds,
                    p.device_seconds,
                    p.price.per_device_hour.micros(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (980, 1000, 50, 100, 6_880_000),
                (1000, 1010, 10, 20, 5_000_000)
            ]
        );
        // A zero-length interval is still a minute on two devices.
        let pieces =
            rate_interval(&interval(500, Some(500)), &c, all.clone(), UnixSeconds(0)).unwrap();
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].device_seconds, 120);
        // Open intervals run to `open_until` with no minimum.
        let pieces =
            rate_interval(&interval(500, None), &c, all.clone(), UnixSeconds(530)).unwrap();
        assert_eq!(pieces[0].device_seconds, 60);
        assert!(
            rate_interval(&interval(500, None), &c, all, UnixSeconds(400))
                .unwrap()
                .is_empty()
        );
        // The top-up stays with the window that holds the start.
        let later = UnixSeconds(990)..UnixSeconds(10_000);
        let pieces = rate_interval(&interval(980, Some(1010)), &c, later, UnixSeconds(0)).unwrap();
        assert_eq!(pieces.iter().map(|p| p.billed_seconds).sum::<i64>(), 20);
    }

    #[test]
    fn unpriced_and_backwards_usage_are_refused() {
        let c = catalog();
        let mut early = interval(-100, Some(10));
        let err = rate_interval(
            &early,
            &c,
            UnixSeconds(-1_000)..UnixSeconds(1_000),
            UnixSeconds(0),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no price for aws/us-east-1/h100-80gb/on-demand at 1969-12-31T23:58:20Z"),
            "{err}"
        );
        early.end = Some(UnixSeconds(-200));
        let err = rate_interval(
            &early,
            &c,
            UnixSeconds(0)..UnixSeconds(1_000),
            UnixSeconds(0),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("before it starts"), "{err}");
    }
}
