//! Replaying rejected events after a fix.
//!
//! A rejected event is kept with its raw payload (see [`crate::services::ingest`]). Once the cause is
//! fixed — on our side (a rule changed, a clock caught up) or by the sender (a corrected body) —
//! it can be replayed: each selected event is validated again with the current rules, as if
//! received now. The valid ones go to the usage queue, the normal ingestion path, so the event
//! id stays the idempotency key and an event replayed twice is counted once; their rejected
//! records are then removed, so a second replay finds nothing to do. The still-invalid ones
//! stay listed, with the reasons found now.

use crate::domain::usage::RejectedEvent;
use crate::domain::usage::{parse_event, FieldError, TimeRules, UsageEvent};
use crate::ports::usage::{UsageQueue, UsageStore};
use crate::ports::StoreError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Most rejected events one replay request may select.
pub const MAX_REPLAY_EVENTS: usize = 100;
/// Most rejected events a filtered replay reads to find its matches.
pub const MAX_REPLAY_SCAN: usize = 1000;
/// Length of a rejected event's fingerprint (hex digits).
pub const FINGERPRINT_LEN: usize = 16;

/// Whether a text is a fingerprint: 16 lowercase hex digits.
pub fn is_fingerprint(s: &str) -> bool {
    s.len() == FINGERPRINT_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Which rejected events to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These fingerprints, in this order (distinct, at most [`MAX_REPLAY_EVENTS`]).
    Fingerprints(Vec<String>),
    /// The first `limit` events in fingerprint order that match, among at most
    /// [`MAX_REPLAY_SCAN`] read.
    Filter {
        /// Only events with an error of this code (e.g. `in_future`).
        code: Option<String>,
        /// Only events received at or after this time.
        received_from: Option<DateTime<Utc>>,
        /// Only events received before this time.
        received_to: Option<DateTime<Utc>>,
        limit: usize,
    },
}

impl Selection {
    fn matches(&self, r: &RejectedEvent) -> bool {
        match self {
            Selection::Fingerprints(fps) => fps.contains(&r.fingerprint),
            Selection::Filter {
                code,
                received_from,
                received_to,
                ..
            } => {
                code.as_ref()
                    .is_none_or(|c| r.errors.iter().any(|e| &e.code == c))
                    && received_from.is_none_or(|f| r.received_at >= f)
                    && received_to.is_none_or(|t| r.received_at < t)
            }
        }
    }
}

/// A replay: the selection, and corrected bodies by fingerprint (raw JSON of one event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    pub selection: Selection,
    pub corrections: BTreeMap<String, String>,
}

/// What became of one selected event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatus {
    /// Valid now: enqueued for ingestion, its rejected record removed.
    Accepted,
    /// Still invalid: the record stays, with `errors`.
    Rejected,
    /// No rejected event of this account has this fingerprint (never, or already replayed).
    NotFound,
}

/// One line of a replay's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayResult {
    pub fingerprint: String,
    /// The event id, when it could be read (from the correction if there is one).
    pub event_id: Option<String>,
    pub status: ReplayStatus,
    /// Whether a corrected body was validated instead of the stored one.
    pub corrected: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// A replay's report, one result per selected event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    pub accepted: usize,
    pub rejected: usize,
    pub not_found: usize,
    /// A filtered replay found one more match than its `limit`, or read [`MAX_REPLAY_SCAN`]
    /// events before the end of the list: more events (may) match.
    pub more: bool,
    pub results: Vec<ReplayResult>,
}

/// Validates a rejected event again with the current rules, `now` as the receive time: its
/// stored payload, or `correction` instead. A correction must keep the event's id and account
/// when the rejected event had them (the id is the idempotency key; the account is the tenant
/// the record is filed under).
pub fn revalidate(
    record: &RejectedEvent,
    correction: Option<&str>,
    now: DateTime<Utc>,
    rules: &TimeRules,
) -> Result<UsageEvent, (Option<String>, Vec<FieldError>)> {
    let raw = correction.unwrap_or(&record.raw);
    let event =
        parse_event(raw, now, rules).map_err(|r| (r.event_id.or(record.event_id.clone()), r.errors))?;
    let mut errors = Vec::new();
    if let Some(id) = record.event_id.as_ref().filter(|id| **id != event.id) {
        errors.push(FieldError::new(
            "id",
            "changed",
            format!("must stay `{id}`, the id of the rejected event (it is the idempotency key)"),
        ));
    }
    if let Some(a) = record.account_id.as_ref().filter(|a| **a != event.account_id) {
        errors.push(FieldError::new(
            "account_id",
            "changed",
            format!("must stay `{a}`, the account of the rejected event"),
        ));
    }
    if errors.is_empty() {
        Ok(event)
    } else {
        Err((Some(event.id), errors))
    }
}

