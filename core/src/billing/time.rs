//! Instants and calendar months for billing, without a clock or a date crate.
//!
//! Billing only needs whole seconds in UTC and the first second of each
//! calendar month, so an instant is an `i64` count of Unix seconds and the
//! month boundaries are computed with the proleptic Gregorian day-count
//! arithmetic below. Keeping `chrono` out of `core` keeps the crate free of
//! anything that could read the system clock; the hub converts its
//! `DateTime<Utc>` values with `UnixSeconds(dt.timestamp())`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::BillingError;

const SECONDS_PER_DAY: i64 = 86_400;

/// An instant in UTC, as whole seconds since 1970-01-01T00:00:00Z.
///
/// Sub-second parts are dropped (floored) before they reach billing: clouds
/// bill per second, and flooring both ends of an interval keeps its length
/// within one second of the truth.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixSeconds(pub i64);

impl UnixSeconds {
    pub const EPOCH: UnixSeconds = UnixSeconds(0);

    /// The instant at a UTC calendar date and time of day. Fails on a date
    /// that does not exist (`2026-02-29`) or a time out of range.
    pub fn from_utc(
        year: i32,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
    ) -> Result<UnixSeconds, BillingError> {
        let valid_day =
            (1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day);
        if !valid_day || hour > 23 || minute > 59 || second > 59 {
            return Err(BillingError::InvalidDateTime(format!(
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z"
            )));
        }
        let days = days_from_civil(i64::from(year), u32::from(month), u32::from(day));
        Ok(UnixSeconds(
            days * SECONDS_PER_DAY
                + i64::from(hour) * 3600
                + i64::from(minute) * 60
                + i64::from(second),
        ))
    }

