//! Ingestion: from a message body to stored events and aggregates, exactly once.
//!
//! The effect of a message is idempotent. Each chunk of events is committed together with its
//! aggregate contributions in one atomic write that refuses events already stored; when the
//! store reports duplicates they are dropped and the rest is committed again. So replaying any
//! message any number of times, in any order, concurrently, leaves every aggregate as if each
//! distinct event id had been applied once.

use crate::domain::usage::intake::{decode_body, plan_chunks, MAX_ITEMS_PER_COMMIT};
use crate::domain::usage::{aggregate_refs, BodyError, EventRef, Granularity, TimeRules};
use crate::ports::usage::{CommitOutcome, UsageStore};
use crate::ports::StoreError;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

/// How ingestion validates and aggregates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestSettings {
    pub granularities: Vec<Granularity>,
    pub time_rules: TimeRules,
    pub max_items_per_commit: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            granularities: vec![Granularity::Hour, Granularity::Day],
            time_rules: TimeRules::default(),
            max_items_per_commit: MAX_ITEMS_PER_COMMIT,
        }
    }
}

/// What happened to the events of one message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestCounts {
    /// Stored for the first time.
    pub accepted: usize,
    /// Already stored (a redelivery or a client retry), or repeated inside the message.
    pub duplicate: usize,
    /// Failed validation; stored as rejected events.
    pub rejected: usize,
    /// The earliest usage time among the events stored for the first time: the receive time
    /// minus this is the batch's largest ingest lag.
    pub oldest_accepted: Option<DateTime<Utc>>,
}

