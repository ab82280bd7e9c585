//! Local wall-clock times to UTC instants, with one deterministic rule for the local times a
//! daylight-saving change skips or repeats.
//!
//! * A local time that exists once maps to that instant.
//! * A local time that exists twice (clocks went back) maps to the **earlier** instant.
//! * A local time that does not exist (clocks went forward over it) maps to the **first valid
//!   instant after it**: the instant the clocks jumped. In Europe/Berlin, 2028-03-26 02:30 does
//!   not exist and maps to 03:00 CEST (01:00 UTC).

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// The UTC instant of a local wall-clock time in `tz`, by the rule in the module docs.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.with_timezone(&Utc).min(b.with_timezone(&Utc)),
        LocalResult::None => end_of_gap(tz, local),
    }
}

/// Seconds east of UTC in effect at a UTC instant.
fn offset_at(tz: Tz, utc: NaiveDateTime) -> i64 {
    i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc())
}

/// The local wall-clock reading at the UTC instant `utc_secs` (Unix seconds).
fn local_at(tz: Tz, utc_secs: i64) -> Option<NaiveDateTime> {
    let utc = DateTime::from_timestamp(utc_secs, 0)?.naive_utc();
    utc.checked_add_signed(TimeDelta::seconds(offset_at(tz, utc)))
}

/// The first instant whose local reading is later than `local`, a time inside a gap.
fn end_of_gap(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    // The offsets a day either side of the gap. The clocks jump at some instant between
    // `local - after` (where the reading is still before `local`) and `local - before`.
    let day = TimeDelta::days(1);
    let before = local.checked_sub_signed(day).map(|t| offset_at(tz, t));
    let after = local.checked_add_signed(day).map(|t| offset_at(tz, t));
    let local_secs = local.and_utc().timestamp();
    if let (Some(before), Some(after)) = (before, after) {
        // Whole seconds: transitions happen on whole seconds.
        let mut lo = local_secs - after; // reading at lo is not later than `local`
        let mut hi = local_secs - before + 1; // reading at hi is later than `local`
        let later = |s: i64| local_at(tz, s).is_some_and(|l| l > local);
        if lo < hi && !later(lo) && later(hi) {
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if later(mid) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            if let Some(t) = DateTime::from_timestamp(hi, 0) {
                return t;
            }
        }
    }
    // Several transitions within a day of each other (no zone in use today does this): take the
    // first whole minute after `local` that exists, still deterministic.
    let mut probe = local;
    for _ in 0..(3 * 24 * 60) {
        probe += TimeDelta::minutes(1);
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(a, b) => return a.with_timezone(&Utc).min(b.with_timezone(&Utc)),
            LocalResult::None => {}
        }
    }
    // Unreachable for any real zone; fall back to reading the time as UTC.
    local.and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn ordinary_times_map_to_their_instant() {
        let t = resolve_local(chrono_tz::Europe::Berlin, local(2028, 1, 15, 0, 0));
        assert_eq!(t, utc("2028-01-14T23:00:00Z"));
    }

    #[test]
    fn skipped_times_map_to_the_instant_the_clocks_jumped() {
        use chrono_tz::{America, Europe, Pacific};
        let berlin = Europe::Berlin;
        assert_eq!(
            resolve_local(berlin, local(2028, 3, 26, 2, 0)),
            utc("2028-03-26T01:00:00Z")
        );
        assert_eq!(
            resolve_local(berlin, local(2028, 3, 26, 2, 30)),
            utc("2028-03-26T01:00:00Z")
        );
        assert_eq!(
            resolve_local(berlin, local(2028, 3, 26, 3, 0)),
            utc("2028-03-26T01:00:00Z")
        );
        let ny = America::New_York;
        assert_eq!(
            resolve_local(ny, local(2028, 3, 12, 2, 30)),
            utc("2028-03-12T07:00:00Z")
        );
        // A skipped midnight: Brazil moved its clocks at 00:00 until 2019.
        let sao_paulo = America::Sao_Paulo;
        assert_eq!(
            resolve_local(sao_paulo, local(2018, 11, 4, 0, 0)),
            utc("2018-11-04T03:00:00Z")
        );
        // A skipped day: Samoa went from 29 Dec 2011 23:59:59 (-10) to 31 Dec 00:00 (+14).
        let apia = Pacific::Apia;
        assert_eq!(
            resolve_local(apia, local(2011, 12, 30, 0, 0)),
            utc("2011-12-30T10:00:00Z")
        );
        assert_eq!(
            resolve_local(apia, local(2011, 12, 30, 13, 45)),
            utc("2011-12-30T10:00:00Z")
        );
    }

    #[test]
    fn repeated_times_map_to_the_earlier_instant() {
        let berlin = chrono_tz::Europe::Berlin;
        assert_eq!(
            resolve_local(berlin, local(2028, 10, 29, 2, 30)),
            utc("2028-10-29T00:30:00Z")
        );
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            resolve_local(ny, local(2028, 11, 5, 1, 30)),
            utc("2028-11-05T05:30:00Z")
        );
    }
}
