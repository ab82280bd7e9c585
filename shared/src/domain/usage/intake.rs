//! Intake: from a message body to validated events and rejected events, and the pure rules
//! around storing them (fingerprints, commit chunks, queue message bodies). The ingestion
//! service (`crate::services::ingest`) commits what this decides.

use super::{
    distinct_event_refs, parse_event, parse_valid_body_ref, split_body, window_key, BodyError, DimensionSets,
    EventRef, FieldError, Granularity, TimeRules, UsageEvent,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// Most items one atomic commit may write (DynamoDB `TransactWriteItems` allows 100).
pub const MAX_ITEMS_PER_COMMIT: usize = 100;
/// Largest body the queue adapter puts in one message (SQS allows 256 KiB).
pub const MAX_MESSAGE_BYTES: usize = 200 * 1024;

/// An event that failed validation, kept with its raw payload so it can be inspected and
/// replayed after a fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedEvent {
    /// The account, when it could be read; `None` files it under "unknown account".
    pub account_id: Option<String>,
    pub event_id: Option<String>,
    /// Identifies the payload (SHA-256 of the raw text, 16 hex digits): storing the same
    /// rejected payload twice keeps one record.
    pub fingerprint: String,
    pub raw: String,
    pub errors: Vec<FieldError>,
    pub received_at: DateTime<Utc>,
}

/// The first 16 hex digits of the SHA-256 of a text.
pub fn fingerprint(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A message body decoded and validated: the distinct valid events (borrowing from the body
/// when they can), and the rejected ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub events: Vec<EventRef<'a>>,
    pub rejected: Vec<RejectedEvent>,
    /// Events repeated inside the body (same account and id), dropped.
    pub repeated: usize,
}

/// Decodes and validates a body (one event or an array), with `now` as the receive time.
pub fn decode_body<'a>(
    body: &'a str,
    now: DateTime<Utc>,
    rules: &TimeRules,
) -> Result<Decoded<'a>, BodyError> {
    // Bodies of valid events (the usual case) are read in one pass; any other body goes
    // through the general path, which names every problem.
    if let Some(events) = parse_valid_body_ref(body, now, rules) {
        let (events, repeated) = distinct_event_refs(events);
        return Ok(Decoded {
            events,
            rejected: Vec::new(),
            repeated,
        });
    }
    let raws = split_body(body)?;
    let mut events = Vec::with_capacity(raws.len());
    let mut rejected = Vec::new();
    let mut sets = DimensionSets::new();
    for raw in raws {
        match parse_event(raw.get(), now, rules) {
            Ok(e) => events.push(EventRef::from_event(e, &mut sets)),
            Err(r) => rejected.push(RejectedEvent {
                account_id: r.account_id,
                event_id: r.event_id,
                fingerprint: fingerprint(raw.get()),
                raw: raw.get().to_string(),
                errors: r.errors,
                received_at: now,
            }),
        }
    }
    let (events, repeated) = distinct_event_refs(events);
    Ok(Decoded {
        events,
        rejected,
        repeated,
    })
}

/// Splits events into chunks whose events plus distinct aggregate keys fit in one commit.
pub fn plan_chunks(
    events: &[EventRef<'_>],
    granularities: &[Granularity],
    max_items: usize,
) -> Vec<Vec<usize>> {
    let mut chunks = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut keys: HashSet<(String, Granularity, String)> = HashSet::new();
    for (i, e) in events.iter().enumerate() {
        // Each event's dimension set carries its hash.
        let hash = &e.dimensions.hash;
        let event_keys: Vec<_> = granularities
            .iter()
            .map(|&g| {
                // The aggregate's sort key (`aggregate_sort_key`): provider included.
                let sk = format!(
                    "{}#{}#{}#{}",
                    window_key(g.window_start(e.timestamp)),
                    e.meter,
                    hash,
                    e.provider_id
                );
                (e.account_id.to_string(), g, sk)
            })
            .collect();
        let new_keys = event_keys.iter().filter(|k| !keys.contains(*k)).count();
        if !current.is_empty() && current.len() + 1 + keys.len() + new_keys > max_items {
            chunks.push(std::mem::take(&mut current));
            keys.clear();
        }
        current.push(i);
        keys.extend(event_keys);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Packs events into queue message bodies: JSON arrays of at most 500 events and
/// [`MAX_MESSAGE_BYTES`] each.
#[allow(clippy::expect_used)] // Cannot fail: derived Serialize of a usage event cannot fail.
pub fn queue_bodies(events: &[UsageEvent]) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut size = 2;
    for e in events {
        let json = serde_json::to_string(e).expect("events always serialize");
        if !current.is_empty()
            && (current.len() == crate::domain::usage::event::MAX_EVENTS_PER_BATCH
                || size + json.len() + 1 > MAX_MESSAGE_BYTES)
        {
            bodies.push(format!("[{}]", current.join(",")));
            current.clear();
            size = 2;
        }
        size += json.len() + 1;
        current.push(json);
    }
    if !current.is_empty() {
        bodies.push(format!("[{}]", current.join(",")));
    }
    bodies
}
