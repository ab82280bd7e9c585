//! Usage aggregates: the sum of quantities per account x meter x dimension set x time window.
//!
//! Windows are by event time, in UTC, aligned to the granularity (minute, hour, day), so late
//! and out-of-order events land in the window they belong to.

use super::borrowed::{event_refs, AggregateRef, DimensionSet, EventRef};
use super::event::{Dimensions, UsageEvent};
use crate::domain::meter::Meter;
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
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
    #[allow(clippy::expect_used)] // Cannot fail: a window start is an earlier whole second of a valid timestamp.
    pub fn window_start(self, t: DateTime<Utc>) -> DateTime<Utc> {
        DateTime::from_timestamp(self.window_start_secs(t.timestamp()), 0)
            .expect("a window start is in range")
    }

    /// The length in seconds.
    pub const fn seconds(self) -> i64 {
        match self {
            Granularity::Minute => 60,
            Granularity::Hour => 3600,
            Granularity::Day => 86_400,
        }
    }

    /// The start of the window holding the Unix time `secs` (floored, also before 1970).
    pub const fn window_start_secs(self, secs: i64) -> i64 {
        secs - secs.rem_euclid(self.seconds())
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
#[allow(clippy::expect_used)] // Cannot fail: window starts are whole seconds of valid timestamps; string maps serialize; 8-byte chunks convert.
pub fn dimensions_hash(dims: &Dimensions) -> String {
    if dims.is_empty() {
        return "-".to_string();
    }
    let mut hasher = Sha256::new();
    if dims.iter().any(|(k, v)| needs_escape(k) || needs_escape(v)) {
        hasher.update(serde_json::to_vec(dims).expect("a string map always serializes"));
    } else {
        // The same bytes serde_json writes, without its escaping machinery.
        let mut sep = b'{';
        for (k, v) in dims {
            hasher.update([sep, b'"']);
            hasher.update(k.as_bytes());
            hasher.update(b"\":\"");
            hasher.update(v.as_bytes());
            hasher.update(b"\"");
            sep = b',';
        }
        hasher.update(b"}");
    }
    hex16(&hasher.finalize()[..8])
}

/// Whether JSON writes `s` other than as its bytes between quotes.
fn needs_escape(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
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
    use chrono::{Datelike, Timelike};
    let (year, month, day) = (t.year(), t.month(), t.day());
    // chrono writes other years with a sign or more digits, and a leap second as :60.
    if !(0..=9999).contains(&year) || t.nanosecond() >= 1_000_000_000 {
        return t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    }
    let mut out = String::with_capacity(20);
    let year = year as u32;
    for (n, sep) in [
        (year / 100, ""),
        (year % 100, "-"),
        (month, "-"),
        (day, "T"),
        (t.hour(), ":"),
        (t.minute(), ":"),
        (t.second(), "Z"),
    ] {
        out.push(char::from(b'0' + (n / 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
        out.push_str(sep);
    }
    out
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

/// Identifies one aggregate. Ordered by account, granularity, window, meter, dimension set,
/// provider: the order in which the usage API pages through them.
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
#[serde(deny_unknown_fields)]
pub struct UsageAggregate {
    pub account_id: String,
    /// Whose resources the usage ran on.
    #[serde(default)]
    pub provider_id: String,
    pub granularity: Granularity,
    #[serde(with = "crate::domain::parse::instant")]
    pub window_start: DateTime<Utc>,
    pub meter: Meter,
    #[serde(default)]
    pub dimensions: Dimensions,
    #[serde(with = "crate::domain::parse::decimal")]
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

/// FxHash (as in rustc): a fast hasher for the small in-memory maps of one batch. Their keys
/// are bounded by the batch size (500 events), so a crafted collision cannot cost much.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    #[inline]
    #[allow(clippy::expect_used)] // Cannot fail: chunks_exact(8) yields 8-byte slices.
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Gives each distinct value a small id, in order of first appearance.
struct Interner<'a, T: ?Sized> {
    ids: FxMap<&'a T, u32>,
    values: Vec<&'a T>,
}

impl<'a, T: ?Sized + Eq + Hash> Interner<'a, T> {
    fn new() -> Self {
        Interner {
            ids: FxMap::default(),
            values: Vec::new(),
        }
    }

    fn id(&mut self, v: &'a T) -> (u32, bool) {
        let next = self.values.len() as u32;
        match self.ids.entry(v) {
            Entry::Occupied(o) => (*o.get(), false),
            Entry::Vacant(slot) => {
                slot.insert(next);
                self.values.push(v);
                (next, true)
            }
        }
    }

    /// The rank of each id when the values are sorted.
    fn ranks(&self) -> Vec<u32>
    where
        T: Ord,
    {
        ranks_of(&self.values)
    }
}

/// Sums events into aggregates for each granularity. The result does not depend on the order
/// of the events; duplicates must be removed before (see [`distinct_events`]).
pub fn aggregate<'a>(
    events: impl IntoIterator<Item = &'a UsageEvent>,
    granularities: &[Granularity],
) -> BTreeMap<AggregateKey, UsageAggregate> {
    let events = event_refs(events);
    // In key order already, so the map is built without sorting.
    aggregate_refs(&events, granularities)
        .into_iter()
        .map(|a| {
            let key = AggregateKey {
                account_id: a.account_id.to_owned(),
                granularity: a.granularity,
                window_start: a.window_start,
                meter: a.meter,
                dimensions_hash: a.dimensions.hash.clone(),
                provider_id: a.provider_id.to_owned(),
            };
            (key, a.to_aggregate())
        })
        .collect()
}

/// The values of [`aggregate`], in the same (key) order, without building the keys and the map.
pub fn aggregate_sorted<'a>(
    events: impl IntoIterator<Item = &'a UsageEvent>,
    granularities: &[Granularity],
) -> Vec<UsageAggregate> {
    let events = event_refs(events);
    aggregate_refs(&events, granularities)
        .iter()
        .map(AggregateRef::to_aggregate)
        .collect()
}

/// What [`aggregate_sorted`] gives, borrowing from the events instead of owning each value.
///
/// Accounts, providers and dimension hashes get small ids (each event's set already carries its
/// hash), the sums are kept in a hash map of those ids, and the aggregates are put in key order
/// by sorting small integers.
#[allow(clippy::expect_used)] // Cannot fail: a window start is an earlier whole second of a valid timestamp.
pub fn aggregate_refs<'b>(
    events: &'b [EventRef<'_>],
    granularities: &[Granularity],
) -> Vec<AggregateRef<'b>> {
    struct Cell<'b> {
        quantity: Decimal,
        count: u64,
        dims: &'b DimensionSet,
    }
    let mut accounts: Interner<'b, str> = Interner::new();
    let mut providers: Interner<'b, str> = Interner::new();
    // For each shared dimension set, its hash's id: two sets with the same hash share aggregates.
    let mut set_hash: FxMap<*const DimensionSet, u32> = FxMap::default();
    let mut hash_ids: FxMap<&'b str, u32> = FxMap::default();
    let mut hash_texts: Vec<&'b str> = Vec::new();
    // Each aggregate's key (account, granularity, window, meter, hash, provider ids) -> its
    // index in `cells`.
    type Key = (u32, Granularity, i64, Meter, u32, u32);
    let expected = events.len() * granularities.len();
    let mut index: FxMap<Key, u32> = FxMap::default();
    index.reserve(expected);
    let mut cells: Vec<(Key, Cell<'b>)> = Vec::with_capacity(expected);
    let mut last_set: Option<(*const DimensionSet, u32)> = None;
    for e in events {
        let (account, _) = accounts.id(e.account_id.as_ref());
        let (provider, _) = providers.id(e.provider_id.as_ref());
        let set: &'b DimensionSet = &e.dimensions;
        let ptr: *const DimensionSet = set;
        let hash = match last_set {
            Some((p, h)) if p == ptr => h,
            _ => {
                let h = *set_hash.entry(ptr).or_insert_with(|| {
                    let next = hash_texts.len() as u32;
                    *hash_ids.entry(set.hash.as_str()).or_insert_with(|| {
                        hash_texts.push(set.hash.as_str());
                        next
                    })
                });
                last_set = Some((ptr, h));
                h
            }
        };
        let secs = e.timestamp.timestamp();
        for &g in granularities {
            let key = (account, g, g.window_start_secs(secs), e.meter, hash, provider);
            match index.entry(key) {
                Entry::Occupied(o) => {
                    let c = &mut cells[*o.get() as usize].1;
                    c.quantity += e.quantity;
                    c.count += 1;
                }
                Entry::Vacant(v) => {
                    v.insert(cells.len() as u32);
                    let cell = Cell {
                        quantity: e.quantity,
                        count: 1,
                        dims: set,
                    };
                    cells.push((key, cell));
                }
            }
        }
    }
    drop(index);
    let account_rank = accounts.ranks();
    let hash_rank = ranks_of(&hash_texts);
    let provider_rank = providers.ranks();
    // The order of `AggregateKey`, on small integers.
    let mut order: Vec<((u64, i64, u128), u32)> = cells
        .iter()
        .enumerate()
        .map(|(i, &((a, g, w, m, h, p), _))| {
            let major = (u64::from(account_rank[a as usize]) << 8) | g as u64;
            let minor = ((m as u128) << 64)
                | (u128::from(hash_rank[h as usize]) << 32)
                | u128::from(provider_rank[p as usize]);
            ((major, w, minor), i as u32)
        })
        .collect();
    order.sort_unstable();
    order
        .into_iter()
        .map(|(_, i)| {
            let ((a, g, w, m, _, p), ref c) = cells[i as usize];
            AggregateRef {
                account_id: accounts.values[a as usize],
                provider_id: providers.values[p as usize],
                granularity: g,
                window_start: DateTime::from_timestamp(w, 0).expect("a window start is in range"),
                meter: m,
                dimensions: c.dims,
                quantity: c.quantity,
                event_count: c.count,
            }
        })
        .collect()
}

