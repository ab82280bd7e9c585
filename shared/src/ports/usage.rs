//! The usage ports: where raw events, aggregates and rejected events live ([`UsageStore`]) and
//! where validated events wait for ingestion ([`UsageQueue`]).

use crate::domain::meter::Meter;
use crate::domain::usage::{AggregateRef, EventRef, Granularity, RejectedEvent, UsageAggregate, UsageEvent};
use crate::ports::{Page, StoreError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// The result of trying to commit events with their aggregate contributions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Every event was new: all of them and all the aggregate deltas were written, atomically.
    Committed,
    /// These event ids (of the given events) are already stored: nothing was written.
    Duplicates(Vec<String>),
}

/// Where usage lives: raw events, aggregates and rejected events.
pub trait UsageStore: Send + Sync {
    /// Atomically stores `events` (none of which may be stored yet) and adds `aggregates` to
    /// the stored aggregates. If any event is already stored nothing is written and the
    /// duplicates are returned, so the caller can drop them and try again.
    ///
    /// Both borrow (from the message body and from the events): ingestion builds no owned
    /// event or aggregate on its way to the store.
    fn commit<'a>(
        &'a self,
        events: &'a [EventRef<'a>],
        aggregates: &'a [AggregateRef<'a>],
        received_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<CommitOutcome, StoreError>>;

    /// Stores rejected events. Storing the same fingerprint again overwrites it.
    fn put_rejected<'a>(&'a self, rejected: &'a [RejectedEvent]) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Aggregates of one account and granularity whose window starts in `[from, to)`, in
    /// (window, meter, dimension hash) order, optionally of one meter only.
    #[allow(clippy::too_many_arguments)]
    fn aggregates_page<'a>(
        &'a self,
        account_id: &'a str,
        granularity: Granularity,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        meter: Option<Meter>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<UsageAggregate>, StoreError>>;

    /// Aggregates of one account and granularity whose change key (see [`change_key`]) is after
    /// `after` and before `before`, in change-key order, at most `limit` of them. A change key
    /// orders aggregates by when they were last written, then by sort key; the usage stream
    /// resumes from one.
    fn aggregates_changed<'a>(
        &'a self,
        account_id: &'a str,
        granularity: Granularity,
        after: &'a str,
        before: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<AggregateChange>, StoreError>>;

    /// Rejected events of an account (`None`: those whose account could not be read), in
    /// fingerprint order.
    fn rejected_page<'a>(
        &'a self,
        account_id: Option<&'a str>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<RejectedEvent>, StoreError>>;

    /// The rejected events of an account (`None`: unknown account) with these fingerprints
    /// (at most 100), read consistently; fingerprints not stored are left out.
    fn get_rejected<'a>(
        &'a self,
        account_id: Option<&'a str>,
        fingerprints: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RejectedEvent>, StoreError>>;

    /// Removes rejected events of an account (`None`: unknown account); absent ones are
    /// ignored, so removing twice is harmless.
    fn delete_rejected<'a>(
        &'a self,
        account_id: Option<&'a str>,
        fingerprints: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Whether the store answers.
    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>>;
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
    fn enqueue<'a>(&'a self, events: &'a [UsageEvent]) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// The partition name of rejected events whose account could not be read.
pub const UNKNOWN_ACCOUNT: &str = "-";
