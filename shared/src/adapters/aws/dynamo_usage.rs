//! The [`UsageStore`] on DynamoDB.
//!
//! Tables (see `infra/template.yaml`), all keyed by `pk` (hash) and `sk` (range):
//! - events: `pk` = account id, `sk` = event id; TTL attribute `expires_at`.
//! - aggregates: `pk` = `{account}#{granularity}`, `sk` = `{window}#{meter}#{dimensions hash}#{provider}`;
//!   every write also sets `changed` = `{written at, Unix ms, 13 digits}#{sk}`, the sort key of
//!   the [`CHANGES_INDEX`] (hash `pk`), which the usage stream reads changes through.
//! - rejected: `pk` = account id (or `-`), `sk` = payload fingerprint; TTL `expires_at`.
//!
//! A commit is one `TransactWriteItems`: a conditional put per event
//! (`attribute_not_exists(pk)`) and an `ADD` per aggregate. A cancelled transaction names the
//! events that already exist, which the caller drops before trying again.
//!
//! Every write is priced as DynamoDB bills it, in [`WriteStats::units`] by table and index
//! ([`EVENTS`], [`AGGREGATES`], [`AGGREGATES_CHANGES`], [`REJECTED`]): an item's size rounded up
//! to the KB, twice inside a transaction, and for each aggregate write the `changes` index entry
//! it rewrites (the index projects ALL, so an entry is the item's size; a new aggregate is one
//! index put, an existing one a delete and a put, since its `changed` key always moves).

use super::attrs::{self, get_decimal, get_s, get_string_map, get_u64, n, s, string_map, Item};
use super::backoff;
use super::dynamo::{
    batch_get, batch_write, build_error, item_size, query_page, table_health, unavailable, value_size,
    write_units, WriteUnits,
};
use crate::adapters::config::UsageTables;
use crate::domain::meter::Meter;
use crate::domain::usage::RejectedEvent;
use crate::domain::usage::{window_key, AggregateRef, EventRef, Granularity, UsageAggregate};
use crate::ports::usage::{change_key, AggregateChange, CommitOutcome, UsageStore, UNKNOWN_ACCOUNT};
use crate::ports::{Page, StoreError};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    DeleteRequest, KeysAndAttributes, Put, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The aggregates table's index of changes: hash `pk`, range `changed`.
pub const CHANGES_INDEX: &str = "changes";

/// The write-unit targets of [`WriteStats::units`]: the events table.
pub const EVENTS: &str = "events";
/// The aggregates table.
pub const AGGREGATES: &str = "aggregates";
/// The aggregates table's `changes` index.
pub const AGGREGATES_CHANGES: &str = "aggregates/changes";
/// The rejected-events table.
pub const REJECTED: &str = "rejected";
/// Cancelled transactions: their prepare phase (one unit per KB of each item), an estimate.
pub const CANCELLED: &str = "cancelled";

/// Attempts of one commit when DynamoDB reports a conflict or throttling.
const MAX_ATTEMPTS: u32 = 10;

/// Counts of requests sent, for benchmarks and logs.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// `TransactWriteItems` calls that committed.
    pub transactions: AtomicU64,
    /// Calls cancelled (duplicates or conflicts) and retried.
    pub cancelled: AtomicU64,
    /// Items written by committed transactions.
    pub items_written: AtomicU64,
    /// `BatchWriteItem` calls (rejected events).
    pub batch_writes: AtomicU64,
    /// Write units spent, by table and index.
    pub units: WriteUnits,
    /// The aggregates written so far, when counted exactly (see
    /// [`DynamoUsageStore::tracking_new_aggregates`]); otherwise every aggregate write is
    /// priced as an update of an existing item (the upper bound).
    known_aggregates: Option<Mutex<HashSet<String>>>,
}

impl WriteStats {
    pub fn snapshot(&self) -> [u64; 4] {
        [
            self.transactions.load(Ordering::Relaxed),
            self.cancelled.load(Ordering::Relaxed),
            self.items_written.load(Ordering::Relaxed),
            self.batch_writes.load(Ordering::Relaxed),
        ]
    }
}

