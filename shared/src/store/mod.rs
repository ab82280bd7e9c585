//! Ports: what the domain's services need from storage and queues. The DynamoDB and SQS
//! adapters (`crate::aws`) and the in-memory adapter ([`memory`]) implement them.

pub mod billing;
pub mod budgets;
pub mod cached_rates;
pub mod directory;
pub mod idempotency;
pub mod issued;
pub mod keys;
pub mod memory;
pub mod memory_billing;
pub mod rates;

use crate::meter::Meter;
use crate::usage::{AggregateRef, EventRef, FieldError, Granularity, UsageAggregate, UsageEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::future::Future;

/// A storage or queue failure. `Unavailable` and `Conflict` are worth retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("concurrent update, retry: {0}")]
    Conflict(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// A write found its key taken by something else (a conditional create that must never
    /// overwrite): not worth retrying.
    #[error("key collision: {0}")]
    Collision(String),
}

/// The result of trying to commit events with their aggregate contributions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Every event was new: all of them and all the aggregate deltas were written, atomically.
    Committed,
    /// These event ids (of the given events) are already stored: nothing was written.
    Duplicates(Vec<String>),
}

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

/// One page of a store listing, with the opaque position to continue from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Where usage lives: raw events, aggregates and rejected events.
pub trait UsageStore: Send + Sync {
    /// Atomically stores `events` (none of which may be stored yet) and adds `aggregates` to
    /// the stored aggregates. If any event is already stored nothing is written and the
    /// duplicates are returned, so the caller can drop them and try again.
    ///
    /// Both borrow (from the message body and from the events): ingestion builds no owned
    /// event or aggregate on its way to the store.
    fn commit(
        &self,
        events: &[EventRef<'_>],
        aggregates: &[AggregateRef<'_>],
        received_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<CommitOutcome, StoreError>> + Send;

    /// Stores rejected events. Storing the same fingerprint again overwrites it.
    fn put_rejected(&self, rejected: &[RejectedEvent])
        -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Aggregates of one account and granularity whose window starts in `[from, to)`, in
    /// (window, meter, dimension hash) order, optionally of one meter only.
    #[allow(clippy::too_many_arguments)]
    fn aggregates_page(
        &self,
        account_id: &str,
        granularity: Granularity,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        meter: Option<Meter>,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<UsageAggregate>, StoreError>> + Send;

    /// Aggregates of one account and granularity whose change key (see [`change_key`]) is after
    /// `after` and before `before`, in change-key order, at most `limit` of them. A change key
    /// orders aggregates by when they were last written, then by sort key; the usage stream
    /// resumes from one.
    fn aggregates_changed(
        &self,
        account_id: &str,
        granularity: Granularity,
        after: &str,
        before: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AggregateChange>, StoreError>> + Send;

    /// Rejected events of an account (`None`: those whose account could not be read), in
    /// fingerprint order.
    fn rejected_page(
        &self,
        account_id: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<RejectedEvent>, StoreError>> + Send;

    /// The rejected events of an account (`None`: unknown account) with these fingerprints
    /// (at most 100), read consistently; fingerprints not stored are left out.
    fn get_rejected(
        &self,
        account_id: Option<&str>,
        fingerprints: &[String],
    ) -> impl Future<Output = Result<Vec<RejectedEvent>, StoreError>> + Send;

    /// Removes rejected events of an account (`None`: unknown account); absent ones are
    /// ignored, so removing twice is harmless.
    fn delete_rejected(
        &self,
        account_id: Option<&str>,
        fingerprints: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether the store answers.
    fn health(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// An aggregate as the usage stream sees it: its current totals and its change key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateChange {
    pub aggregate: UsageAggregate,
    /// `{written at, Unix milliseconds, 13 digits}#{sort key}`: see [`change_key`].
    pub change_key: String,
}

impl AggregateChange {
    /// When the aggregate was last written.
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        let ms = self.change_key.get(..CHANGE_MILLIS_DIGITS)?.parse().ok()?;
        DateTime::from_timestamp_millis(ms)
    }
}

/// Digits of the milliseconds at the start of a change key (enough until the year 2286).
pub const CHANGE_MILLIS_DIGITS: usize = 13;

/// The change key an aggregate write records: the write time in Unix milliseconds (fixed width),
/// `#`, and the aggregate's sort key. Change keys sort by write time, then by aggregate, so
/// "everything up to this key" is a resumable position; a bare time prefix
/// ([`change_time_prefix`]) sorts before every key written at that millisecond.
pub fn change_key(written_at: DateTime<Utc>, sort_key: &str) -> String {
    format!("{}#{sort_key}", change_time_prefix(written_at))
}

/// The fixed-width milliseconds part of a change key: a key that sorts after every change
/// written before `t` and before every change written at or after it.
pub fn change_time_prefix(t: DateTime<Utc>) -> String {
    format!(
        "{:0width$}",
        t.timestamp_millis().max(0),
        width = CHANGE_MILLIS_DIGITS
    )
}

/// Where validated events wait for ingestion.
pub trait UsageQueue: Send + Sync {
    /// Enqueues events for the ingestion function, in messages of at most 500 events.
    fn enqueue(&self, events: &[UsageEvent]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The partition name of rejected events whose account could not be read.
pub const UNKNOWN_ACCOUNT: &str = "-";