/// The rank of each element when sorted.
fn ranks_of<T: Ord>(values: &[T]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..values.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| values[a as usize].cmp(&values[b as usize]));
    let mut rank = vec![0; order.len()];
    for (r, id) in order.into_iter().enumerate() {
        rank[id as usize] = r as u32;
    }
    rank
}

/// Keeps the first event of each (account, id), dropping later ones: the idempotency rule.
/// Returns the distinct events and the number dropped.
pub fn distinct_events(events: Vec<UsageEvent>) -> (Vec<UsageEvent>, usize) {
    let before = events.len();
    let keep: Vec<bool> = {
        let mut seen: FxMap<(&str, &str), ()> = FxMap::default();
        seen.reserve(before);
        events
            .iter()
            .map(|e| seen.insert((&e.account_id, &e.id), ()).is_none())
            .collect()
    };
    if keep.iter().all(|&k| k) {
        return (events, 0);
    }
    let kept: Vec<UsageEvent> = events
        .into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
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

    /// The hash and the keys are stored in DynamoDB: they must never change.
    #[test]
    fn stored_hashes_and_keys_are_pinned() {
        let d: Dimensions = [("region", "eu-west"), ("gpu_model", "H100")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(dimensions_hash(&d), "c93d51f5b15a442d");
        // Values that JSON escapes (quote, backslash, control character) and non-ASCII text.
        let odd: Dimensions = [("a", "q\"uo\\te"), ("b", "\u{e9}\u{1}")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(dimensions_hash(&odd), "bdc059d0829e5972");
        let t: DateTime<Utc> = "2026-11-25T10:42:17.5+01:00".parse().unwrap();
        let a = UsageAggregate {
            account_id: "acct".into(),
            provider_id: "prov-7".into(),
            granularity: Granularity::Hour,
            window_start: Granularity::Hour.window_start(t),
            meter: Meter::GpuSeconds,
            dimensions: d,
            quantity: Decimal::ONE,
            event_count: 1,
        };
        assert_eq!(
            aggregate_sort_key(&a),
            "2026-11-25T09:00:00Z#gpu_seconds#c93d51f5b15a442d#prov-7"
        );
        assert_eq!(
            window_key(Granularity::Day.window_start(t)),
            "2026-11-25T00:00:00Z"
        );
        assert_eq!(
            window_key(Granularity::Minute.window_start(t)),
            "2026-11-25T09:42:00Z"
        );
        for t in [
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "2024-02-29T07:08:09Z",
        ] {
            let t: DateTime<Utc> = t.parse().unwrap();
            assert_eq!(window_key(t), t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        let far = DateTime::from_timestamp(300_000_000_000, 0).unwrap();
        assert_eq!(window_key(far), far.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        let before_epoch: DateTime<Utc> = "1969-12-31T23:59:30Z".parse().unwrap();
        assert_eq!(
            window_key(Granularity::Day.window_start(before_epoch)),
            "1969-12-31T00:00:00Z"
        );
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
            0u8..3,
        )
            .prop_map(|(id, acct, meter, mantissa, scale, secs, region, provider)| {
                let mut dims = Dimensions::new();
                if region > 0 {
                    dims.insert("region".into(), format!("r{region}"));
                }
                UsageEvent {
                    id: format!("e{id}"),
                    account_id: format!("a{acct}"),
                    // An account's usage may run on several providers.
                    provider_id: format!("p{provider}"),
                    job_id: "j".into(),
                    meter: Meter::ALL[meter],
                    quantity: Decimal::new(mantissa as i64, scale),
                    timestamp: DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap(),
                    dimensions: dims,
                }
            })
    }

    /// The straightforward definition `aggregate` must agree with: one map entry per key.
    fn reference_aggregate(
        events: &[UsageEvent],
        granularities: &[Granularity],
    ) -> BTreeMap<AggregateKey, UsageAggregate> {
        let mut out: BTreeMap<AggregateKey, UsageAggregate> = BTreeMap::new();
        for e in events {
            for &g in granularities {
                let window_start = chrono::DurationRound::duration_trunc(e.timestamp, g.length()).unwrap();
                let key = AggregateKey {
                    account_id: e.account_id.clone(),
                    granularity: g,
                    window_start,
                    meter: e.meter,
                    dimensions_hash: dimensions_hash(&e.dimensions),
                    provider_id: e.provider_id.clone(),
                };
                let a = out.entry(key).or_insert_with(|| UsageAggregate {
                    account_id: e.account_id.clone(),
                    provider_id: e.provider_id.clone(),
                    granularity: g,
                    window_start,
                    meter: e.meter,
                    dimensions: e.dimensions.clone(),
                    quantity: Decimal::ZERO,
                    event_count: 0,
                });
                a.quantity += e.quantity;
                a.event_count += 1;
            }
        }
        out
    }

    #[test]
    fn aggregate_agrees_with_its_definition_on_generated_usage() {
        let events =
            crate::domain::usage::generator::generate(&crate::domain::usage::generator::GeneratorConfig {
                events: 5000,
                start: "2026-11-01T00:17:23Z".parse().unwrap(),
                ..Default::default()
            });
        for grans in [
            &Granularity::ALL[..],
            &[Granularity::Hour, Granularity::Day],
            &[Granularity::Day],
        ] {
            let got = aggregate(&events, grans);
            assert_eq!(got, reference_aggregate(&events, grans));
            // Keys and values agree, and the map's order is the keys' order.
            assert!(got.iter().all(|(k, a)| *k == a.key()));
            assert_eq!(
                aggregate_sorted(&events, grans),
                got.into_values().collect::<Vec<_>>()
            );
        }
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
            prop_assert_eq!(aggregate(&again, &[Granularity::Hour, Granularity::Day]), expected.clone());
            prop_assert_eq!(reference_aggregate(&distinct, &[Granularity::Hour, Granularity::Day]), expected);
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
