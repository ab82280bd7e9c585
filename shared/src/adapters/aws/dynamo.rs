//! What every DynamoDB adapter does the same way: the error mapping, the health check, a
//! consistent `GetItem` ([`get_item`]), the page-and-cursor loop of a `Query` ([`query_page`],
//! [`query_each`], [`query_all`]), and `BatchGetItem` and `BatchWriteItem` with retry of
//! unprocessed keys and items ([`batch_get`], [`batch_write`]), and a `TransactWriteItems` that
//! retries a conflict with backoff and tells it from a failed condition ([`transact`]).

use super::attrs::{get_s, s, Item};
use super::backoff;
use crate::ports::{Page, StoreError};
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{CancellationReason, KeysAndAttributes, TransactWriteItem, WriteRequest};
use aws_sdk_dynamodb::Client;
use std::ops::ControlFlow;

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