    /// Parses the one form billing writes: `2026-11-01T00:00:00Z`.
    pub fn parse_rfc3339(text: &str) -> Result<UnixSeconds, BillingError> {
        let bad = || BillingError::InvalidDateTime(text.to_owned());
        let b = text.as_bytes();
        if b.len() != 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'Z'
        {
            return Err(bad());
        }
        let field = |range: std::ops::Range<usize>| -> Result<u32, BillingError> {
            let s = &text[range];
            if s.bytes().all(|c| c.is_ascii_digit()) {
                s.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let narrow = |v: u32| u8::try_from(v).map_err(|_| bad());
        let year = i32::try_from(field(0..4)?).map_err(|_| bad())?;
        UnixSeconds::from_utc(
            year,
            narrow(field(5..7)?)?,
            narrow(field(8..10)?)?,
            narrow(field(11..13)?)?,
            narrow(field(14..16)?)?,
            narrow(field(17..19)?)?,
        )
        .map_err(|_| bad())
    }

    /// `(year, month, day, hour, minute, second)` in UTC.
    pub fn to_utc(self) -> (i64, u8, u8, u8, u8, u8) {
        let days = self.0.div_euclid(SECONDS_PER_DAY);
        let secs = self.0.rem_euclid(SECONDS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        // All of these are bounded by the arithmetic above (month ≤ 12,
        // day ≤ 31, hour ≤ 23, …), so the narrowing cannot truncate.
        (
            y,
            m as u8,
            d as u8,
            (secs / 3600) as u8,
            (secs % 3600 / 60) as u8,
            (secs % 60) as u8,
        )
    }

    /// ISO 8601 / RFC 3339 in UTC with a `Z`: `2026-11-01T00:00:00Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for UnixSeconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s) = self.to_utc();
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

/// A calendar month in UTC: the unit invoices are issued for. Deserializing
/// checks it like [`BillingPeriod::new`]; `"2026-11".parse()` also works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "UncheckedPeriod")]
pub struct BillingPeriod {
    year: i32,
    month: u8,
}

#[derive(Deserialize)]
struct UncheckedPeriod {
    year: i32,
    month: u8,
}

impl TryFrom<UncheckedPeriod> for BillingPeriod {
    type Error = BillingError;

    fn try_from(p: UncheckedPeriod) -> Result<Self, Self::Error> {
        BillingPeriod::new(p.year, p.month)
    }
}

impl std::str::FromStr for BillingPeriod {
    type Err = BillingError;

    /// `2026-11`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BillingError::InvalidPeriodText(s.to_owned());
        let (year, month) = s.trim().split_once('-').ok_or_else(bad)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if year.len() != 4 || month.len() != 2 || !digits(year) || !digits(month) {
            return Err(bad());
        }
        BillingPeriod::new(
            year.parse().map_err(|_| bad())?,
            month.parse().map_err(|_| bad())?,
        )
    }
}

impl BillingPeriod {
    /// Years 1970..=9999: before the epoch nothing was billed, and four
    /// digits keep the ISO 8601 text unambiguous.
    pub fn new(year: i32, month: u8) -> Result<BillingPeriod, BillingError> {
        if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(BillingError::InvalidPeriod { year, month });
        }
        Ok(BillingPeriod { year, month })
    }

    /// The month an instant falls in.
    pub fn containing(at: UnixSeconds) -> BillingPeriod {
        let (y, m, ..) = at.to_utc();
        BillingPeriod {
            year: y as i32,
            month: m,
        }
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    /// The first second of the month (inclusive).
    pub fn start(self) -> UnixSeconds {
        let days = days_from_civil(i64::from(self.year), u32::from(self.month), 1);
        UnixSeconds(days * SECONDS_PER_DAY)
    }

    /// The first second of the next month (exclusive): a period is the
    /// half-open range `[start, end)`, so consecutive periods share no second.
    pub fn end(self) -> UnixSeconds {
        self.next().start()
    }

    pub fn next(self) -> BillingPeriod {
        if self.month == 12 {
            BillingPeriod {
                year: self.year + 1,
                month: 1,
            }
        } else {
            BillingPeriod {
                month: self.month + 1,
                ..self
            }
        }
    }

    pub fn contains(self, at: UnixSeconds) -> bool {
        self.start() <= at && at < self.end()
    }
}

impl fmt::Display for BillingPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
///
/// The calendar is counted in 400-year eras (146 097 days each, the cycle
/// after which leap years repeat) and, within an era, in years that begin on
/// 1 March, so that the leap day is the last day of its year and the month
/// lengths March..February follow a fixed 153-days-per-5-months pattern.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let march_year = if month <= 2 { year - 1 } else { year };
    let era = march_year.div_euclid(400);
    let year_of_era = march_year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719 468 days separate 0000-03-01 (day 0 of era 0) from 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: `(year, month, day)`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    // Undo the leap-day corrections to find the year within the era.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix times from `date -u -d <date> +%s`.
    const KNOWN: &[(&str, i64)] = &[
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T00:00:00Z", -86_400),
        ("1900-03-01T00:00:00Z", -2_203_891_200),
        ("2000-02-29T00:00:00Z", 951_782_400),
        ("2000-03-01T00:00:00Z", 951_868_800),
        ("2024-02-29T00:00:00Z", 1_709_164_800),
        ("2024-03-01T00:00:00Z", 1_709_251_200),
        ("2026-11-01T00:00:00Z", 1_793_491_200),
        ("2026-11-29T09:04:15Z", 1_795_943_055),
        ("2026-12-01T00:00:00Z", 1_796_083_200),
        ("2027-01-01T00:00:00Z", 1_798_761_600),
        ("2028-02-29T00:00:00Z", 1_835_395_200),
        ("2100-03-01T00:00:00Z", 4_107_542_400),
    ];

    #[test]
    fn known_dates_round_trip() {
        for &(text, secs) in KNOWN {
            assert_eq!(UnixSeconds::parse_rfc3339(text).unwrap().0, secs, "{text}");
            assert_eq!(UnixSeconds(secs).to_rfc3339(), text);
        }
    }

    #[test]
    fn every_day_for_six_centuries_round_trips() {
        for days in -200 * 365..400 * 366 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!((1..=12).contains(&m));
            assert!((1..=u32::from(days_in_month(y as i32, m as u8))).contains(&d));
        }
    }

    #[test]
    fn month_boundaries_including_leap_februaries() {
        let feb_2024 = BillingPeriod::new(2024, 2).unwrap();
        // 29 days: 2024 is a leap year.
        assert_eq!(feb_2024.end().0 - feb_2024.start().0, 29 * 86_400);
        let feb_2100 = BillingPeriod::new(2100, 2).unwrap();
        // 28 days: 2100 is divisible by 100 but not by 400.
        assert_eq!(feb_2100.end().0 - feb_2100.start().0, 28 * 86_400);
        let feb_2000 = BillingPeriod::new(2000, 2).unwrap();
        assert_eq!(feb_2000.end().0 - feb_2000.start().0, 29 * 86_400);
        let dec = BillingPeriod::new(2026, 12).unwrap();
        assert_eq!(dec.start().0, 1_796_083_200);
        assert_eq!(dec.end().0, 1_798_761_600);
        assert_eq!(dec.next(), BillingPeriod::new(2027, 1).unwrap());
        assert_eq!(
            BillingPeriod::containing(UnixSeconds(1_796_083_199)),
            BillingPeriod::new(2026, 11).unwrap()
        );
        assert_eq!(BillingPeriod::containing(UnixSeconds(1_796_083_200)), dec);
        assert_eq!(dec.to_string(), "2026-12");
    }

    #[test]
    fn refuses_dates_that_do_not_exist() {
        for bad in [
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00+08:00",
            "2026-1-01T00:00:00Z",
        ] {
            let err = UnixSeconds::parse_rfc3339(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
        assert!(BillingPeriod::new(2026, 0).is_err());
        assert!(BillingPeriod::new(2026, 13).is_err());
        assert!(BillingPeriod::new(1969, 12).is_err());
        assert_eq!(
            "2026-11".parse::<BillingPeriod>().unwrap(),
            BillingPeriod::new(2026, 11).unwrap()
        );
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "2026-+1"] {
            assert!(bad.parse::<BillingPeriod>().is_err(), "{bad}");
        }
        let err = serde_json::from_str::<BillingPeriod>(r#"{"year":2026,"month":13}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a billing period"), "{err}");
        let p: BillingPeriod = serde_json::from_str(r#"{"year":2026,"month":2}"#).unwrap();
        assert_eq!(p.to_string(), "2026-02");
    }
}
