//! Billing cycles: when periods start and end for a subscription's schedule. See
//! `docs/billing-cycles.md`.
//!
//! Every period boundary is computed directly from the anchor (boundary `n` is "anchor plus `n`
//! units", resolved in the account's timezone), never by stepping from the previous boundary, so
//! a clamped month end (31 Jan -> 29 Feb) does not drift (-> 31 Mar, not 29 Mar). Local times are
//! turned into instants by [`resolve_local`]: a skipped local time maps to the instant the clocks
//! jumped, a repeated one to the earlier instant. Periods are half-open and tile time exactly:
//! each one ends where the next starts.

use super::localtime::resolve_local;
use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How often a subscription is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    Hourly,
    Daily,
    Weekly,
    Monthly,
}

impl Cadence {
    pub const ALL: [Cadence; 4] = [Cadence::Hourly, Cadence::Daily, Cadence::Weekly, Cadence::Monthly];
}

/// Where period boundaries fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alignment {
    /// On calendar boundaries in the account's timezone: the top of the local hour, local
    /// midnight, Monday 00:00 (ISO weeks), the 1st of the month at 00:00. The first period runs
    /// from the anchor to the first boundary after it (a short "stub" period, prorated by pricing).
    Calendar,
    /// On the anchor's own wall-clock position, repeated: every hour at the anchor's minute and
    /// second; every day / week (same weekday) at the anchor's local time of day; every month on
    /// the anchor's day of month (clamped to shorter months) at the anchor's local time of day.
    Anniversary,
}

/// A half-open interval of time `[start, end)` billed together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BillingPeriod {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl BillingPeriod {
    /// Elapsed length in seconds (a daily period on a spring-forward day is 82 800).
    pub fn seconds(&self) -> i64 {
        (self.end - self.start).num_seconds()
    }

    /// Elapsed length.
    pub fn duration(&self) -> TimeDelta {
        self.end - self.start
    }

    /// Whether `t` is inside the period (start included, end excluded).
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

impl fmt::Display for BillingPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start.to_rfc3339(), self.end.to_rfc3339())
    }
}

/// Why a period could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CycleError {
    /// The schedule has no period before its anchor (the subscription had not started).
    #[error("{at} is before the schedule's anchor {anchor}")]
    BeforeAnchor {
        at: DateTime<Utc>,
        anchor: DateTime<Utc>,
    },
    /// Period `index` falls outside the dates the calendar can represent.
    #[error("billing period {index} is outside the representable date range")]
    OutOfRange { index: u64 },
}

/// A subscription's billing schedule: cadence, alignment, anchor and the account's timezone.
///
/// The anchor is an instant (when the subscription started, or the chosen billing anchor); its
/// local reading in `timezone` gives the day of month, weekday and time of day that anniversary
/// periods repeat. Period 0 always starts exactly at the anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingSchedule {
    pub cadence: Cadence,
    pub alignment: Alignment,
    pub anchor: DateTime<Utc>,
    /// IANA name on the wire, e.g. `"Europe/Berlin"`.
    #[serde(with = "tz_name")]
    pub timezone: Tz,
}

impl BillingSchedule {
    pub fn new(cadence: Cadence, alignment: Alignment, anchor: DateTime<Utc>, timezone: Tz) -> Self {
        BillingSchedule {
            cadence,
            alignment,
            anchor,
            timezone,
        }
    }

    /// The anchor's wall-clock reading in the account's timezone.
    fn local_anchor(&self) -> NaiveDateTime {
        self.anchor.with_timezone(&self.timezone).naive_local()
    }

