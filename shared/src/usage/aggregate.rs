//! Usage aggregates: the sum of quantities per account x meter x dimension set x time window.
//!
//! Windows are by event time, in UTC, aligned to the granularity (minute, hour, day), so late
//! and out-of-order events land in the window they belong to.

use super::event::{Dimensions, UsageEvent};
use crate::meter::Meter;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The length of an aggregation window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub const ALL: [Granularity; 3] = [Granularity::Minute, Granularity::Hour, Granularity::Day];

    pub const fn as_str(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    pub fn length(self) -> TimeDelta {
        match self {
            Granularity::Minute => TimeDelta::minutes(1),
            Granularity::Hour => TimeDelta::hours(1),
            Granularity::Day => TimeDelta::days(1),
        }
    }

    /// The start of the window holding `t` (UTC).
    pub fn window_start(self, t: DateTime<Utc>) -> DateTime<Utc> {
        // Truncation to a whole minute/hour/day of the Unix epoch cannot fail for valid times.
        t.duration_trunc(self.length()).expect("window truncation")
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Granularity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Granularity::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a granularity; expected minute, hour or day"))
    }
}

/// A short, stable identifier of a dimension set: the first 16 hex digits of the SHA-256 of its
/// canonical JSON (keys sorted). The empty set is `-`.
pub fn dimensions_hash(dims: &Dimensions) -> String {
    if dims.is_empty() {
        return "-".to_string();
    }
    let canonical = serde_json::to_vec(dims).expect("a string map always serializes");
    let digest = Sha256::digest(&canonical);
    hex16(&digest[..8])
}

/// Lower-case hex of 8 bytes (16 digits).
pub fn hex16(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(16);
    for &b in bytes.iter().take(8) {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

/// Formats a window start the way it is stored and sorted: fixed width, UTC, `Z`.
pub fn window_key(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The position of an aggregate within its account and granularity, as stored and sorted:
/// `{window}#{meter}#{dimensions hash}#{provider}`. The provider is part of the key because
/// billing prices and settles usage per provider; the usage API merges providers away.
pub fn aggregate_sort_key(a: &UsageAggregate) -> String {
    format!(
        "{}#{}#{}#{}",
        window_key(a.window_start),
        a.meter,
        dimensions_hash(&a.dimensions),
        a.provider_id
    )
}

/// Identifies one aggregate. Ordered by account, granularity, window, meter, dimension set:
/// the order in which the usage API pages through them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggregateKey {
    pub account_id: String,
    pub granularity: Granularity,
    pub window_start: DateTime<Utc>,
    pub meter: Meter,
    pub dimensions_hash: String,
    pub provider_id: String,
}

/// An aggregate (or a contribution to one): the summed quantity and the number of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageAggregate {
    pub account_id: String,
    /// Whose resources the usage ran on.
    #[serde(default)]
    pub provider_id: String,
    pub granularity: Granularity,
    pub window_start: DateTime<Utc>,
    pub meter: Meter,
    #[serde(default)]
    pub dimensions: Dimensions,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    pub event_count: u64,
}

impl UsageAggregate {
    pub fn key(&self) -> AggregateKey {
        AggregateKey {
            account_id: self.account_id.clone(),
            granularity: self.granularity,
            window_start: self.window_start,
            meter: self.meter,
            dimensions_hash: dimensions_hash(&self.dimensions),
            provider_id: self.provider_id.clone(),
        }
    }

    pub fn window_end(&self) -> DateTime<Utc> {
        self.window_start + self.granularity.length()
    }
}

/// Sums events into aggregates for each granularity. The result does not depend on the order
/// of the events; duplicates must be removed before (see [`distinct_events`]).
pub fn aggregate<'a>(
    events: impl IntoIterator<Item = &'a UsageEvent>,
    granularities: &[Granularity],
) -> BTreeMap<AggregateKey, UsageAggregate> {
    let mut out: BTreeMap<AggregateKey, UsageAggregate> = BTreeMap::new();
    for e in events {
        let hash = dimensions_hash(&e.dimensions);
        for &g in granularities {
            let key = AggregateKey {
                account_id: e.account_id.clone(),
                granularity: g,
                window_start: g.window_start(e.timestamp),
                meter: e.meter,
                dimensions_hash: hash.clone(),
                provider_id: e.provider_id.clone(),
            };
            out.entry(key)
                .and_modify(|a| {
                    a.quantity += e.quantity;
                    a.event_count += 1;
                })
                .or_insert_with(|| UsageAggregate {
                    account_id: e.account_id.clone(),
                    provider_id: e.provider_id.clone(),
                    granularity: g,
                    window_start: g.window_start(e.timestamp),
                    meter: e.meter,
                    dimensions: e.dimensions.clone(),
                    quantity: e.quantity,
                    event_count: 1,
                });
        }
    }
    out
}