impl std::ops::AddAssign for IngestCounts {
    fn add_assign(&mut self, o: Self) {
        self.accepted += o.accepted;
        self.duplicate += o.duplicate;
        self.rejected += o.rejected;
        self.oldest_accepted = match (self.oldest_accepted, o.oldest_accepted) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Why a message could not be ingested. The message should be retried (and, if it keeps
/// failing, end in the dead-letter queue); nothing it committed is double counted on retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Commits events with their aggregates, exactly once, in chunks.
pub async fn commit_events(
    store: &dyn UsageStore,
    events: Vec<EventRef<'_>>,
    settings: &IngestSettings,
    received_at: DateTime<Utc>,
) -> Result<IngestCounts, StoreError> {
    let mut counts = IngestCounts::default();
    // Events that share aggregates go in the same chunk, so each aggregate is updated once per
    // chunk rather than once per event.
    let mut events = events;
    events.sort_by(|a, b| {
        (
            &a.account_id,
            a.meter,
            &a.dimensions.dimensions,
            &a.provider_id,
            a.timestamp,
        )
            .cmp(&(
                &b.account_id,
                b.meter,
                &b.dimensions.dimensions,
                &b.provider_id,
                b.timestamp,
            ))
    });
    let max_items = settings
        .max_items_per_commit
        .max(1 + settings.granularities.len());
    for chunk in plan_chunks(&events, &settings.granularities, max_items) {
        let mut pending: Vec<EventRef<'_>> = chunk.into_iter().map(|i| events[i].clone()).collect();
        while !pending.is_empty() {
            let aggs = aggregate_refs(&pending, &settings.granularities);
            match store.commit(&pending, &aggs, received_at).await? {
                CommitOutcome::Committed => {
                    counts.accepted += pending.len();
                    let oldest = pending.iter().map(|e| e.timestamp).min();
                    counts += IngestCounts {
                        oldest_accepted: oldest,
                        ..IngestCounts::default()
                    };
                    pending.clear();
                }
                CommitOutcome::Duplicates(ids) => {
                    let ids: HashSet<String> = ids.into_iter().collect();
                    let before = pending.len();
                    pending.retain(|e| !ids.contains(e.id.as_ref()));
                    if pending.len() == before {
                        return Err(StoreError::Corrupt(
                            "store reported duplicates that are not in the commit".into(),
                        ));
                    }
                    counts.duplicate += before - pending.len();
                }
            }
        }
    }
    Ok(counts)
}

/// Ingests one message body: stores its rejected events, then commits its valid events.
pub async fn ingest_body(
    store: &dyn UsageStore,
    body: &str,
    settings: &IngestSettings,
    now: DateTime<Utc>,
) -> Result<IngestCounts, IngestError> {
    let decoded = decode_body(body, now, &settings.time_rules)?;
    if !decoded.rejected.is_empty() {
        store.put_rejected(&decoded.rejected).await?;
    }
    let mut counts = commit_events(store, decoded.events, settings, now).await?;
    counts.duplicate += decoded.repeated;
    counts.rejected += decoded.rejected.len();
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryUsageStore;
    use crate::domain::meter::Meter;
    use crate::domain::usage::intake::{queue_bodies, MAX_MESSAGE_BYTES};
    use crate::domain::usage::UsageEvent;
    use crate::domain::usage::{event_refs, Dimensions};
    use rust_decimal::Decimal;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-25T12:00:00Z".parse().unwrap()
    }

    fn event(id: &str, q: &str, ts: &str) -> serde_json::Value {
        json!({"id": id, "account_id": "acct", "provider_id": "p", "job_id": "j", "meter": "cpu_seconds",
               "quantity": q, "timestamp": ts})
    }

    fn total(store: &MemoryUsageStore, g: Granularity) -> Decimal {
        store
            .aggregates()
            .iter()
            .filter(|a| a.granularity == g)
            .map(|a| a.quantity)
            .sum()
    }

    #[tokio::test]
    async fn a_body_is_applied_once_however_often_it_is_replayed() {
        let store = MemoryUsageStore::new();
        let body = json!([
            event("a", "1.5", "2026-11-25T10:00:00Z"),
            event("b", "2", "2026-11-25T11:00:00Z"),
            event("a", "1.5", "2026-11-25T10:00:00Z"),
            event("bad", "-1", "2026-11-25T10:00:00Z"),
        ])
        .to_string();
        let s = IngestSettings::default();
        let first = ingest_body(&store, &body, &s, now()).await.unwrap();
        assert_eq!(
            first,
            IngestCounts {
                accepted: 2,
                duplicate: 1,
                rejected: 1,
                oldest_accepted: Some("2026-11-25T10:00:00Z".parse().unwrap()),
            }
        );
        for _ in 0..3 {
            let again = ingest_body(&store, &body, &s, now()).await.unwrap();
            assert_eq!(
                again,
                IngestCounts {
                    accepted: 0,
                    duplicate: 3,
                    rejected: 1,
                    oldest_accepted: None,
                }
            );
        }
        assert_eq!(total(&store, Granularity::Hour), Decimal::new(35, 1));
        assert_eq!(total(&store, Granularity::Day), Decimal::new(35, 1));
        assert_eq!(store.events().len(), 2);
    }

    #[tokio::test]
    async fn overlapping_bodies_commit_only_the_new_events() {
        let store = MemoryUsageStore::new();
        let s = IngestSettings::default();
        let one = json!([
            event("a", "1", "2026-11-25T10:00:00Z"),
            event("b", "2", "2026-11-25T10:00:00Z")
        ]);
        let two = json!([
            event("b", "2", "2026-11-25T10:00:00Z"),
            event("c", "4", "2026-11-25T10:00:00Z")
        ]);
        ingest_body(&store, &one.to_string(), &s, now()).await.unwrap();
        let c = ingest_body(&store, &two.to_string(), &s, now()).await.unwrap();
        assert_eq!((c.accepted, c.duplicate), (1, 1));
        assert_eq!(total(&store, Granularity::Hour), Decimal::from(7));
        let hourly: Vec<_> = store
            .aggregates()
            .into_iter()
            .filter(|a| a.granularity == Granularity::Hour)
            .collect();
        assert_eq!(hourly.len(), 1);
        assert_eq!(hourly[0].event_count, 3);
    }

    #[tokio::test]
    async fn an_unreadable_body_is_an_error_not_a_rejection() {
        let store = MemoryUsageStore::new();
        let err = ingest_body(&store, "not json", &IngestSettings::default(), now())
            .await
            .unwrap_err();
        assert!(matches!(err, IngestError::Body(BodyError::NotJson(_))));
        assert!(store.events().is_empty());
    }

    #[test]
    fn chunks_respect_the_item_limit_and_share_aggregates() {
        let mk = |i: usize, hour: usize| UsageEvent {
            id: format!("e{i}"),
            account_id: "acct".into(),
            provider_id: "p".into(),
            job_id: "j".into(),
            meter: Meter::CpuSeconds,
            quantity: Decimal::ONE,
            timestamp: DateTime::from_timestamp(1_790_000_000 + hour as i64 * 3600, 0).unwrap(),
            dimensions: Dimensions::new(),
        };
        let grans = [Granularity::Hour, Granularity::Day];
        // 300 events in one hour: 98 events + 2 aggregates per chunk.
        let same: Vec<_> = (0..300).map(|i| mk(i, 0)).collect();
        let chunks = plan_chunks(&event_refs(&same), &grans, 100);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [98, 98, 98, 6]);
        // Each event in its own hour: 1 + 1 hourly + shared daily.
        let spread: Vec<_> = (0..100).map(|i| mk(i, i * 25)).collect();
        let spread = event_refs(&spread);
        for c in plan_chunks(&spread, &grans, 100) {
            assert!(c.len() * 3 <= 100 + c.len());
        }
        let flat: Vec<usize> = plan_chunks(&spread, &grans, 100).concat();
        assert_eq!(flat, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn queue_bodies_hold_at_most_500_events_and_round_trip() {
        let events: Vec<UsageEvent> = (0..1203)
            .map(|i| UsageEvent {
                id: format!("e{i}"),
                account_id: "acct".into(),
                provider_id: "p".into(),
                job_id: "j".into(),
                meter: Meter::GpuSeconds,
                quantity: Decimal::new(i, 3),
                timestamp: now(),
                dimensions: Dimensions::new(),
            })
            .collect();
        let bodies = queue_bodies(&events);
        assert_eq!(bodies.len(), 3);
        let back: Vec<UsageEvent> = bodies
            .iter()
            .flat_map(|b| {
                let decoded = decode_body(b, now(), &TimeRules::default()).unwrap();
                decoded.events.iter().map(EventRef::to_event).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(back, events);
        assert!(bodies.iter().all(|b| b.len() <= MAX_MESSAGE_BYTES));
    }
}