    /// The start of period `n` (equivalently the end of period `n - 1`). Boundary 0 is the anchor.
    pub fn boundary(&self, n: u64) -> Result<DateTime<Utc>, CycleError> {
        if n == 0 {
            return Ok(self.anchor);
        }
        let out_of_range = || CycleError::OutOfRange { index: n };
        let local = self.local_anchor();
        let tz = self.timezone;
        let midnight = NaiveTime::MIN;
        let at = |date: Option<NaiveDate>, time: NaiveTime| {
            date.map(|d| resolve_local(tz, d.and_time(time)))
                .ok_or_else(out_of_range)
        };
        match (self.cadence, self.alignment) {
            (Cadence::Hourly, alignment) => {
                // Elapsed hours from an origin: hours are not affected by daylight saving (the
                // repeated hour is billed twice, the skipped one not at all).
                let origin = match alignment {
                    Alignment::Anniversary => self.anchor,
                    Alignment::Calendar => {
                        // The top of the local hour holding the anchor.
                        let into_hour = TimeDelta::seconds(i64::from(local.minute() * 60 + local.second()))
                            + TimeDelta::nanoseconds(i64::from(local.nanosecond()));
                        self.anchor - into_hour
                    }
                };
                let hours = i64::try_from(n)
                    .ok()
                    .and_then(TimeDelta::try_hours)
                    .ok_or_else(out_of_range)?;
                origin.checked_add_signed(hours).ok_or_else(out_of_range)
            }
            (Cadence::Daily, Alignment::Calendar) => at(add_days(local.date(), n), midnight),
            (Cadence::Daily, Alignment::Anniversary) => at(add_days(local.date(), n), local.time()),
            (Cadence::Weekly, Alignment::Calendar) => {
                let monday = local.date().week(chrono::Weekday::Mon).first_day();
                at(n.checked_mul(7).and_then(|d| add_days(monday, d)), midnight)
            }
            (Cadence::Weekly, Alignment::Anniversary) => at(
                n.checked_mul(7).and_then(|d| add_days(local.date(), d)),
                local.time(),
            ),
            (Cadence::Monthly, Alignment::Calendar) => {
                at(add_months_clamped(local.date().with_day(1), n, 1), midnight)
            }
            (Cadence::Monthly, Alignment::Anniversary) => {
                let date = local.date();
                at(add_months_clamped(Some(date), n, date.day()), local.time())
            }
        }
    }

    /// Period `n`: `[boundary(n), boundary(n + 1))`.
    pub fn period(&self, n: u64) -> Result<BillingPeriod, CycleError> {
        let next = n.checked_add(1).ok_or(CycleError::OutOfRange { index: n })?;
        Ok(BillingPeriod {
            start: self.boundary(n)?,
            end: self.boundary(next)?,
        })
    }

    /// The index of the period holding `t`.
    pub fn period_index(&self, t: DateTime<Utc>) -> Result<u64, CycleError> {
        if t < self.anchor {
            return Err(CycleError::BeforeAnchor {
                at: t,
                anchor: self.anchor,
            });
        }
        // A close estimate from the calendar, then corrected against the exact boundaries.
        let mut n = self.estimate_index(t);
        while n > 0 && self.boundary(n)? > t {
            n -= 1;
        }
        while self.boundary(n + 1)? <= t {
            n += 1;
        }
        Ok(n)
    }

    fn estimate_index(&self, t: DateTime<Utc>) -> u64 {
        let a = self.local_anchor();
        let b = t.with_timezone(&self.timezone).naive_local();
        let days = (b.date() - a.date()).num_days();
        let estimate = match self.cadence {
            Cadence::Hourly => (t - self.anchor).num_hours(),
            Cadence::Daily => days,
            Cadence::Weekly => days / 7,
            Cadence::Monthly => {
                let months = |d: NaiveDateTime| i64::from(d.year()) * 12 + i64::from(d.month0());
                months(b) - months(a)
            }
        };
        u64::try_from(estimate).unwrap_or(0)
    }

    /// The period holding `t`.
    pub fn period_containing(&self, t: DateTime<Utc>) -> Result<BillingPeriod, CycleError> {
        self.period(self.period_index(t)?)
    }