/// Keeps the first event of each (account, id), dropping later ones: the idempotency rule.
/// Returns the distinct events and the number dropped.
pub fn distinct_events(events: Vec<UsageEvent>) -> (Vec<UsageEvent>, usize) {
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    let before = events.len();
    let kept: Vec<UsageEvent> = events
        .into_iter()
        .filter(|e| seen.insert((e.account_id.clone(), e.id.clone())))
        .collect();
    let dropped = before - kept.len();
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(id: &str, account: &str, meter: Meter, q: &str, ts: &str, dims: &[(&str, &str)]) -> UsageEvent {
        UsageEvent {
            id: id.into(),
            account_id: account.into(),
            provider_id: "p".into(),
            job_id: "j".into(),
            meter,
            quantity: q.parse().unwrap(),
            timestamp: ts.parse().unwrap(),
            dimensions: dims.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn windows_align_to_the_granularity_in_utc() {
        let t: DateTime<Utc> = "2026-03-29T01:59:59.999Z".parse().unwrap();
        assert_eq!(
            window_key(Granularity::Minute.window_start(t)),
            "2026-03-29T01:59:00Z"
        );
        assert_eq!(
            window_key(Granularity::Hour.window_start(t)),
            "2026-03-29T01:00:00Z"
        );
        assert_eq!(
            window_key(Granularity::Day.window_start(t)),
            "2026-03-29T00:00:00Z"
        );
    }

    #[test]
    fn late_events_land_in_their_own_window() {
        let events = [
            ev("a", "acc", Meter::CpuSeconds, "1", "2026-11-25T10:30:00Z", &[]),
            ev("b", "acc", Meter::CpuSeconds, "2", "2026-11-25T08:10:00Z", &[]),
            ev("c", "acc", Meter::CpuSeconds, "4", "2026-11-25T10:59:59Z", &[]),
        ];
        let aggs = aggregate(&events, &[Granularity::Hour, Granularity::Day]);
        let hourly: Vec<_> = aggs
            .values()
            .filter(|a| a.granularity == Granularity::Hour)
            .map(|a| (window_key(a.window_start), a.quantity.to_string(), a.event_count))
            .collect();
        assert_eq!(
            hourly,
            [
                ("2026-11-25T08:00:00Z".to_string(), "2".to_string(), 1),
                ("2026-11-25T10:00:00Z".to_string(), "5".to_string(), 2)
            ]
        );
        let daily: Vec<_> = aggs
            .values()
            .filter(|a| a.granularity == Granularity::Day)
            .collect();
        assert_eq!(daily.len(), 1);
        assert_eq!(daily[0].quantity, Decimal::from(7));
    }

    #[test]
    fn dimension_sets_are_kept_apart_and_hashed_stably() {
        let events = [
            ev(
                "a",
                "acc",
                Meter::GpuSeconds,
                "1",
                "2026-11-25T10:00:00Z",
                &[("gpu_model", "H100")],
            ),
            ev(
                "b",
                "acc",
                Meter::GpuSeconds,
                "1",
                "2026-11-25T10:00:00Z",
                &[("gpu_model", "A100")],
            ),
            ev("c", "acc", Meter::GpuSeconds, "1", "2026-11-25T10:00:00Z", &[]),
        ];
        assert_eq!(aggregate(&events, &[Granularity::Hour]).len(), 3);
        let d: Dimensions = [
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]
        .into();
        assert_eq!(dimensions_hash(&d), dimensions_hash(&d.clone()));
        assert_eq!(dimensions_hash(&d).len(), 16);
        assert_eq!(dimensions_hash(&Dimensions::new()), "-");
    }

    #[test]
    fn the_first_of_each_id_per_account_is_kept() {
        let events = vec![
            ev("a", "acc1", Meter::CpuSeconds, "1", "2026-11-25T10:00:00Z", &[]),
            ev("a", "acc1", Meter::CpuSeconds, "9", "2026-11-25T10:00:00Z", &[]),
            ev("a", "acc2", Meter::CpuSeconds, "1", "2026-11-25T10:00:00Z", &[]),
        ];
        let (kept, dropped) = distinct_events(events);
        assert_eq!(dropped, 1);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].quantity, Decimal::ONE);
    }

    fn arb_event() -> impl Strategy<Value = UsageEvent> {
        (
            0u8..20,
            0u8..3,
            0usize..7,
            0u64..1_000_000_000_000,
            0u32..13,
            0i64..(3 * 86_400),
            0u8..3,
        )
            .prop_map(|(id, acct, meter, mantissa, scale, secs, region)| {
                let mut dims = Dimensions::new();
                if region > 0 {
                    dims.insert("region".into(), format!("r{region}"));
                }
                UsageEvent {
                    id: format!("e{id}"),
                    account_id: format!("a{acct}"),
                    provider_id: "p".into(),
                    job_id: "j".into(),
                    meter: Meter::ALL[meter],
                    quantity: Decimal::new(mantissa as i64, scale),
                    timestamp: DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap(),
                    dimensions: dims,
                }
            })
    }

    proptest! {
        /// Replaying any events any number of times, in any order, gives the aggregates of the
        /// distinct events. Duplicates of an id carry the same payload, as a redelivery does.
        #[test]
        fn duplicates_and_order_do_not_change_aggregates(
            events in prop::collection::vec(arb_event(), 0..60),
            repeats in prop::collection::vec(0usize..4, 60),
            seed in any::<u64>(),
        ) {
            let (distinct, _) = distinct_events(events.clone());
            let expected = aggregate(&distinct, &[Granularity::Hour, Granularity::Day]);

            // Each distinct event delivered 1 + repeats[i] times, shuffled deterministically.
            let mut delivered: Vec<UsageEvent> = Vec::new();
            for (i, e) in distinct.iter().enumerate() {
                for _ in 0..=repeats[i % repeats.len()] {
                    delivered.push(e.clone());
                }
            }
            let mut state = seed | 1;
            for i in (1..delivered.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                delivered.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let (again, _) = distinct_events(delivered);
            prop_assert_eq!(aggregate(&again, &[Granularity::Hour, Granularity::Day]), expected);
        }

        /// Sums are exact: the total over all windows equals the plain decimal sum.
        #[test]
        fn decimal_sums_are_exact(events in prop::collection::vec(arb_event(), 0..60)) {
            let (distinct, _) = distinct_events(events);
            let total: Decimal = distinct.iter().map(|e| e.quantity).sum();
            for g in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
                let aggs = aggregate(&distinct, &[g]);
                let sum: Decimal = aggs.values().map(|a| a.quantity).sum();
                prop_assert_eq!(sum, total);
                let count: u64 = aggs.values().map(|a| a.event_count).sum();
                prop_assert_eq!(count, distinct.len() as u64);
            }
        }
    }
}
