//! In-memory adapters with the same semantics as the DynamoDB ones, for domain tests.

use crate::domain::meter::Meter;
use crate::domain::usage::RejectedEvent;
use crate::domain::usage::{
    aggregate_sort_key, window_key, AggregateRef, EventRef, Granularity, UsageAggregate, UsageEvent,
};
use crate::ports::usage::{
    change_key, AggregateChange, CommitOutcome, UsageQueue, UsageStore, UNKNOWN_ACCOUNT,
};
use crate::ports::{Page, StoreError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

#[derive(Default)]
struct Inner {
    events: HashMap<(String, String), UsageEvent>,
    aggregates: BTreeMap<(String, Granularity, String), UsageAggregate>,
    /// Each aggregate's change key (written at, then sort key), by the aggregate's key.
    changes: HashMap<(String, Granularity, String), String>,
    rejected: BTreeMap<(String, String), RejectedEvent>,
    commits: usize,
}

/// A [`UsageStore`] in memory. Commits are atomic under one lock.
#[derive(Default)]
pub struct MemoryUsageStore {
    inner: Mutex<Inner>,
}

impl MemoryUsageStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stored event.
    pub fn events(&self) -> Vec<UsageEvent> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .events
            .values()
            .cloned()
            .collect()
    }

    /// Every aggregate, in key order.
    pub fn aggregates(&self) -> Vec<UsageAggregate> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .aggregates
            .values()
            .cloned()
            .collect()
    }

    /// Successful commits so far.
    pub fn commits(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).commits
    }
}

impl UsageStore for MemoryUsageStore {
    fn commit<'a>(
        &'a self,
        events: &'a [EventRef<'a>],
        aggregates: &'a [AggregateRef<'a>],
        _received_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<CommitOutcome, StoreError>> {
        Box::pin(async move {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let dups: Vec<String> = events
                .iter()
                .filter(|e| {
                    inner
                        .events
                        .contains_key(&(e.account_id.to_string(), e.id.to_string()))
                })
                .map(|e| e.id.to_string())
                .collect();
            if !dups.is_empty() {
                return Ok(CommitOutcome::Duplicates(dups));
            }
            for e in events {
                inner
                    .events
                    .insert((e.account_id.to_string(), e.id.to_string()), e.to_event());
            }
            let written_at = Utc::now();
            for a in aggregates {
                let sk = a.sort_key();
                let key = (a.account_id.to_string(), a.granularity, sk.clone());
                inner.changes.insert(key.clone(), change_key(written_at, &sk));
                inner
                    .aggregates
                    .entry(key)
                    .and_modify(|s| {
                        s.quantity += a.quantity;
                        s.event_count += a.event_count;
                    })
                    .or_insert_with(|| a.to_aggregate());
            }
            inner.commits += 1;
            Ok(CommitOutcome::Committed)
        })
    }

    fn put_rejected<'a>(&'a self, rejected: &'a [RejectedEvent]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            for r in rejected {
                let account = r
                    .account_id
                    .clone()
                    .unwrap_or_else(|| UNKNOWN_ACCOUNT.to_string());
                inner.rejected.insert((account, r.fingerprint.clone()), r.clone());
            }
            Ok(())
        })
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
    ) -> BoxFuture<'a, Result<Page<UsageAggregate>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let lo = (account_id.to_string(), granularity, window_key(from));
            let hi = (account_id.to_string(), granularity, window_key(to));
            let mut items = Vec::new();
            let mut next = None;
            for ((_, _, sk), a) in inner.aggregates.range(lo..hi) {
                if after.is_some_and(|after| sk.as_str() <= after) {
                    continue;
                }
                if items.len() == limit {
                    next = items.last().map(aggregate_sort_key);
                    break;
                }
                if meter.is_none_or(|m| m == a.meter) {
                    items.push(a.clone());
                }
            }
            Ok(Page { items, next })
        })
    }

    fn aggregates_changed<'a>(
        &'a self,
        account_id: &'a str,
        granularity: Granularity,
        after: &'a str,
        before: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<AggregateChange>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let mut changed: Vec<AggregateChange> = inner
                .changes
                .iter()
                .filter(|((a, g, _), c)| {
                    a == account_id && *g == granularity && c.as_str() > after && c.as_str() < before
                })
                .map(|(key, c)| AggregateChange {
                    aggregate: inner.aggregates[key].clone(),
                    change_key: c.clone(),
                })
                .collect();
            changed.sort_by(|x, y| x.change_key.cmp(&y.change_key));
            changed.truncate(limit);
            Ok(changed)
        })
    }

    fn rejected_page<'a>(
        &'a self,
        account_id: Option<&'a str>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<RejectedEvent>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let account = account_id.unwrap_or(UNKNOWN_ACCOUNT).to_string();
            let mut items: Vec<RejectedEvent> = inner
                .rejected
                .range((account.clone(), String::new())..)
                .take_while(|((a, _), _)| *a == account)
                .filter(|((_, fp), _)| after.is_none_or(|after| fp.as_str() > after))
                .take(limit + 1)
                .map(|(_, r)| r.clone())
                .collect();
            let next = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|r| r.fingerprint.clone())
            } else {
                None
            };
            Ok(Page { items, next })
        })
    }

    fn get_rejected<'a>(
        &'a self,
        account_id: Option<&'a str>,
        fingerprints: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RejectedEvent>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let account = account_id.unwrap_or(UNKNOWN_ACCOUNT).to_string();
            Ok(fingerprints
                .iter()
                .filter_map(|fp| inner.rejected.get(&(account.clone(), fp.clone())).cloned())
                .collect())
        })
    }

    fn delete_rejected<'a>(
        &'a self,
        account_id: Option<&'a str>,
        fingerprints: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let account = account_id.unwrap_or(UNKNOWN_ACCOUNT).to_string();
            for fp in fingerprints {
                inner.rejected.remove(&(account.clone(), fp.clone()));
            }
            Ok(())
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { Ok(()) })
    }
}

/// A [`UsageQueue`] that keeps each enqueued message body.
#[derive(Default)]
pub struct MemoryUsageQueue {
    messages: Mutex<Vec<String>>,
}

impl MemoryUsageQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// The bodies enqueued so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        self.messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl UsageQueue for MemoryUsageQueue {
    fn enqueue<'a>(&'a self, events: &'a [UsageEvent]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
            for body in crate::domain::usage::intake::queue_bodies(events) {
                messages.push(body);
            }
            Ok(())
        })
    }
}