    /// The period after the one holding `t`.
    pub fn next_period(&self, t: DateTime<Utc>) -> Result<BillingPeriod, CycleError> {
        let n = self.period_index(t)?;
        self.period(n.checked_add(1).ok_or(CycleError::OutOfRange { index: n })?)
    }

    /// When the period holding `t` closes (its end), as UTC.
    pub fn next_close(&self, t: DateTime<Utc>) -> Result<DateTime<Utc>, CycleError> {
        Ok(self.period_containing(t)?.end)
    }

    /// Periods in order, from period `first` on.
    pub fn periods_from(&self, first: u64) -> Periods<'_> {
        Periods {
            schedule: self,
            next: Some(first),
        }
    }

    /// The periods that closed in `(after, up_to]`, oldest first: what a closing run at `up_to`
    /// must close when the previous run saw everything up to `after`. A run that fell behind
    /// catches up with every missed period; running twice with the same bounds gives the same
    /// list, and consecutive runs `(a, b]`, `(b, c]` never repeat or skip a period.
    pub fn periods_closed_between(
        &self,
        after: DateTime<Utc>,
        up_to: DateTime<Utc>,
    ) -> Result<Vec<BillingPeriod>, CycleError> {
        if up_to <= after || up_to <= self.anchor {
            return Ok(Vec::new());
        }
        // The first period that may end after `after` is the one holding it.
        let first = if after < self.anchor {
            0
        } else {
            self.period_index(after)?
        };
        let mut closed = Vec::new();
        for period in self.periods_from(first) {
            let period = period?;
            if period.end > up_to {
                break;
            }
            if period.end > after {
                closed.push(period);
            }
        }
        Ok(closed)
    }
}

/// Iterator over consecutive periods of a schedule; see [`BillingSchedule::periods_from`].
#[derive(Debug, Clone)]
pub struct Periods<'a> {
    schedule: &'a BillingSchedule,
    next: Option<u64>,
}

impl Iterator for Periods<'_> {
    type Item = Result<BillingPeriod, CycleError>;

    fn next(&mut self) -> Option<Self::Item> {
        let n = self.next?;
        let period = self.schedule.period(n);
        self.next = if period.is_ok() { n.checked_add(1) } else { None };
        Some(period)
    }
}

fn add_days(date: NaiveDate, days: u64) -> Option<NaiveDate> {
    date.checked_add_days(Days::new(days))
}

/// `date` plus `months` months, on `day` or the last day of that month if it is shorter.
fn add_months_clamped(date: Option<NaiveDate>, months: u64, day: u32) -> Option<NaiveDate> {
    let date = date?;
    let total = i64::from(date.year())
        .checked_mul(12)?
        .checked_add(i64::from(date.month0()))?
        .checked_add(i64::try_from(months).ok()?)?;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = u32::try_from(total.rem_euclid(12)).ok()? + 1;
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    first.with_day(day.min(days_in_month(first)?))
}

fn days_in_month(first: NaiveDate) -> Option<u32> {
    let next = first.checked_add_months(chrono::Months::new(1))?;
    u32::try_from((next - first).num_days()).ok()
}

