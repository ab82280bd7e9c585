//! The ingestion hot path's types: events that borrow their strings from the message body and
//! share their dimension set, and aggregates that borrow from those events. Building and freeing
//! owned events and aggregates per event was about half the cost of ingestion (BENCHMARKS.md).
//!
//! [`UsageEvent`] and [`UsageAggregate`] stay the owned forms (what is read back and what the
//! API returns); each borrowed type converts to its owned form and the conversions are tested to
//! agree with the owned code paths.

use super::aggregate::{dimensions_hash, window_key, FxMap, Granularity, UsageAggregate};
use super::event::{Dimensions, UsageEvent};
use crate::domain::meter::Meter;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::borrow::Cow;
use std::sync::Arc;

/// A dimension set and its stored hash ([`dimensions_hash`]), computed once per distinct set.
#[derive(Debug, PartialEq, Eq)]
pub struct DimensionSet {
    pub dimensions: Dimensions,
    pub hash: String,
}

impl DimensionSet {
    pub fn new(dimensions: Dimensions) -> DimensionSet {
        let hash = dimensions_hash(&dimensions);
        DimensionSet { dimensions, hash }
    }
}

/// A validated usage event whose strings are borrowed from the body when they can be (the
/// one-pass decoder) and owned otherwise (the general decoder unescapes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub id: Cow<'a, str>,
    pub account_id: Cow<'a, str>,
    pub provider_id: Cow<'a, str>,
    pub job_id: Cow<'a, str>,
    pub meter: Meter,
    pub quantity: Decimal,
    pub timestamp: DateTime<Utc>,
    /// Shared by the events of a body that carry the same set.
    pub dimensions: Arc<DimensionSet>,
}

impl EventRef<'_> {
    /// The owned event.
    pub fn to_event(&self) -> UsageEvent {
        UsageEvent {
            id: self.id.to_string(),
            account_id: self.account_id.to_string(),
            provider_id: self.provider_id.to_string(),
            job_id: self.job_id.to_string(),
            meter: self.meter,
            quantity: self.quantity,
            timestamp: self.timestamp,
            dimensions: self.dimensions.dimensions.clone(),
        }
    }
}

impl EventRef<'static> {
    /// An owned event as a (self-contained) event of the hot path.
    pub fn from_event(e: UsageEvent, sets: &mut DimensionSets<'_>) -> EventRef<'static> {
        let dimensions = sets.of_map(e.dimensions);
        EventRef {
            id: Cow::Owned(e.id),
            account_id: Cow::Owned(e.account_id),
            provider_id: Cow::Owned(e.provider_id),
            job_id: Cow::Owned(e.job_id),
            meter: e.meter,
            quantity: e.quantity,
            timestamp: e.timestamp,
            dimensions,
        }
    }
}

/// Borrowed views of owned events (their dimension sets are copied once per distinct set).
pub fn event_refs<'a>(events: impl IntoIterator<Item = &'a UsageEvent>) -> Vec<EventRef<'a>> {
    let mut sets = DimensionSets::new();
    events
        .into_iter()
        .map(|e| EventRef {
            id: Cow::Borrowed(&e.id),
            account_id: Cow::Borrowed(&e.account_id),
            provider_id: Cow::Borrowed(&e.provider_id),
            job_id: Cow::Borrowed(&e.job_id),
            meter: e.meter,
            quantity: e.quantity,
            timestamp: e.timestamp,
            dimensions: sets.of_pairs(
                &e.dimensions
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            ),
        })
        .collect()
}

/// (name, value) pairs borrowed from a body, sorted by name.
type Pairs<'a> = Box<[(&'a str, &'a str)]>;

/// Gives equal dimension sets one shared [`DimensionSet`] (and so one hash computation).
pub struct DimensionSets<'a> {
    sets: FxMap<Pairs<'a>, Arc<DimensionSet>>,
    owned: FxMap<Dimensions, Arc<DimensionSet>>,
}

impl Default for DimensionSets<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> DimensionSets<'a> {
    pub fn new() -> Self {
        DimensionSets {
            sets: FxMap::default(),
            owned: FxMap::default(),
        }
    }

    /// The set of these (name, value) pairs, which must be sorted by name without repeats.
    pub fn of_pairs(&mut self, pairs: &[(&'a str, &'a str)]) -> Arc<DimensionSet> {
        debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
        if let Some(set) = self.sets.get(pairs) {
            return set.clone();
        }
        let dims: Dimensions = pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect();
        let set = Arc::new(DimensionSet::new(dims));
        self.sets.insert(pairs.into(), set.clone());
        set
    }

    /// The set of an owned map.
    pub fn of_map(&mut self, dims: Dimensions) -> Arc<DimensionSet> {
        self.owned
            .entry(dims)
            .or_insert_with_key(|d| Arc::new(DimensionSet::new(d.clone())))
            .clone()
    }
}

/// Keeps the first event of each (account, id), as [`super::distinct_events`] does.
pub fn distinct_event_refs(events: Vec<EventRef<'_>>) -> (Vec<EventRef<'_>>, usize) {
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
    let kept: Vec<EventRef<'_>> = events
        .into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect();
    let dropped = before - kept.len();
    (kept, dropped)
}

