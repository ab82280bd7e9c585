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
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

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
    /// Decoding the message panicked (a defect met by this message only).
    #[error("ingesting the message panicked")]
    Panicked,
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

/// What happened to a batch of message bodies ingested together ([`ingest_batch`]).
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// The counts of the messages that did not fail.
    pub counts: IngestCounts,
    /// The index (in the batch) and error of each message that failed, in order: retry them.
    pub failed: Vec<(usize, IngestError)>,
    /// When the commit succeeded: the usage times of the batch's valid events (new and
    /// duplicate alike) per account, so the draw-down knows which periods to draw
    /// (`services::drawdown`). Empty when the commit failed.
    pub usage: BTreeMap<String, BTreeSet<DateTime<Utc>>>,
}

/// Ingests a batch of message bodies (an SQS batch) together: each body is decoded, and its
/// rejected events stored, on its own (an unreadable body fails alone); then the valid events of
/// every body are committed together by [`commit_events`], so events of different messages that
/// share an aggregate update it in the same transactions instead of once per message. An event
/// repeated in several messages (same account and id) is committed once, from the first.
///
/// Exactly once as [`ingest_body`]: if the commit fails, every message that brought events fails
/// (a retry commits only the events not stored yet).
pub async fn ingest_batch(
    store: &dyn UsageStore,
    bodies: &[&str],
    settings: &IngestSettings,
    now: DateTime<Utc>,
) -> BatchOutcome {
    let mut out = BatchOutcome::default();
    let mut events: Vec<EventRef<'_>> = Vec::new();
    let mut seen: HashSet<(Cow<'_, str>, Cow<'_, str>)> = HashSet::new();
    let mut bringing = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let decoded = match std::panic::catch_unwind(|| decode_body(body, now, &settings.time_rules)) {
            Ok(Ok(decoded)) => decoded,
            Ok(Err(e)) => {
                out.failed.push((i, e.into()));
                continue;
            }
            Err(_) => {
                out.failed.push((i, IngestError::Panicked));
                continue;
            }
        };
        if !decoded.rejected.is_empty() {
            if let Err(e) = store.put_rejected(&decoded.rejected).await {
                out.failed.push((i, e.into()));
                continue;
            }
        }
        out.counts.duplicate += decoded.repeated;
        out.counts.rejected += decoded.rejected.len();
        if !decoded.events.is_empty() {
            bringing.push(i);
        }
        for e in decoded.events {
            if seen.insert((e.account_id.clone(), e.id.clone())) {
                events.push(e);
            } else {
                out.counts.duplicate += 1;
            }
        }
    }
    let mut usage: BTreeMap<String, BTreeSet<DateTime<Utc>>> = BTreeMap::new();
    for e in &events {
        usage
            .entry(e.account_id.to_string())
            .or_default()
            .insert(e.timestamp);
    }
    match commit_events(store, events, settings, now).await {
        Ok(counts) => {
            out.counts += counts;
            out.usage = usage;
        }
        Err(e) => out
            .failed
            .extend(bringing.into_iter().map(|i| (i, IngestError::Store(e.clone())))),
    }
    out.failed.sort_by_key(|(i, _)| *i);
    out
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

    /// A store that fails its `fail_at`th commit (from 0) as if the function crashed there:
    /// the commits before it are stored, that one and the rest of the batch are not.
    struct CrashingStore {
        inner: MemoryUsageStore,
        commits: std::sync::atomic::AtomicUsize,
        fail_at: usize,
    }

    impl UsageStore for CrashingStore {
        fn commit<'a>(
            &'a self,
            events: &'a [EventRef<'a>],
            aggregates: &'a [crate::domain::usage::AggregateRef<'a>],
            received_at: DateTime<Utc>,
        ) -> futures::future::BoxFuture<'a, Result<CommitOutcome, StoreError>> {
            let n = self.commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == self.fail_at {
                return Box::pin(async { Err(StoreError::Unavailable("crash".into())) });
            }
            self.inner.commit(events, aggregates, received_at)
        }
        fn put_rejected<'a>(
            &'a self,
            rejected: &'a [crate::domain::usage::RejectedEvent],
        ) -> futures::future::BoxFuture<'a, Result<(), StoreError>> {
            self.inner.put_rejected(rejected)
        }
        fn aggregates_page<'a>(
            &'a self,
            account_id: &'a str,
            granularity: Granularity,
            from: DateTime<Utc>,
            to: DateTime<Utc>,
            meter: Option<Meter>,
            after: Option<&'a str>,
            limit: usize,
        ) -> futures::future::BoxFuture<
            'a,
            Result<crate::ports::Page<crate::domain::usage::UsageAggregate>, StoreError>,
        > {
            self.inner
                .aggregates_page(account_id, granularity, from, to, meter, after, limit)
        }
        fn aggregates_changed<'a>(
            &'a self,
            account_id: &'a str,
            granularity: Granularity,
            after: &'a str,
            before: &'a str,
            limit: usize,
        ) -> futures::future::BoxFuture<'a, Result<Vec<crate::ports::usage::AggregateChange>, StoreError>>
        {
            self.inner
                .aggregates_changed(account_id, granularity, after, before, limit)
        }
        fn rejected_page<'a>(
            &'a self,
            account_id: Option<&'a str>,
            after: Option<&'a str>,
            limit: usize,
        ) -> futures::future::BoxFuture<
            'a,
            Result<crate::ports::Page<crate::domain::usage::RejectedEvent>, StoreError>,
        > {
            self.inner.rejected_page(account_id, after, limit)
        }
        fn get_rejected<'a>(
            &'a self,
            account_id: Option<&'a str>,
            fingerprints: &'a [String],
        ) -> futures::future::BoxFuture<'a, Result<Vec<crate::domain::usage::RejectedEvent>, StoreError>>
        {
            self.inner.get_rejected(account_id, fingerprints)
        }
        fn delete_rejected<'a>(
            &'a self,
            account_id: Option<&'a str>,
            fingerprints: &'a [String],
        ) -> futures::future::BoxFuture<'a, Result<(), StoreError>> {
            self.inner.delete_rejected(account_id, fingerprints)
        }
        fn health(&self) -> futures::future::BoxFuture<'_, Result<(), StoreError>> {
            self.inner.health()
        }
    }

    /// Several messages of generated events, overlapping (some events in two messages), with a
    /// rejected event and an unreadable body.
    fn overlapping_batch() -> (Vec<String>, Vec<UsageEvent>) {
        use crate::domain::usage::generator::{generate_collector, CollectorConfig};
        let events = generate_collector(&CollectorConfig {
            seed: 5,
            accounts: 3,
            providers: 2,
            jobs: 6,
            start: now() - chrono::Duration::hours(3),
            span: chrono::Duration::hours(2),
            interval: chrono::Duration::seconds(60),
        });
        let mut bodies: Vec<String> = events
            .chunks(300)
            .map(|c| serde_json::to_string(c).unwrap())
            .collect();
        // The same events again, cut differently.
        bodies.push(serde_json::to_string(&events[250..400]).unwrap());
        let mut with_bad: Vec<serde_json::Value> = serde_json::from_str(&bodies[0]).unwrap();
        with_bad.push(event("bad", "-1", "2026-11-25T10:00:00Z"));
        bodies[0] = serde_json::Value::Array(with_bad).to_string();
        bodies.push("not json".into());
        (bodies, events)
    }

    fn totals_of(
        store: &MemoryUsageStore,
    ) -> std::collections::BTreeMap<(String, Granularity), (Decimal, u64)> {
        let mut t = std::collections::BTreeMap::new();
        for a in store.aggregates() {
            let e: &mut (Decimal, u64) = t.entry((a.account_id.clone(), a.granularity)).or_default();
            e.0 += a.quantity;
            e.1 += a.event_count;
        }
        t
    }

    fn expected_totals(
        events: &[UsageEvent],
    ) -> std::collections::BTreeMap<(String, Granularity), (Decimal, u64)> {
        let mut t = std::collections::BTreeMap::new();
        for e in events {
            for g in [Granularity::Hour, Granularity::Day] {
                let x: &mut (Decimal, u64) = t.entry((e.account_id.clone(), g)).or_default();
                x.0 += e.quantity;
                x.1 += 1;
            }
        }
        t
    }

    #[tokio::test]
    async fn a_batch_is_committed_together_and_applied_once_however_often_it_is_replayed() {
        let (bodies, events) = overlapping_batch();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let store = MemoryUsageStore::new();
        let s = IngestSettings::default();
        let first = ingest_batch(&store, &refs, &s, now()).await;
        let failed: Vec<usize> = first.failed.iter().map(|(i, _)| *i).collect();
        assert_eq!(failed, [bodies.len() - 1], "only the unreadable body fails");
        assert_eq!(first.counts.accepted, events.len());
        assert_eq!(first.counts.duplicate, 150);
        assert_eq!(first.counts.rejected, 1);
        let commits = store.commits();
        let per_message = MemoryUsageStore::new();
        for body in &refs[..refs.len() - 1] {
            ingest_body(&per_message, body, &s, now()).await.unwrap();
        }
        assert!(
            commits < per_message.commits(),
            "{commits} commits for the batch, {} per message",
            per_message.commits()
        );
        assert_eq!(totals_of(&store), expected_totals(&events));
        assert_eq!(totals_of(&store), totals_of(&per_message));
        // Replays, whole and in parts, in any order: nothing changes.
        for cut in [1, 2, 3] {
            for part in refs.chunks(cut).rev() {
                let again = ingest_batch(&store, part, &s, now()).await;
                assert_eq!(again.counts.accepted, 0);
            }
        }
        assert_eq!(totals_of(&store), expected_totals(&events));
        assert_eq!(store.events().len(), events.len());
    }

    #[tokio::test]
    async fn a_crash_between_any_two_commits_of_a_batch_is_repaired_by_its_retry() {
        let (bodies, events) = overlapping_batch();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let s = IngestSettings::default();
        let probe = MemoryUsageStore::new();
        ingest_batch(&probe, &refs, &s, now()).await;
        let commits = probe.commits();
        assert!(commits > 2, "{commits}");
        for fail_at in 0..commits {
            let store = CrashingStore {
                inner: MemoryUsageStore::new(),
                commits: Default::default(),
                fail_at,
            };
            let crashed = ingest_batch(&store, &refs, &s, now()).await;
            // Every message that brought events fails, so SQS delivers them again.
            assert_eq!(crashed.failed.len(), bodies.len(), "fail at {fail_at}");
            let retry = ingest_batch(&store, &refs, &s, now()).await;
            assert_eq!(retry.failed.len(), 1, "fail at {fail_at}");
            assert_eq!(
                totals_of(&store.inner),
                expected_totals(&events),
                "fail at {fail_at}"
            );
            assert_eq!(store.inner.events().len(), events.len());
        }
    }
}
