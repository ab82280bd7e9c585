//! What every DynamoDB adapter does the same way: the error mapping, the health check, a
//! consistent `GetItem` ([`get_item`]), the page-and-cursor loop of a `Query` ([`query_page`],
//! [`query_each`], [`query_all`]), and `BatchGetItem` and `BatchWriteItem` with retry of
//! unprocessed keys and items ([`batch_get`], [`batch_write`]), a `TransactWriteItems` that
//! retries a conflict with backoff and tells it from a failed condition ([`transact`]), and what
//! a write costs ([`item_size`], [`write_units`], [`WriteUnits`]).

use super::attrs::{get_s, s, Item};
use super::backoff;
use crate::ports::{Page, StoreError};
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, TransactWriteItem, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Mutex;

/// Items one `BatchWriteItem` takes.
pub(crate) const BATCH_WRITE_ITEMS: usize = 25;

/// A failed request: the store is unavailable (worth retrying).
pub(crate) fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(&e).to_string())
}

/// A request the SDK refused to build.
pub(crate) fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Corrupt(format!("request could not be built: {e}"))
}

/// Whether `table` answers (`DescribeTable`).
pub(crate) async fn table_health(client: &Client, table: &str) -> Result<(), StoreError> {
    client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| StoreError::Unavailable(format!("table {table}: {}", DisplayErrorContext(&e))))
}

/// Feeds the pages of a query to `f`, in order, until `f` breaks or the pages run out.
pub(crate) async fn query_each<F>(query: QueryFluentBuilder, mut f: F) -> Result<(), StoreError>
where
    F: FnMut(Vec<Item>) -> Result<ControlFlow<()>, StoreError>,
{
    let mut start = None;
    loop {
        let out = query
            .clone()
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(unavailable)?;
        if f(out.items.unwrap_or_default())?.is_break() {
            return Ok(());
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            return Ok(());
        }
    }
}

/// Every item a query returns, following its pages.
pub(crate) async fn query_all(query: QueryFluentBuilder) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    query_each(query, |page| {
        items.extend(page);
        Ok(ControlFlow::Continue(()))
    })
    .await?;
    Ok(items)
}

/// The item with key `pk`, `sk` (a strongly consistent read).
pub(crate) async fn get_item(
    client: &Client,
    table: &str,
    pk: &str,
    sk: &str,
) -> Result<Option<Item>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .consistent_read(true)
        .send()
        .await
        .map_err(unavailable)?;
    Ok(out.item)
}

/// One page of a query (one request) whose position is a cursor made of key attributes, its
/// items read with `parse`. The
/// query starts after the item whose `cursor` attributes hold the `|`-separated values of
/// `after` (the `fixed` attributes, those the query pins, complete its key); the next cursor is
/// the same attributes of the last key read, `None` once the query is exhausted. A cursor of one
/// attribute is that attribute's value as it is.
pub(crate) async fn query_page<T>(
    mut query: QueryFluentBuilder,
    fixed: &[(&str, &str)],
    cursor: &[&str],
    after: Option<&str>,
    parse: impl Fn(&Item) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    if let Some(after) = after {
        let values: Vec<&str> = after.splitn(cursor.len(), '|').collect();
        if values.len() != cursor.len() {
            return Err(StoreError::Corrupt(format!("bad cursor {after:?}")));
        }
        for (name, value) in fixed.iter().copied().chain(cursor.iter().copied().zip(values)) {
            query = query.exclusive_start_key(name, s(value));
        }
    }
    let out = query.send().await.map_err(unavailable)?;
    let next = match out.last_evaluated_key() {
        None => None,
        Some(key) => Some(
            cursor
                .iter()
                .map(|name| get_s(key, name))
                .collect::<Result<Vec<_>, _>>()?
                .join("|"),
        ),
    };
    Ok(Page {
        items: out.items().iter().map(parse).collect::<Result<_, _>>()?,
        next,
    })
}

/// The items of `keys` in `table` (one `BatchGetItem`, at most 100 keys), requesting the
/// unprocessed keys again with backoff, at most `max_attempts` times; `what` names them in the
/// error if some stay unprocessed.
pub(crate) async fn batch_get(
    client: &Client,
    table: &str,
    keys: KeysAndAttributes,
    what: &str,
    max_attempts: u32,
) -> Result<Vec<Item>, StoreError> {
    let mut found = Vec::new();
    let mut pending = Some(keys);
    let mut attempt = 0;
    while let Some(request) = pending.take() {
        let out = client
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(unavailable)?;
        found.extend(
            out.responses
                .and_then(|mut r| r.remove(table))
                .unwrap_or_default(),
        );
        pending = out
            .unprocessed_keys
            .and_then(|mut u| u.remove(table))
            .filter(|k| !k.keys().is_empty());
        attempt += 1;
        if pending.is_some() {
            if attempt >= max_attempts {
                return Err(StoreError::Unavailable(format!("{what} left unprocessed")));
            }
            backoff(attempt).await;
        }
    }
    Ok(found)
}