/// An aggregate contribution borrowing its account, provider and dimension set from events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateRef<'b> {
    pub account_id: &'b str,
    pub provider_id: &'b str,
    pub granularity: Granularity,
    pub window_start: DateTime<Utc>,
    pub meter: Meter,
    pub dimensions: &'b DimensionSet,
    pub quantity: Decimal,
    pub event_count: u64,
}

impl AggregateRef<'_> {
    /// The owned aggregate.
    pub fn to_aggregate(&self) -> UsageAggregate {
        UsageAggregate {
            account_id: self.account_id.to_owned(),
            provider_id: self.provider_id.to_owned(),
            granularity: self.granularity,
            window_start: self.window_start,
            meter: self.meter,
            dimensions: self.dimensions.dimensions.clone(),
            quantity: self.quantity,
            event_count: self.event_count,
        }
    }

    /// The stored sort key, as [`super::aggregate_sort_key`] gives it for the owned aggregate.
    pub fn sort_key(&self) -> String {
        format!(
            "{}#{}#{}#{}",
            window_key(self.window_start),
            self.meter,
            self.dimensions.hash,
            self.provider_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::usage::generator::{generate, GeneratorConfig};
    use crate::domain::usage::intake::{decode_body, queue_bodies};
    use crate::domain::usage::{
        aggregate_refs, aggregate_sort_key, aggregate_sorted, parse_event, split_body, TimeRules,
    };
    use chrono::Duration;

    /// The hot path (borrowed events from the one-pass decoder, borrowed aggregates) and the
    /// general decoder's events both give exactly the owned aggregates, keys and order.
    #[test]
    fn borrowed_aggregates_agree_with_the_owned_ones_on_generated_bodies() {
        let start: DateTime<Utc> = "2026-11-01T00:17:23Z".parse().unwrap();
        let now = start + Duration::days(1);
        let events = generate(&GeneratorConfig {
            events: 3000,
            accounts: 20,
            providers: 6,
            start,
            span: Duration::hours(23),
            ..Default::default()
        });
        let rules = TimeRules::default();
        for grans in [&Granularity::ALL[..], &[Granularity::Hour, Granularity::Day]] {
            for body in queue_bodies(&events) {
                let owned: Vec<UsageEvent> = serde_json::from_str(&body).unwrap();
                let expected = aggregate_sorted(&owned, grans);

                let decoded = decode_body(&body, now, &rules).unwrap();
                assert_eq!(
                    decoded.events.iter().map(EventRef::to_event).collect::<Vec<_>>(),
                    owned
                );
                let fast = aggregate_refs(&decoded.events, grans);
                assert_eq!(
                    fast.iter().map(AggregateRef::to_aggregate).collect::<Vec<_>>(),
                    expected
                );
                for (a, e) in fast.iter().zip(&expected) {
                    assert_eq!(a.sort_key(), aggregate_sort_key(e));
                }

                let mut sets = DimensionSets::new();
                let general: Vec<EventRef<'static>> = split_body(&body)
                    .unwrap()
                    .into_iter()
                    .map(|raw| EventRef::from_event(parse_event(raw.get(), now, &rules).unwrap(), &mut sets))
                    .collect();
                let slow = aggregate_refs(&general, grans);
                assert_eq!(
                    slow.iter().map(AggregateRef::to_aggregate).collect::<Vec<_>>(),
                    expected
                );
            }
        }
    }

    #[test]
    fn equal_dimension_sets_of_a_body_are_shared_whatever_their_order() {
        let now: DateTime<Utc> = "2026-11-25T12:00:00Z".parse().unwrap();
        let ev = |id: &str, dims: &str| {
            format!(
                r#"{{"id":"{id}","account_id":"a","provider_id":"p","job_id":"j","meter":"cpu_seconds","quantity":"1","timestamp":"2026-11-25T10:00:00Z","dimensions":{dims}}}"#
            )
        };
        let body = format!(
            "[{},{},{}]",
            ev("1", r#"{"region":"eu","gpu_model":"H100"}"#),
            ev("2", r#"{"gpu_model":"H100","region":"eu"}"#),
            ev("3", r#"{"gpu_model":"A100","region":"eu"}"#)
        );
        let events = crate::domain::usage::parse_valid_body_ref(&body, now, &TimeRules::default()).unwrap();
        assert!(Arc::ptr_eq(&events[0].dimensions, &events[1].dimensions));
        assert!(!Arc::ptr_eq(&events[0].dimensions, &events[2].dimensions));
        assert!(events.iter().all(|e| matches!(e.id, Cow::Borrowed(_))));
        assert_eq!(
            events[0].dimensions.hash,
            dimensions_hash(&events[0].dimensions.dimensions)
        );
        let mut counts: Vec<_> = aggregate_refs(&events, &[Granularity::Hour])
            .iter()
            .map(|a| (a.dimensions.dimensions["gpu_model"].as_str(), a.event_count))
            .collect();
        counts.sort_unstable();
        assert_eq!(counts, [("A100", 1), ("H100", 2)]);
    }
}
