//! A simulated clock drives the closing of billing periods over 14 months (November 2027 to
//! January 2029: a 29 February and every DST change in Europe/Berlin and America/New_York), for
//! every cadence, calendar-aligned and anchored on the 31st, and checks what was closed.

use super::cycle::{Alignment, BillingPeriod, BillingSchedule, Cadence};
use super::localtime::resolve_local;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::{America, Europe, Tz};

fn local(tz: Tz, y: i32, m: u32, d: u32) -> DateTime<Utc> {
    resolve_local(
        tz,
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap(),
    )
}

/// A clock that moves forward by irregular steps: minutes, hours, and now and then a day-long
/// outage of the closing job. Deterministic (a fixed sequence), ending exactly at `until`.
struct SimClock {
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    tick: u64,
}

impl SimClock {
    const STEPS_MINUTES: [i64; 8] = [1, 17, 59, 60, 7, 180, 44, 26 * 60];

    fn advance(&mut self) -> Option<DateTime<Utc>> {
        if self.now >= self.until {
            return None;
        }
        let step = Self::STEPS_MINUTES[(self.tick % 8) as usize];
        self.tick += 1;
        self.now = (self.now + TimeDelta::minutes(step)).min(self.until);
        Some(self.now)
    }
}

/// Runs the closing job on the simulated clock from `start` to `until`; returns every closed
/// period in the order closed.
fn run(schedule: &BillingSchedule, start: DateTime<Utc>, until: DateTime<Utc>) -> Vec<BillingPeriod> {
    let mut clock = SimClock {
        now: start,
        until,
        tick: 0,
    };
    let mut last_run = start;
    let mut closed: Vec<BillingPeriod> = Vec::new();
    while let Some(now) = clock.advance() {
        let batch = schedule.periods_closed_between(last_run, now).unwrap();
        for p in &batch {
            assert!(p.end <= now && p.end > last_run, "{p} closed at {now}");
        }
        closed.extend(batch);
        // The open period starts where the last closed one ended, and holds `now`.
        let open = schedule.period_containing(now).unwrap();
        assert!(open.contains(now));
        if let Some(last) = closed.last() {
            assert_eq!(open.start, last.end, "open period at {now}");
        }
        assert_eq!(schedule.next_close(now).unwrap(), open.end);
        last_run = now;
    }
    closed
}

struct Expect {
    closes: usize,
    /// (local date a period starts on, its length in hours)
    lengths: Vec<((i32, u32, u32), i64)>,
    /// Local dates some closed period must end on.
    ends_on: Vec<(i32, u32, u32)>,
}

fn check(tz: Tz, cadence: Cadence, alignment: Alignment, anchor: DateTime<Utc>, expect: Expect) {
    let label = format!("{tz} {cadence:?} {alignment:?}");
    let schedule = BillingSchedule::new(cadence, alignment, anchor, tz);
    let until = local(tz, 2029, 1, 1);
    let closed = run(&schedule, anchor, until);

    assert_eq!(closed.len(), expect.closes, "{label}: closes");
    // Tiling: the first starts at the anchor, each ends where the next starts, no gap, no overlap.
    assert_eq!(closed[0].start, anchor, "{label}");
    for pair in closed.windows(2) {
        assert_eq!(pair[0].end, pair[1].start, "{label}: gap or overlap");
        assert!(pair[0].start < pair[0].end, "{label}: empty period");
    }
    let total: i64 = closed.iter().map(BillingPeriod::seconds).sum();
    let last_end = closed.last().unwrap().end;
    assert_eq!(
        total,
        (last_end - anchor).num_seconds(),
        "{label}: lengths add up"
    );
    // The closed periods are exactly the schedule's periods 0..n.
    for (n, p) in closed.iter().enumerate() {
        assert_eq!(*p, schedule.period(n as u64).unwrap(), "{label}: period {n}");
    }
    for ((y, m, d), hours) in expect.lengths {
        let start = local(tz, y, m, d);
        let p = closed
            .iter()
            .find(|p| p.start == start)
            .unwrap_or_else(|| panic!("{label}: no period starts {y}-{m}-{d}"));
        assert_eq!(p.seconds(), hours * 3600, "{label}: period from {y}-{m}-{d}");
    }
    for (y, m, d) in expect.ends_on {
        let end = local(tz, y, m, d);
        assert!(
            closed.iter().any(|p| p.end == end),
            "{label}: no close on {y}-{m}-{d}"
        );
    }
}

