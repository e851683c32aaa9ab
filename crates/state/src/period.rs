//! Usage-plan quotas: calendar periods in UTC.

use time::{Date, Duration, OffsetDateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    Day,
    /// Weeks start on Monday 00:00 UTC.
    Week,
    Month,
}

impl QuotaPeriod {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "DAY" => Some(Self::Day),
            "WEEK" => Some(Self::Week),
            "MONTH" => Some(Self::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "DAY",
            Self::Week => "WEEK",
            Self::Month => "MONTH",
        }
    }
}

/// `limit` requests per `period`; `offset` requests are subtracted from the limit in the plan's
/// first period (AWS's API reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub period: QuotaPeriod,
    pub offset: u64,
}

/// The UTC date of an epoch-milliseconds instant.
pub fn day_of(epoch_ms: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(epoch_ms.div_euclid(1000))
        .map(|t| t.date())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH.date())
}

/// `YYYY-MM-DD`.
pub fn day_string(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

pub fn parse_day(s: &str) -> Option<Date> {
    let mut it = s.split('-');
    let y: i32 = it.next()?.parse().ok()?;
    let m: u8 = it.next()?.parse().ok()?;
    let d: u8 = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()
}

/// The first day of the period containing `day`, and the first day after it.
pub fn period_bounds(period: QuotaPeriod, day: Date) -> (Date, Date) {
    match period {
        QuotaPeriod::Day => (day, day.next_day().unwrap_or(day)),
        QuotaPeriod::Week => {
            let back = i64::from(day.weekday().number_days_from_monday());
            let start = day - Duration::days(back);
            (start, start + Duration::days(7))
        }
        QuotaPeriod::Month => {
            let start = day.replace_day(1).unwrap_or(day);
            let (y, m) = if day.month() == time::Month::December {
                (day.year() + 1, time::Month::January)
            } else {
                (day.year(), day.month().next())
            };
            let end = Date::from_calendar_date(y, m, 1).unwrap_or(start);
            (start, end)
        }
    }
}

impl Quota {
    /// The limit in force for the period containing `now_ms`.
    pub fn effective_limit(&self, plan_created_ms: i64, now_ms: i64) -> u64 {
        let (now_start, _) = period_bounds(self.period, day_of(now_ms));
        let (first_start, _) = period_bounds(self.period, day_of(plan_created_ms));
        if now_start == first_start {
            self.limit.saturating_sub(self.offset)
        } else {
            self.limit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let d = parse_day("2024-02-29").unwrap();
        assert_eq!(
            period_bounds(QuotaPeriod::Month, d),
            (
                parse_day("2024-02-01").unwrap(),
                parse_day("2024-03-01").unwrap()
            )
        );
        // 2024-02-29 is a Thursday.
        assert_eq!(
            period_bounds(QuotaPeriod::Week, d),
            (
                parse_day("2024-02-26").unwrap(),
                parse_day("2024-03-04").unwrap()
            )
        );
        let d = parse_day("2024-12-31").unwrap();
        assert_eq!(
            period_bounds(QuotaPeriod::Month, d).1,
            parse_day("2025-01-01").unwrap()
        );
        assert_eq!(day_string(d), "2024-12-31");
        assert!(parse_day("2024-13-01").is_none());
    }

    #[test]
    fn offset_applies_to_first_period_only() {
        let q = Quota {
            limit: 10,
            period: QuotaPeriod::Day,
            offset: 3,
        };
        let day = 86_400_000;
        assert_eq!(q.effective_limit(5 * day, 5 * day + 10), 7);
        assert_eq!(q.effective_limit(5 * day, 6 * day + 10), 10);
    }
}