/// One write of a transaction, as priced: its table, the item's size, and an aggregate's key.
struct PricedWrite {
    target: &'static str,
    size: usize,
    key: String,
}

/// Usage storage on DynamoDB.
pub struct DynamoUsageStore {
    client: Client,
    tables: UsageTables,
    retention: Duration,
    pub stats: WriteStats,
}

impl DynamoUsageStore {
    /// Writes `requests` to the rejected-events table in `BatchWriteItem`s, retrying unprocessed
    /// ones, and counts the calls in [`WriteStats`].
    async fn write_rejected(&self, requests: Vec<WriteRequest>, what: &str) -> Result<(), StoreError> {
        let calls = batch_write(&self.client, &self.tables.rejected, requests, what, MAX_ATTEMPTS).await?;
        self.stats.batch_writes.fetch_add(calls, Ordering::Relaxed);
        Ok(())
    }

    pub fn new(client: Client, tables: UsageTables, retention: Duration) -> Self {
        DynamoUsageStore {
            client,
            tables,
            retention,
            stats: WriteStats::default(),
        }
    }

    /// Remembers every aggregate this store writes, so that the `changes` index is priced
    /// exactly (a new aggregate: one index put; an existing one: delete and put) when the
    /// tables start empty and this store is their only writer. For benchmarks: the set grows
    /// with the aggregates written.
    pub fn tracking_new_aggregates(mut self) -> Self {
        self.stats.known_aggregates = Some(Mutex::new(HashSet::new()));
        self
    }

    /// Prices a committed transaction of these items (events first, then aggregates).
    fn count_committed(&self, items: &[PricedWrite]) {
        let units = &self.stats.units;
        let mut known = self
            .stats
            .known_aggregates
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
        for w in items {
            units.add(w.target, 2 * write_units(w.size));
            if w.target == AGGREGATES {
                let new = known.as_mut().is_some_and(|k| k.insert(w.key.clone()));
                units.add(AGGREGATES_CHANGES, if new { 1 } else { 2 } * write_units(w.size));
            }
        }
    }

    /// Prices a cancelled transaction: the prepare phase of each item.
    fn count_cancelled(&self, items: &[PricedWrite]) {
        let units = items.iter().map(|w| write_units(w.size)).sum();
        self.stats.units.add(CANCELLED, units);
    }