/// Replays the selected rejected events of an account (`None`: those filed under "unknown
/// account"). Order of effects: the valid events are enqueued first, then their records are
/// removed, then the still-invalid ones are stored with their current reasons. A failure in
/// between leaves records that a retry replays again; the queue's idempotency by event id
/// makes that harmless.
pub async fn replay_rejected(
    store: &dyn UsageStore,
    queue: &dyn UsageQueue,
    account_id: Option<&str>,
    request: &ReplayRequest,
    now: DateTime<Utc>,
    rules: &TimeRules,
) -> Result<ReplayReport, StoreError> {
    let (selected, more): (Vec<(String, Option<RejectedEvent>)>, bool) = match &request.selection {
        Selection::Fingerprints(fps) => {
            let mut found: HashMap<String, RejectedEvent> = store
                .get_rejected(account_id, fps)
                .await?
                .into_iter()
                .map(|r| (r.fingerprint.clone(), r))
                .collect();
            (
                fps.iter().map(|fp| (fp.clone(), found.remove(fp))).collect(),
                false,
            )
        }
        Selection::Filter { limit, .. } => {
            let mut picked = Vec::new();
            let mut scanned = 0;
            let mut after: Option<String> = None;
            let mut more = false;
            'scan: loop {
                let page_size = (MAX_REPLAY_SCAN - scanned).min(100);
                let page = store
                    .rejected_page(account_id, after.as_deref(), page_size)
                    .await?;
                scanned += page.items.len();
                for r in page.items {
                    if request.selection.matches(&r) {
                        if picked.len() == *limit {
                            more = true;
                            break 'scan;
                        }
                        picked.push((r.fingerprint.clone(), Some(r)));
                    }
                }
                match page.next {
                    None => break,
                    Some(_) if scanned >= MAX_REPLAY_SCAN => {
                        more = true;
                        break;
                    }
                    Some(n) => after = Some(n),
                }
            }
            (picked, more)
        }
    };
    let mut results = Vec::with_capacity(selected.len());
    let mut valid = Vec::new();
    let mut replayed = Vec::new();
    let mut still_rejected = Vec::new();
    for (fp, record) in selected {
        let Some(record) = record else {
            results.push(ReplayResult {
                fingerprint: fp,
                event_id: None,
                status: ReplayStatus::NotFound,
                corrected: false,
                errors: Vec::new(),
            });
            continue;
        };
        let correction = request.corrections.get(&fp).map(String::as_str);
        match revalidate(&record, correction, now, rules) {
            Ok(event) => {
                results.push(ReplayResult {
                    fingerprint: fp.clone(),
                    event_id: Some(event.id.clone()),
                    status: ReplayStatus::Accepted,
                    corrected: correction.is_some(),
                    errors: Vec::new(),
                });
                valid.push(event);
                replayed.push(fp);
            }
            Err((event_id, errors)) => {
                results.push(ReplayResult {
                    fingerprint: fp,
                    event_id,
                    status: ReplayStatus::Rejected,
                    corrected: correction.is_some(),
                    errors: errors.clone(),
                });
                // The stored payload's reasons are refreshed; a failed correction leaves the
                // record as it was (its payload is still the original).
                if correction.is_none() && errors != record.errors {
                    still_rejected.push(RejectedEvent { errors, ..record });
                }
            }
        }
    }
    if !valid.is_empty() {
        queue.enqueue(&valid).await?;
        store.delete_rejected(account_id, &replayed).await?;
    }
    if !still_rejected.is_empty() {
        store.put_rejected(&still_rejected).await?;
    }
    let count = |s: ReplayStatus| results.iter().filter(|r| r.status == s).count();
    Ok(ReplayReport {
        accepted: count(ReplayStatus::Accepted),
        rejected: count(ReplayStatus::Rejected),
        not_found: count(ReplayStatus::NotFound),
        more,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryUsageQueue, MemoryUsageStore};
    use crate::services::ingest::{ingest_body, IngestSettings};
    use chrono::Duration;
    use rust_decimal::Decimal;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-25T12:00:00Z".parse().unwrap()
    }

    fn event(id: &str, meter: &str, ts: &str) -> serde_json::Value {
        json!({"id": id, "account_id": "acct", "provider_id": "p", "job_id": "j", "meter": meter,
               "quantity": "2", "timestamp": ts})
    }

    async fn rejected(store: &MemoryUsageStore) -> Vec<RejectedEvent> {
        store.rejected_page(Some("acct"), None, 100).await.unwrap().items
    }

    /// Ingests what the queue holds, as the ingestion function would, at `at`.
    async fn drain(store: &MemoryUsageStore, queue: &MemoryUsageQueue, from: usize, at: DateTime<Utc>) {
        for body in &queue.messages()[from..] {
            ingest_body(store, body, &IngestSettings::default(), at)
                .await
                .unwrap();
        }
    }

    fn total(store: &MemoryUsageStore) -> Decimal {
        store
            .aggregates()
            .iter()
            .filter(|a| a.granularity == crate::domain::usage::Granularity::Hour)
            .map(|a| a.quantity)
            .sum()
    }

    #[tokio::test]
    async fn a_fixed_event_is_replayed_once_and_a_broken_one_stays() {
        let store = MemoryUsageStore::new();
        let queue = MemoryUsageQueue::new();
        let rules = TimeRules::default();
        // 10 minutes ahead: in the future when received, fine an hour later.
        let body = json!([
            event("early", "cpu_seconds", "2026-11-25T12:10:00Z"),
            event("typo", "cpu_secs", "2026-11-25T11:00:00Z"),
            event("bad", "gpu_secs", "2026-11-25T11:00:00Z"),
        ]);
        ingest_body(&store, &body.to_string(), &IngestSettings::default(), now())
            .await
            .unwrap();
        let stored = rejected(&store).await;
        assert_eq!(stored.len(), 3);
        let fp = |id: &str| {
            stored
                .iter()
                .find(|r| r.event_id.as_deref() == Some(id))
                .unwrap()
                .fingerprint
                .clone()
        };
        let later = now() + Duration::hours(1);
        let request = ReplayRequest {
            selection: Selection::Fingerprints(vec![fp("early"), fp("typo"), fp("bad")]),
            corrections: BTreeMap::from([(
                fp("typo"),
                event("typo", "cpu_seconds", "2026-11-25T11:00:00Z").to_string(),
            )]),
        };
        for round in 0..2 {
            let from = queue.messages().len();
            let report = replay_rejected(&store, &queue, Some("acct"), &request, later, &rules)
                .await
                .unwrap();
            drain(&store, &queue, from, later).await;
            let statuses: Vec<_> = report.results.iter().map(|r| r.status).collect();
            if round == 0 {
                assert_eq!(
                    statuses,
                    [
                        ReplayStatus::Accepted,
                        ReplayStatus::Accepted,
                        ReplayStatus::Rejected
                    ]
                );
                assert_eq!(report.results[2].errors[0].field, "meter");
            } else {
                assert_eq!(
                    statuses,
                    [
                        ReplayStatus::NotFound,
                        ReplayStatus::NotFound,
                        ReplayStatus::Rejected
                    ]
                );
            }
            assert_eq!(total(&store), Decimal::from(4));
        }
        let left = rejected(&store).await;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].event_id.as_deref(), Some("bad"));
    }

    #[tokio::test]
    async fn a_correction_keeps_the_id_and_account_and_a_filter_picks_by_code() {
        let store = MemoryUsageStore::new();
        let queue = MemoryUsageQueue::new();
        let rules = TimeRules::default();
        let body = json!([
            event("a", "cpu_secs", "2026-11-25T11:00:00Z"),
            event("b", "cpu_seconds", "2026-11-25T12:10:00Z"),
        ]);
        ingest_body(&store, &body.to_string(), &IngestSettings::default(), now())
            .await
            .unwrap();
        let stored = rejected(&store).await;
        let a = stored
            .iter()
            .find(|r| r.event_id.as_deref() == Some("a"))
            .unwrap();
        let mut renamed = event("a2", "cpu_seconds", "2026-11-25T11:00:00Z");
        renamed["account_id"] = json!("other");
        let (_, errors) = revalidate(a, Some(&renamed.to_string()), now(), &rules).unwrap_err();
        let fields: Vec<_> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect();
        assert_eq!(fields, [("id", "changed"), ("account_id", "changed")]);

        // Only the `in_future` one is picked; it is still in the future, so it stays.
        let request = ReplayRequest {
            selection: Selection::Filter {
                code: Some("in_future".into()),
                received_from: None,
                received_to: None,
                limit: 10,
            },
            corrections: BTreeMap::new(),
        };
        let report = replay_rejected(&store, &queue, Some("acct"), &request, now(), &rules)
            .await
            .unwrap();
        assert_eq!((report.accepted, report.rejected, report.more), (0, 1, false));
        assert_eq!(report.results[0].event_id.as_deref(), Some("b"));
        assert!(queue.messages().is_empty());
        assert_eq!(rejected(&store).await.len(), 2);

        // A limit below the matches says there are more; at the matches, not.
        for (limit, more) in [(1, true), (2, false)] {
            let request = ReplayRequest {
                selection: Selection::Filter {
                    code: None,
                    received_from: Some(now()),
                    received_to: Some(now() + Duration::seconds(1)),
                    limit,
                },
                corrections: BTreeMap::new(),
            };
            let report = replay_rejected(&store, &queue, Some("acct"), &request, now(), &rules)
                .await
                .unwrap();
            assert_eq!((report.results.len(), report.more), (limit, more));
        }
    }
}