/// Serializes a timezone as its IANA name.
pub(crate) mod tz_name {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(d)?;
        name.parse::<Tz>()
            .map_err(|_| serde::de::Error::custom(format!("unknown IANA timezone `{name}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Asia, Europe, UTC};

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn local(tz: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        let naive = NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap();
        resolve_local(tz, naive)
    }

    fn schedule(cadence: Cadence, alignment: Alignment, anchor: DateTime<Utc>, tz: Tz) -> BillingSchedule {
        BillingSchedule::new(cadence, alignment, anchor, tz)
    }

    #[test]
    fn month_ends_clamp_and_recover_from_the_anchor() {
        let s = schedule(
            Cadence::Monthly,
            Alignment::Anniversary,
            utc("2028-01-31T10:00:00Z"),
            UTC,
        );
        let starts: Vec<_> = (0..5).map(|n| s.boundary(n).unwrap()).collect();
        assert_eq!(
            starts,
            [
                utc("2028-01-31T10:00:00Z"),
                utc("2028-02-29T10:00:00Z"),
                utc("2028-03-31T10:00:00Z"),
                utc("2028-04-30T10:00:00Z"),
                utc("2028-05-31T10:00:00Z"),
            ]
        );
        // Not a leap year: 28 Feb, and still back to the 31st.
        let s = schedule(
            Cadence::Monthly,
            Alignment::Anniversary,
            utc("2027-01-31T00:00:00Z"),
            UTC,
        );
        assert_eq!(s.boundary(1).unwrap(), utc("2027-02-28T00:00:00Z"));
        assert_eq!(s.boundary(2).unwrap(), utc("2027-03-31T00:00:00Z"));
        // Far from the anchor too: 1 200 months later is still the 31st where it exists.
        assert_eq!(s.boundary(1200).unwrap(), utc("2127-01-31T00:00:00Z"));
        assert_eq!(s.boundary(1201).unwrap(), utc("2127-02-28T00:00:00Z"));
    }

    #[test]
    fn daily_periods_on_dst_days_are_23_and_25_hours() {
        for (tz, spring, autumn) in [
            (Europe::Berlin, (2028, 3, 26), (2028, 10, 29)),
            (America::New_York, (2028, 3, 12), (2028, 11, 5)),
        ] {
            let s = schedule(
                Cadence::Daily,
                Alignment::Calendar,
                local(tz, 2028, 1, 1, 0, 0),
                tz,
            );
            let p = s
                .period_containing(local(tz, spring.0, spring.1, spring.2, 12, 0))
                .unwrap();
            assert_eq!(p.start, local(tz, spring.0, spring.1, spring.2, 0, 0));
            assert_eq!(p.seconds(), 23 * 3600, "{tz} spring");
            let p = s
                .period_containing(local(tz, autumn.0, autumn.1, autumn.2, 12, 0))
                .unwrap();
            assert_eq!(p.seconds(), 25 * 3600, "{tz} autumn");
            let p = s.period_containing(local(tz, 2028, 7, 1, 12, 0)).unwrap();
            assert_eq!(p.seconds(), 24 * 3600, "{tz} summer");
        }
    }

    #[test]
    fn a_skipped_local_midnight_starts_the_day_when_the_clocks_jump() {
        // Brazil moved its clocks at midnight: 2018-11-04 00:00 did not exist in São Paulo.
        let tz = America::Sao_Paulo;
        let s = schedule(
            Cadence::Daily,
            Alignment::Calendar,
            utc("2018-11-01T03:00:00Z"),
            tz,
        );
        let nov3 = s.period_containing(utc("2018-11-03T15:00:00Z")).unwrap();
        let nov4 = s.period_containing(utc("2018-11-04T15:00:00Z")).unwrap();
        assert_eq!(nov3.end, utc("2018-11-04T03:00:00Z")); // 01:00 -02, the first valid instant
        assert_eq!(nov3.seconds(), 24 * 3600);
        assert_eq!(nov4.start, nov3.end);
        assert_eq!(nov4.seconds(), 23 * 3600);
    }

    #[test]
    fn anniversary_times_in_a_gap_or_overlap_follow_the_rule() {
        let tz = Europe::Berlin;
        // Daily at 02:30: that time does not exist on 26 Mar 2028 and exists twice on 29 Oct.
        let s = schedule(
            Cadence::Daily,
            Alignment::Anniversary,
            local(tz, 2028, 3, 1, 2, 30),
            tz,
        );
        let spring = s.period_containing(utc("2028-03-26T12:00:00Z")).unwrap();
        assert_eq!(spring.start, utc("2028-03-26T01:00:00Z")); // 03:00 CEST
        assert_eq!(spring.end, utc("2028-03-27T00:30:00Z")); // 02:30 CEST
        let before = s.period_containing(utc("2028-03-25T12:00:00Z")).unwrap();
        // The hour lost is shared: 02:30 CET -> 03:00 CEST, then 03:00 CEST -> 02:30 CEST.
        assert_eq!(before.seconds(), 23 * 3600 + 1800);
        assert_eq!(spring.seconds(), 23 * 3600 + 1800);
        let autumn = s.period_containing(utc("2028-10-29T12:00:00Z")).unwrap();
        assert_eq!(autumn.start, utc("2028-10-29T00:30:00Z")); // the earlier 02:30 (CEST)
        assert_eq!(autumn.seconds(), 25 * 3600);
    }

    #[test]
    fn calendar_alignment_starts_with_a_stub_from_the_anchor() {
        let tz = Europe::Berlin;
        let anchor = utc("2028-02-10T09:15:00Z");
        let s = schedule(Cadence::Monthly, Alignment::Calendar, anchor, tz);
        let first = s.period(0).unwrap();
        assert_eq!(
            first,
            BillingPeriod {
                start: anchor,
                end: local(tz, 2028, 3, 1, 0, 0)
            }
        );
        let march = s.period(1).unwrap();
        assert_eq!(march.end, local(tz, 2028, 4, 1, 0, 0));
        assert_eq!(march.seconds(), (31 * 24 - 1) * 3600);
        // Weeks start on Monday at local midnight.
        let s = schedule(Cadence::Weekly, Alignment::Calendar, anchor, tz); // a Thursday
        assert_eq!(s.period(0).unwrap().end, local(tz, 2028, 2, 14, 0, 0));
        let dst_week = s.period_containing(local(tz, 2028, 3, 26, 12, 0)).unwrap();
        assert_eq!(dst_week.start, local(tz, 2028, 3, 20, 0, 0));
        assert_eq!(dst_week.seconds(), (7 * 24 - 1) * 3600);
    }

    #[test]
    fn hourly_calendar_periods_start_at_the_top_of_the_local_hour() {
        // Kathmandu is UTC+05:45, so local hours start at :15 UTC.
        let tz = Asia::Kathmandu;
        let s = schedule(
            Cadence::Hourly,
            Alignment::Calendar,
            utc("2028-01-01T10:40:12Z"),
            tz,
        );
        assert_eq!(s.period(0).unwrap().end, utc("2028-01-01T11:15:00Z"));
        assert_eq!(
            s.next_close(utc("2028-05-05T05:15:00Z")).unwrap(),
            utc("2028-05-05T06:15:00Z")
        );
        let anniversary = schedule(
            Cadence::Hourly,
            Alignment::Anniversary,
            utc("2028-01-01T10:40:12Z"),
            tz,
        );
        assert_eq!(
            anniversary.next_close(utc("2028-05-05T05:15:00Z")).unwrap(),
            utc("2028-05-05T05:40:12Z")
        );
    }

    #[test]
    fn a_boundary_instant_belongs_to_the_period_it_starts() {
        let s = schedule(
            Cadence::Daily,
            Alignment::Calendar,
            utc("2028-01-01T00:00:00Z"),
            UTC,
        );
        let t = utc("2028-01-05T00:00:00Z");
        assert_eq!(s.period_containing(t).unwrap().start, t);
        assert_eq!(s.period_index(t).unwrap(), 4);
        let before = t - TimeDelta::nanoseconds(1);
        assert_eq!(s.period_containing(before).unwrap().end, t);
        assert_eq!(s.next_period(before).unwrap().start, t);
        assert_eq!(s.next_close(before).unwrap(), t);
    }

    #[test]
    fn there_is_no_period_before_the_anchor() {
        let anchor = utc("2028-01-01T00:00:00Z");
        let s = schedule(Cadence::Daily, Alignment::Calendar, anchor, UTC);
        let at = utc("2027-12-31T23:59:59Z");
        assert_eq!(
            s.period_containing(at),
            Err(CycleError::BeforeAnchor { at, anchor })
        );
        assert_eq!(s.periods_closed_between(at - TimeDelta::days(3), at), Ok(vec![]));
    }

    #[test]
    fn far_periods_are_an_error_not_a_panic() {
        for cadence in Cadence::ALL {
            for alignment in [Alignment::Calendar, Alignment::Anniversary] {
                let s = schedule(cadence, alignment, utc("2028-01-01T00:00:00Z"), Europe::Berlin);
                assert_eq!(
                    s.period(u64::MAX),
                    Err(CycleError::OutOfRange { index: u64::MAX })
                );
                assert!(matches!(
                    s.period(u64::MAX / 2),
                    Err(CycleError::OutOfRange { .. })
                ));
            }
        }
    }

    #[test]
    fn a_late_closing_run_catches_up_without_repeats() {
        let s = schedule(
            Cadence::Daily,
            Alignment::Calendar,
            utc("2028-01-01T00:00:00Z"),
            UTC,
        );
        let a = utc("2028-01-01T06:00:00Z");
        let b = utc("2028-01-04T00:00:00Z");
        let c = utc("2028-01-04T07:00:00Z");
        let first = s.periods_closed_between(a, b).unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(first[2].end, b);
        assert_eq!(s.periods_closed_between(b, c).unwrap(), vec![]);
        assert_eq!(s.periods_closed_between(a, b).unwrap(), first);
        // From before the anchor, period 0 is included.
        assert_eq!(
            s.periods_closed_between(utc("2027-01-01T00:00:00Z"), b)
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn schedules_serialize_with_the_iana_name() {
        let s = schedule(
            Cadence::Monthly,
            Alignment::Anniversary,
            utc("2028-01-31T10:00:00Z"),
            Europe::Berlin,
        );
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"cadence":"monthly","alignment":"anniversary","anchor":"2028-01-31T10:00:00Z","timezone":"Europe/Berlin"}"#
        );
        assert_eq!(serde_json::from_str::<BillingSchedule>(&json).unwrap(), s);
        let bad = json.replace("Europe/Berlin", "Europe/Atlantis");
        let err = serde_json::from_str::<BillingSchedule>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown IANA timezone `Europe/Atlantis`"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn any_schedule_tiles_time_and_finds_the_period_of_any_instant(
            anchor_secs in 0i64..4_102_444_800, // 1970 .. 2100
            offset_secs in 0i64..(3 * 366 * 86_400),
            zone in 0usize..8,
            cadence in 0usize..4,
            anniversary in proptest::bool::ANY,
        ) {
            let zones = [
                UTC,
                Europe::Berlin,
                America::New_York,
                America::Sao_Paulo,
                Asia::Kathmandu,
                chrono_tz::Australia::Lord_Howe,
                chrono_tz::Pacific::Apia,
                chrono_tz::Pacific::Chatham,
            ];
            let alignment = if anniversary { Alignment::Anniversary } else { Alignment::Calendar };
            let anchor = DateTime::from_timestamp(anchor_secs, 0).unwrap();
            let s = schedule(Cadence::ALL[cadence], alignment, anchor, zones[zone]);
            let t = anchor + TimeDelta::seconds(offset_secs);
            let n = s.period_index(t).unwrap();
            let p = s.period(n).unwrap();
            proptest::prop_assert!(p.contains(t), "{p} does not hold {t}");
            proptest::prop_assert_eq!(s.period_containing(t).unwrap(), p);
            proptest::prop_assert_eq!(s.next_period(t).unwrap().start, p.end);
            // Neighbouring periods share their boundary and are never empty.
            let next = s.period(n + 1).unwrap();
            proptest::prop_assert_eq!(next.start, p.end);
            proptest::prop_assert!(p.start < p.end && next.start < next.end);
            if n > 0 {
                proptest::prop_assert_eq!(s.period(n - 1).unwrap().end, p.start);
            }
        }
    }
}