    fn event_item(&self, e: &EventRef<'_>, received_at: DateTime<Utc>) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), s(e.account_id.as_ref()));
        item.insert("sk".into(), s(e.id.as_ref()));
        item.insert("provider_id".into(), s(e.provider_id.as_ref()));
        item.insert("job_id".into(), s(e.job_id.as_ref()));
        item.insert("meter".into(), s(e.meter.as_str()));
        item.insert("quantity".into(), n(e.quantity));
        item.insert(
            "timestamp".into(),
            s(e.timestamp.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        );
        item.insert("dimensions".into(), string_map(&e.dimensions.dimensions));
        item.insert(
            "received_at".into(),
            s(received_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        item.insert("expires_at".into(), n((received_at + self.retention).timestamp()));
        item
    }

    fn transact_items(
        &self,
        events: &[EventRef<'_>],
        aggregates: &[AggregateRef<'_>],
        received_at: DateTime<Utc>,
        written_at: DateTime<Utc>,
    ) -> Result<(Vec<TransactWriteItem>, Vec<PricedWrite>), StoreError> {
        let mut items = Vec::with_capacity(events.len() + aggregates.len());
        let mut sizes = Vec::with_capacity(events.len() + aggregates.len());
        for e in events {
            let item = self.event_item(e, received_at);
            sizes.push(PricedWrite {
                target: EVENTS,
                size: item_size(&item),
                key: String::new(),
            });
            let put = Put::builder()
                .table_name(&self.tables.events)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_error)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        for a in aggregates {
            let sk = a.sort_key();
            let pk = format!("{}#{}", a.account_id, a.granularity);
            let attrs = [
                ("changed", ":c", s(change_key(written_at, &sk))),
                ("quantity", ":q", n(a.quantity)),
                ("event_count", ":n", n(a.event_count)),
                ("account_id", ":a", s(a.account_id)),
                ("provider_id", ":p", s(a.provider_id)),
                ("meter", ":m", s(a.meter.as_str())),
                ("granularity", ":g", s(a.granularity.as_str())),
                ("window_start", ":w", s(window_key(a.window_start))),
                ("dimensions", ":d", string_map(&a.dimensions.dimensions)),
            ];
            // The item as written: its key and these attributes (the stored quantity and count
            // may have a few more digits than the deltas; rounding to the KB absorbs them).
            let size = "pksk".len()
                + pk.len()
                + sk.len()
                + attrs
                    .iter()
                    .map(|(name, _, v)| name.len() + value_size(v))
                    .sum::<usize>();
            sizes.push(PricedWrite {
                target: AGGREGATES,
                size,
                key: format!("{pk}|{sk}"),
            });
            let values: HashMap<String, _> = attrs.into_iter().map(|(_, p, v)| (p.to_string(), v)).collect();
            let update = Update::builder()
                .table_name(&self.tables.aggregates)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .update_expression(
                    "ADD quantity :q, event_count :n \
                     SET account_id = :a, provider_id = :p, meter = :m, granularity = :g, window_start = :w, dimensions = :d, changed = :c",
                )
                .set_expression_attribute_values(Some(values))
                .build()
                .map_err(build_error)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        Ok((items, sizes))
    }

    /// Which of these events are already stored (used when a cancellation names no reasons):
    /// one consistent `BatchGetItem` per 100 keys.
    async fn existing_ids(&self, events: &[EventRef<'_>]) -> Result<Vec<String>, StoreError> {
        let mut found = Vec::new();
        for chunk in events.chunks(100) {
            let mut keys = KeysAndAttributes::builder()
                .consistent_read(true)
                .projection_expression("pk, sk");
            for e in chunk {
                keys = keys.keys(HashMap::from([
                    ("pk".to_string(), s(e.account_id.as_ref())),
                    ("sk".to_string(), s(e.id.as_ref())),
                ]));
            }
            let keys = keys.build().map_err(build_error)?;
            for item in batch_get(
                &self.client,
                &self.tables.events,
                keys,
                "event lookups",
                MAX_ATTEMPTS,
            )
            .await?
            {
                found.push(get_s(&item, "sk")?.to_string());
            }
        }
        Ok(found)
    }

    fn parse_aggregate(item: &Item) -> Result<UsageAggregate, StoreError> {
        let window: DateTime<Utc> = attrs::parse(item, "window_start")?;
        Ok(UsageAggregate {
            account_id: get_s(item, "account_id")?.to_string(),
            provider_id: attrs::get_opt_s(item, "provider_id").unwrap_or_default(),
            granularity: attrs::parse(item, "granularity")?,
            window_start: window,
            meter: attrs::parse(item, "meter")?,
            dimensions: get_string_map(item, "dimensions")?,
            quantity: get_decimal(item, "quantity")?,
            event_count: get_u64(item, "event_count")?,
        })
    }

    fn parse_rejected(item: &Item) -> Result<RejectedEvent, StoreError> {
        let account = get_s(item, "pk")?;
        Ok(RejectedEvent {
            account_id: (account != UNKNOWN_ACCOUNT).then(|| account.to_string()),
            event_id: attrs::get_opt_s(item, "event_id"),
            fingerprint: get_s(item, "sk")?.to_string(),
            raw: get_s(item, "raw")?.to_string(),
            errors: serde_json::from_str(get_s(item, "errors")?)
                .map_err(|e| StoreError::Corrupt(format!("attribute `errors`: {e}")))?,
            received_at: attrs::parse(item, "received_at")?,
        })
    }
}

impl UsageStore for DynamoUsageStore {
    fn commit<'a>(
        &'a self,
        events: &'a [EventRef<'a>],
        aggregates: &'a [AggregateRef<'a>],
        received_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<CommitOutcome, StoreError>> {
        Box::pin(async move {
            let count = (events.len() + aggregates.len()) as u64;
            let mut attempt = 0;
            loop {
                // Each attempt records its own write time, so an aggregate's change key is never
                // older than the attempt that made it visible (the usage stream relies on that).
                let (items, sizes) = self.transact_items(events, aggregates, received_at, Utc::now())?;
                let result = self
                    .client
                    .transact_write_items()
                    .set_transact_items(Some(items))
                    .send()
                    .await;
                let err = match result {
                    Ok(_) => {
                        self.count_committed(&sizes);
                        self.stats.transactions.fetch_add(1, Ordering::Relaxed);
                        self.stats.items_written.fetch_add(count, Ordering::Relaxed);
                        return Ok(CommitOutcome::Committed);
                    }
                    Err(err) => err,
                };
                self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                self.count_cancelled(&sizes);
                let retry = match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(tc)) => {
                        let reasons = tc.cancellation_reasons();
                        let dups: Vec<String> = reasons
                            .iter()
                            .take(events.len())
                            .zip(events)
                            .filter(|(r, _)| r.code() == Some("ConditionalCheckFailed"))
                            .map(|(_, e)| e.id.to_string())
                            .collect();
                        if !dups.is_empty() {
                            return Ok(CommitOutcome::Duplicates(dups));
                        }
                        if reasons.is_empty() {
                            let dups = self.existing_ids(events).await?;
                            if !dups.is_empty() {
                                return Ok(CommitOutcome::Duplicates(dups));
                            }
                        }
                        true // a conflict with a concurrent transaction, or throttling
                    }
                    Some(e) if super::is_transient(e) => true,
                    _ => false,
                };
                attempt += 1;
                if !retry || attempt >= MAX_ATTEMPTS {
                    let text = DisplayErrorContext(&err).to_string();
                    return Err(if retry {
                        StoreError::Conflict(text)
                    } else {
                        StoreError::Unavailable(text)
                    });
                }
                tracing::debug!(attempt, "transaction cancelled by a conflict; retrying");
                backoff(attempt).await;
            }
        })
    }

    #[allow(clippy::expect_used)] // Cannot fail: derived Serialize of field errors (strings) cannot fail.
    fn put_rejected<'a>(&'a self, rejected: &'a [RejectedEvent]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            // One request may not name the same key twice.
            let mut by_key: HashMap<(String, String), &RejectedEvent> = HashMap::new();
            for r in rejected {
                let account = r
                    .account_id
                    .clone()
                    .unwrap_or_else(|| UNKNOWN_ACCOUNT.to_string());
                by_key.insert((account, r.fingerprint.clone()), r);
            }
            let mut requests = Vec::with_capacity(by_key.len());
            for ((account, fp), r) in by_key {
                let mut item = Item::new();
                item.insert("pk".into(), s(account));
                item.insert("sk".into(), s(fp));
                if let Some(id) = &r.event_id {
                    item.insert("event_id".into(), s(id));
                }
                item.insert("raw".into(), s(&r.raw));
                item.insert(
                    "errors".into(),
                    s(serde_json::to_string(&r.errors).expect("errors serialize")),
                );
                item.insert(
                    "received_at".into(),
                    s(r.received_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                );
                item.insert(
                    "expires_at".into(),
                    n((r.received_at + self.retention).timestamp()),
                );
                self.stats.units.add(REJECTED, write_units(item_size(&item)));
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(build_error)?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            self.write_rejected(requests, "rejected events").await
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
            let pk = format!("{account_id}#{granularity}");
            let mut q = self
                .client
                .query()
                .table_name(&self.tables.aggregates)
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":lo", s(window_key(from)))
                .expression_attribute_values(":hi", s(window_key(to)))
                .limit(limit.clamp(1, 1000) as i32);
            if let Some(m) = meter {
                q = q
                    .filter_expression("meter = :m")
                    .expression_attribute_values(":m", s(m.as_str()));
            }
            query_page(q, &[("pk", &pk)], &["sk"], after, Self::parse_aggregate).await
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
            if after >= before {
                return Ok(Vec::new());
            }
            let pk = format!("{account_id}#{granularity}");
            let limit = limit.clamp(1, 1000);
            // BETWEEN is inclusive: one more item covers a change key equal to `after`.
            let out = self
                .client
                .query()
                .table_name(&self.tables.aggregates)
                .index_name(CHANGES_INDEX)
                .key_condition_expression("pk = :pk AND changed BETWEEN :lo AND :hi")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":lo", s(after))
                .expression_attribute_values(":hi", s(before))
                .limit(limit as i32 + 1)
                .send()
                .await
                .map_err(unavailable)?;
            let mut changed = Vec::with_capacity(limit);
            for item in out.items() {
                let key = get_s(item, "changed")?;
                if key == after || key == before {
                    continue;
                }
                changed.push(AggregateChange {
                    aggregate: Self::parse_aggregate(item)?,
                    change_key: key.to_string(),
                });
                if changed.len() == limit {
                    break;
                }
            }
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
            let pk = account_id.unwrap_or(UNKNOWN_ACCOUNT);
            let q = self
                .client
                .query()
                .table_name(&self.tables.rejected)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk))
                .limit(limit.clamp(1, 1000) as i32);
            query_page(q, &[("pk", pk)], &["sk"], after, Self::parse_rejected).await
        })
    }

    fn get_rejected<'a>(
        &'a self,
        account_id: Option<&'a str>,
        fingerprints: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RejectedEvent>, StoreError>> {
        Box::pin(async move {
            let pk = account_id.unwrap_or(UNKNOWN_ACCOUNT);
            let mut distinct: Vec<&String> = fingerprints.iter().collect();
            distinct.sort();
            distinct.dedup();
            let mut found = Vec::new();
            for chunk in distinct.chunks(100) {
                let mut keys = KeysAndAttributes::builder().consistent_read(true);
                for fp in chunk {
                    keys = keys.keys(HashMap::from([
                        ("pk".to_string(), s(pk)),
                        ("sk".to_string(), s(fp.as_str())),
                    ]));
                }
                let keys = keys.build().map_err(build_error)?;
                let items = batch_get(
                    &self.client,
                    &self.tables.rejected,
                    keys,
                    "rejected lookups",
                    MAX_ATTEMPTS,
                )
                .await?;
                for item in items {
                    found.push(Self::parse_rejected(&item)?);
                }
            }
            Ok(found)
        })
    }

    fn delete_rejected<'a>(
        &'a self,
        account_id: Option<&'a str>,
        fingerprints: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let pk = account_id.unwrap_or(UNKNOWN_ACCOUNT);
            let mut distinct: Vec<&String> = fingerprints.iter().collect();
            distinct.sort();
            distinct.dedup();
            // A deletion costs the deleted item's size, at least one unit: counted as one.
            self.stats.units.add(REJECTED, distinct.len() as u64);
            let requests = distinct
                .iter()
                .map(|fp| {
                    DeleteRequest::builder()
                        .key("pk", s(pk))
                        .key("sk", s(fp.as_str()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(build_error)
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.write_rejected(requests, "rejected deletions").await
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            for table in [
                &self.tables.events,
                &self.tables.aggregates,
                &self.tables.rejected,
            ] {
                table_health(&self.client, table).await?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    /// The write units of the `changes` index are priced for an index projecting ALL: the
    /// template must say so.
    #[test]
    fn the_changes_index_projects_all_as_priced() {
        let template = include_str!("../../../../infra/template.yaml");
        let table = template
            .split("  UsageAggregatesTable:")
            .nth(1)
            .and_then(|t| t.split("\n  RejectedEventsTable:").next())
            .unwrap();
        let index = table.split("- IndexName: changes").nth(1).unwrap();
        assert!(index.contains("ProjectionType: ALL"), "{index}");
        assert_eq!(
            table.matches("IndexName:").count(),
            1,
            "one index on the aggregates"
        );
    }
}