/// Spring-forward and fall-back dates in 2028 for each zone, and New York's in 2027.
const BERLIN_SPRING: (i32, u32, u32) = (2028, 3, 26);
const BERLIN_AUTUMN: (i32, u32, u32) = (2028, 10, 29);
const NY_AUTUMN_2027: (i32, u32, u32) = (2027, 11, 7);
const NY_SPRING: (i32, u32, u32) = (2028, 3, 12);
const NY_AUTUMN: (i32, u32, u32) = (2028, 11, 5);

#[test]
fn hourly_periods_are_all_one_hour_and_count_the_dst_hours() {
    for alignment in [Alignment::Calendar, Alignment::Anniversary] {
        // Aligned from 1 Nov 2027; anchored from 31 Oct 2027 (and at a quarter past).
        let (berlin_anchor, ny_anchor, berlin_hours, ny_hours) = match alignment {
            Alignment::Calendar => (
                local(Europe::Berlin, 2027, 11, 1),
                local(America::New_York, 2027, 11, 1),
                10_248,
                10_249,
            ),
            Alignment::Anniversary => (
                local(Europe::Berlin, 2027, 10, 31) + TimeDelta::minutes(15),
                local(America::New_York, 2027, 10, 31) + TimeDelta::minutes(15),
                10_273,
                10_273,
            ),
        };
        for (tz, anchor, hours) in [
            (Europe::Berlin, berlin_anchor, berlin_hours),
            (America::New_York, ny_anchor, ny_hours),
        ] {
            let schedule = BillingSchedule::new(Cadence::Hourly, alignment, anchor, tz);
            let closed = run(&schedule, anchor, local(tz, 2029, 1, 1));
            // Anchored at :15, the last hour before 1 Jan 2029 00:00 is still open then.
            let expected = if alignment == Alignment::Anniversary {
                hours - 1
            } else {
                hours
            };
            assert_eq!(closed.len(), expected, "{tz} {alignment:?}");
            assert!(closed.iter().all(|p| p.seconds() == 3600), "{tz} {alignment:?}");
            assert_eq!(closed[0].start, anchor);
            for pair in closed.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
            }
        }
    }
}

#[test]
fn daily_aligned() {
    for (tz, dst) in [
        (
            Europe::Berlin,
            vec![(BERLIN_SPRING, 23), (BERLIN_AUTUMN, 25), ((2028, 2, 29), 24)],
        ),
        (
            America::New_York,
            vec![(NY_AUTUMN_2027, 25), (NY_SPRING, 23), (NY_AUTUMN, 25)],
        ),
    ] {
        let expect = Expect {
            closes: 427, // 30 + 31 + 366 days
            lengths: dst,
            ends_on: vec![(2028, 2, 29), (2028, 3, 1), (2029, 1, 1)],
        };
        check(
            tz,
            Cadence::Daily,
            Alignment::Calendar,
            local(tz, 2027, 11, 1),
            expect,
        );
    }
}

#[test]
fn daily_anchored_on_the_31st() {
    for (tz, dst) in [
        (Europe::Berlin, vec![(BERLIN_SPRING, 23), (BERLIN_AUTUMN, 25)]),
        (
            America::New_York,
            vec![(NY_AUTUMN_2027, 25), (NY_SPRING, 23), (NY_AUTUMN, 25)],
        ),
    ] {
        let expect = Expect {
            closes: 428,
            lengths: dst,
            ends_on: vec![(2028, 2, 29), (2029, 1, 1)],
        };
        check(
            tz,
            Cadence::Daily,
            Alignment::Anniversary,
            local(tz, 2027, 10, 31),
            expect,
        );
    }
}