/// Writes `requests` to `table`, [`BATCH_WRITE_ITEMS`] to a `BatchWriteItem`, sending the
/// unprocessed ones again with backoff, at most `max_attempts` times per batch; `what` names
/// them in the error if some stay unprocessed. Returns the number of requests sent.
pub(crate) async fn batch_write(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
    what: &str,
    max_attempts: u32,
) -> Result<u64, StoreError> {
    let mut calls = 0;
    for chunk in requests.chunks(BATCH_WRITE_ITEMS) {
        let mut pending = chunk.to_vec();
        let mut attempt = 0;
        while !pending.is_empty() {
            let out = client
                .batch_write_item()
                .request_items(table, pending.clone())
                .send()
                .await
                .map_err(unavailable)?;
            calls += 1;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .unwrap_or_default();
            attempt += 1;
            if !pending.is_empty() {
                if attempt >= max_attempts {
                    return Err(StoreError::Unavailable(format!("{what} left unprocessed")));
                }
                backoff(attempt).await;
            }
        }
    }
    Ok(calls)
}

/// The size DynamoDB bills an item at: each attribute's name (UTF-8 bytes) plus its value
/// (see [`value_size`]).
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, v)| name.len() + value_size(v)).sum()
}

/// The size of one attribute value as DynamoDB counts it: a string or binary its bytes; a number
/// about half its significant digits plus one byte (one more when negative); a boolean or null
/// one byte; a map or list 3 bytes, plus one byte per element and the elements (with a map's
/// names); a set its elements.
pub fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
        AttributeValue::Ns(ns) => ns.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(bs) => bs.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// A number's size: `ceil(significant digits / 2) + 1` bytes, one more when negative.
fn number_size(n: &str) -> usize {
    let mantissa = n.split(['e', 'E']).next().unwrap_or(n);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
    significant.div_ceil(2) + 1 + usize::from(n.starts_with('-'))
}

/// Write units of one item write of `bytes` bytes outside a transaction: 1 per started KB
/// (at least 1). A transactional write costs twice this (prepare and commit).
pub fn write_units(bytes: usize) -> u64 {
    bytes.div_ceil(1024).max(1) as u64
}

/// Write units spent, by table or index (`table` or `table/index`, logical names), as DynamoDB
/// bills them. Filled by the adapters from the items they write (see [`item_size`]), for
/// benchmarks and logs: the local endpoint reports no faithful consumed capacity.
#[derive(Debug, Default)]
pub struct WriteUnits {
    by_target: Mutex<BTreeMap<&'static str, u64>>,
}

impl WriteUnits {
    /// Adds `units` to `target`.
    pub fn add(&self, target: &'static str, units: u64) {
        let mut map = self.by_target.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(target).or_default() += units;
    }

    /// The units spent so far, by target.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.by_target.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Writes `items` in one `TransactWriteItems`: `None` if it committed, else which items'
/// conditions failed (at least one did). A cancellation in which no condition failed but another
/// request held an item (`TransactionConflict`) or a partition was throttled is DynamoDB asking
/// the caller to try again: it is sent again with backoff, up to `max_attempts` times, and then
/// is [`StoreError::Conflict`] (worth retrying later), never a failed condition: a conflict says
/// nothing about whether an item exists. A cancellation for any other reason is
/// [`StoreError::Unavailable`].
pub(crate) async fn transact(
    client: &Client,
    items: Vec<TransactWriteItem>,
    max_attempts: u32,
) -> Result<Option<Vec<bool>>, StoreError> {
    let mut attempt = 0;
    loop {
        let err = match client
            .transact_write_items()
            .set_transact_items(Some(items.clone()))
            .send()
            .await
        {
            Ok(_) => return Ok(None),
            Err(err) => err,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(tc)) = err.as_service_error() else {
            return Err(StoreError::Unavailable(DisplayErrorContext(&err).to_string()));
        };
        let reasons = tc.cancellation_reasons();
        let failed: Vec<bool> = reasons
            .iter()
            .map(|r| r.code() == Some("ConditionalCheckFailed"))
            .collect();
        if failed.contains(&true) {
            return Ok(Some(failed));
        }
        let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("?")).collect();
        if !reasons.iter().any(is_retryable_reason) {
            return Err(StoreError::Unavailable(format!(
                "transaction cancelled: {codes:?}"
            )));
        }
        attempt += 1;
        if attempt >= max_attempts {
            return Err(StoreError::Conflict(format!(
                "transaction still cancelled after {attempt} attempts: {codes:?}"
            )));
        }
        tracing::debug!(attempt, "transaction cancelled by a conflict; retrying");
        backoff(attempt.min(4)).await;
    }
}

/// A cancellation reason that asks for the same transaction again: another request held the
/// item, or its partition was throttled.
fn is_retryable_reason(r: &CancellationReason) -> bool {
    matches!(
        r.code(),
        Some("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded")
    )
}

#[cfg(test)]
mod tests;