#[test]
fn weekly_aligned_on_mondays() {
    for (tz, dst) in [
        (
            Europe::Berlin,
            vec![((2028, 3, 20), 167), ((2028, 10, 23), 169), ((2028, 2, 28), 168)],
        ),
        (
            America::New_York,
            vec![((2027, 11, 1), 169), ((2028, 3, 6), 167), ((2028, 10, 30), 169)],
        ),
    ] {
        // 1 Nov 2027 and 1 Jan 2029 are both Mondays: 427 days = 61 weeks.
        let expect = Expect {
            closes: 61,
            lengths: dst,
            ends_on: vec![(2029, 1, 1)],
        };
        check(
            tz,
            Cadence::Weekly,
            Alignment::Calendar,
            local(tz, 2027, 11, 1),
            expect,
        );
    }
}

#[test]
fn weekly_anchored_on_sunday_the_31st() {
    for (tz, dst) in [
        // The changes happen on Sundays, so the week starting that Sunday takes them.
        (
            Europe::Berlin,
            vec![((2028, 3, 19), 168), (BERLIN_SPRING, 167), (BERLIN_AUTUMN, 169)],
        ),
        (
            America::New_York,
            vec![((2027, 10, 31), 168), (NY_AUTUMN_2027, 169), (NY_SPRING, 167)],
        ),
    ] {
        // 428 days = 61 weeks and a day: the last closes on Sunday 31 Dec 2028.
        let expect = Expect {
            closes: 61,
            lengths: dst,
            ends_on: vec![(2028, 12, 31)],
        };
        check(
            tz,
            Cadence::Weekly,
            Alignment::Anniversary,
            local(tz, 2027, 10, 31),
            expect,
        );
    }
}

#[test]
fn monthly_aligned() {
    for (tz, dst) in [
        (
            Europe::Berlin,
            vec![
                ((2028, 2, 1), 29 * 24),
                ((2028, 3, 1), 31 * 24 - 1),
                ((2028, 10, 1), 31 * 24 + 1),
            ],
        ),
        (
            America::New_York,
            vec![
                ((2027, 11, 1), 30 * 24 + 1),
                ((2028, 3, 1), 31 * 24 - 1),
                ((2028, 11, 1), 30 * 24 + 1),
            ],
        ),
    ] {
        let expect = Expect {
            closes: 14,
            lengths: dst,
            ends_on: vec![(2028, 3, 1), (2029, 1, 1)],
        };
        check(
            tz,
            Cadence::Monthly,
            Alignment::Calendar,
            local(tz, 2027, 11, 1),
            expect,
        );
    }
}

#[test]
fn monthly_anchored_on_the_31st_clamps_and_recovers() {
    for tz in [Europe::Berlin, America::New_York] {
        let expect = Expect {
            closes: 14,
            lengths: vec![
                ((2028, 1, 31), 29 * 24),     // to 29 Feb
                ((2028, 2, 29), 31 * 24 - 1), // back to 31 Mar, through the spring change
                ((2028, 3, 31), 30 * 24),     // to 30 Apr
            ],
            ends_on: vec![
                (2027, 11, 30),
                (2027, 12, 31),
                (2028, 1, 31),
                (2028, 2, 29),
                (2028, 3, 31),
                (2028, 4, 30),
                (2028, 5, 31),
                (2028, 6, 30),
                (2028, 7, 31),
                (2028, 8, 31),
                (2028, 9, 30),
                (2028, 10, 31),
                (2028, 11, 30),
                (2028, 12, 31),
            ],
        };
        check(
            tz,
            Cadence::Monthly,
            Alignment::Anniversary,
            local(tz, 2027, 10, 31),
            expect,
        );
    }
}
