//! The [`RateStore`] on DynamoDB: one table keyed by `pk` (hash) and `sk` (range), both strings.
//!
//! - **History**: `pk` = the pair (`BTC/USD`), `sk` = `as_of` written with nanoseconds and a
//!   fixed width (`2026-11-24T12:00:00.000000000Z`), so that the string order of `sk` is the time
//!   order. Putting the same pair and `as_of` twice writes the same key: one item, the second
//!   replacing the first.
//! - **Latest**: `pk` = `latest`, `sk` = the pair, one item per pair, written with the condition
//!   that it is absent or its `sk_as_of` is not later than the new one. A rate stored late (an
//!   older `as_of` put after a newer one) lands in the history but never becomes the latest.
//!   Listing every latest rate is one query on the `latest` partition.
//!
//! Each item holds the whole [`ExchangeRate`]: `pair`, `rate` (a string, so the scale the
//! sources sent is kept), `as_of`, `sources` (a list), `stale`, `age_ms` (the age to the millisecond, as in JSON); the latest item also
//! `sk_as_of`, the history key of the rate it copies.
//!
//! [`RateStore::rate_at`] is one query: `pk = pair AND sk <= at`, newest first, limit 1.
//! [`RateStore::history`] queries `sk BETWEEN from AND to - 1ns`; its cursor is the `sk` of the
//! last rate returned (opaque to callers; the API wraps it again).

use super::attrs::{get_s, s, Item};
use super::dynamo::{query_all, query_page, table_health, unavailable};
use crate::domain::fx::{CurrencyPair, ExchangeRate};
use crate::ports::rates::{HistoryPage, RateStore};
use crate::ports::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use std::str::FromStr;

/// The partition of the latest-rate items.
pub const LATEST_PK: &str = "latest";

/// Largest page of [`RateStore::history`].
pub const MAX_HISTORY_PAGE: usize = 1000;

const KEY_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.9fZ";

/// The sort key of a rate in its pair's history: `as_of` in a fixed-width UTC form whose
/// string order is the time order (for years 0 to 9999).
pub fn as_of_key(t: DateTime<Utc>) -> String {
    t.format(KEY_FORMAT).to_string()
}

fn parse_key(k: &str) -> Option<DateTime<Utc>> {
    if k.len() != 30 {
        return None;
    }
    NaiveDateTime::parse_from_str(k, KEY_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

fn corrupt(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("stored rate is unreadable: {detail}"))
}

/// Exchange rates on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoRateStore {
    client: Client,
    table: String,
}

impl DynamoRateStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoRateStore {
        DynamoRateStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn attributes(rate: &ExchangeRate) -> Item {
        let mut item = Item::new();
        item.insert("pair".into(), s(rate.pair.to_string()));
        item.insert("rate".into(), s(rate.rate.to_string()));
        item.insert(
            "as_of".into(),
            s(rate.as_of.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        );
        item.insert(
            "sources".into(),
            AttributeValue::L(rate.sources.iter().map(s).collect()),
        );
        item.insert("stale".into(), AttributeValue::Bool(rate.stale));
        item.insert(
            "age_ms".into(),
            AttributeValue::N(rate.age.num_milliseconds().to_string()),
        );
        item
    }

    fn parse(item: &Item) -> Result<ExchangeRate, StoreError> {
        let text = |name: &str| get_s(item, name).map_err(corrupt);
        let pair = CurrencyPair::from_str(text("pair")?).map_err(corrupt)?;
        let rate = Decimal::from_str(text("rate")?).map_err(corrupt)?;
        if rate <= Decimal::ZERO {
            return Err(corrupt(format!("{pair}: rate {rate} is not positive")));
        }
        let as_of = DateTime::parse_from_rfc3339(text("as_of")?)
            .map_err(corrupt)?
            .with_timezone(&Utc);
        let sources = match item.get("sources") {
            Some(AttributeValue::L(l)) => l
                .iter()
                .map(|v| {
                    v.as_s()
                        .cloned()
                        .map_err(|_| corrupt("`sources` holds a non-string"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(corrupt("`sources` is missing")),
        };
        let stale = matches!(item.get("stale"), Some(AttributeValue::Bool(true)));
        let age = item
            .get("age_ms")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .map(TimeDelta::milliseconds)
            .unwrap_or_else(TimeDelta::zero);
        Ok(ExchangeRate {
            pair,
            rate,
            as_of,
            sources,
            stale,
            age,
        })
    }

    async fn put_history(&self, rate: &ExchangeRate) -> Result<(), StoreError> {
        let mut item = Self::attributes(rate);
        item.insert("pk".into(), s(rate.pair.to_string()));
        item.insert("sk".into(), s(as_of_key(rate.as_of)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Writes the latest item unless a later rate is already there. Returns whether it wrote.
    async fn put_latest(&self, rate: &ExchangeRate) -> Result<bool, StoreError> {
        let key = as_of_key(rate.as_of);
        let mut item = Self::attributes(rate);
        item.insert("pk".into(), s(LATEST_PK));
        item.insert("sk".into(), s(rate.pair.to_string()));
        item.insert("sk_as_of".into(), s(&key));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR sk_as_of <= :k")
            .expression_attribute_values(":k", s(key))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn get_latest(&self, pair: CurrencyPair) -> Result<Option<ExchangeRate>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(LATEST_PK))
            .key("sk", s(pair.to_string()))
            .send()
            .await
            .map_err(unavailable)?;
        out.item.as_ref().map(Self::parse).transpose()
    }

    async fn query_rate_at(
        &self,
        pair: CurrencyPair,
        at: DateTime<Utc>,
    ) -> Result<Option<ExchangeRate>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk <= :at")
            .expression_attribute_values(":pk", s(pair.to_string()))
            .expression_attribute_values(":at", s(as_of_key(at)))
            .scan_index_forward(false)
            .limit(1)
            .send()
            .await
            .map_err(unavailable)?;
        out.items().first().map(Self::parse).transpose()
    }

    async fn query_history(
        &self,
        pair: CurrencyPair,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let after = cursor
            .map(|c| {
                parse_key(c)
                    .map(|_| c.to_string())
                    .ok_or_else(|| StoreError::InvalidCursor(c.to_string()))
            })
            .transpose()?;
        let limit = limit.clamp(1, MAX_HISTORY_PAGE);
        if from >= to {
            return Ok(HistoryPage::default());
        }
        // `as_of < to` as an inclusive bound: keys have nanosecond resolution.
        let hi = as_of_key(to - TimeDelta::nanoseconds(1));
        let lo = as_of_key(from);
        let pk = pair.to_string();
        let mut rates = Vec::new();
        let mut start = after;
        // One more than the page, to know whether there is a next page. A query stops at 1 MB,
        // so keep going until the page is full or the range is exhausted.
        loop {
            let q = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":lo", s(&lo))
                .expression_attribute_values(":hi", s(&hi))
                .limit((limit + 1 - rates.len()) as i32);
            let page = query_page(q, &[("pk", &pk)], &["sk"], start.as_deref(), Self::parse).await?;
            rates.extend(page.items);
            start = page.next;
            if rates.len() > limit || start.is_none() {
                break;
            }
        }
        let next_cursor = if rates.len() > limit {
            rates.truncate(limit);
            rates.last().map(|r| as_of_key(r.as_of))
        } else {
            None
        };
        Ok(HistoryPage { rates, next_cursor })
    }

    async fn query_latest_all(&self) -> Result<Vec<ExchangeRate>, StoreError> {
        let items = query_all(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(LATEST_PK)),
        )
        .await?;
        let mut all = items.iter().map(Self::parse).collect::<Result<Vec<_>, _>>()?;
        // `sk` is the pair: already in pair order; sort anyway so the order does not depend on
        // the key encoding.
        all.sort_by_key(|r| r.pair.to_string());
        Ok(all)
    }

    /// Whether the table answers.
    pub async fn health(&self) -> Result<(), StoreError> {
        table_health(&self.client, &self.table).await
    }
}

impl RateStore for DynamoRateStore {
    fn latest(&self, pair: CurrencyPair) -> BoxFuture<'_, Result<Option<ExchangeRate>, StoreError>> {
        Box::pin(self.get_latest(pair))
    }

    fn rate_at(
        &self,
        pair: CurrencyPair,
        at: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Option<ExchangeRate>, StoreError>> {
        Box::pin(self.query_rate_at(pair, at))
    }

    fn put<'a>(&'a self, rate: &'a ExchangeRate) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if rate.rate <= Decimal::ZERO {
                return Err(StoreError::Unavailable(format!(
                    "refusing to store a non-positive rate for {}",
                    rate.pair
                )));
            }
            // History first: if the latest write fails the put is retried, and the history
            // write is idempotent. The reverse could leave a latest rate with no history.
            self.put_history(rate).await?;
            let became_latest = self.put_latest(rate).await?;
            if !became_latest {
                tracing::info!(pair = %rate.pair, as_of = %rate.as_of, "rate stored in history only: a later one is the latest");
            }
            Ok(())
        })
    }

    fn history<'a>(
        &'a self,
        pair: CurrencyPair,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        cursor: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, StoreError>> {
        Box::pin(self.query_history(pair, from, to, cursor, limit))
    }

    fn latest_all(&self) -> BoxFuture<'_, Result<Vec<ExchangeRate>, StoreError>> {
        Box::pin(self.query_latest_all())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_sort_like_times_and_parse_back() {
        let t = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let times = [
            t - TimeDelta::nanoseconds(1),
            t,
            t + TimeDelta::nanoseconds(1),
            t + TimeDelta::milliseconds(999),
            t + TimeDelta::seconds(1),
            t + TimeDelta::days(400),
        ];
        let keys: Vec<String> = times.iter().map(|&t| as_of_key(t)).collect();
        assert_eq!(keys[1], "2026-11-24T12:00:00.000000000Z");
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys);
        for (k, t) in keys.iter().zip(times) {
            assert_eq!(parse_key(k), Some(t));
        }
        assert_eq!(parse_key("2026-11-24T12:00:00Z"), None);
        assert_eq!(parse_key("latest"), None);
    }

    #[test]
    fn an_item_reads_back_as_the_rate_written() {
        let t = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let mut r = ExchangeRate::new(
            "EUR/BTC".parse().unwrap(),
            "0.0000108247422680412371134".parse().unwrap(),
            t + TimeDelta::nanoseconds(123),
            vec!["BTC/USD:kraken".into(), "EUR/USD:ecb".into()],
            t + TimeDelta::nanoseconds(123) + TimeDelta::seconds(3),
        )
        .unwrap();
        r.stale = true;
        assert_eq!(DynamoRateStore::parse(&DynamoRateStore::attributes(&r)), Ok(r));
        let mut bad = DynamoRateStore::attributes(
            &ExchangeRate::new("BTC/USD".parse().unwrap(), Decimal::ONE, t, vec![], t).unwrap(),
        );
        bad.insert("rate".into(), s("0"));
        assert!(DynamoRateStore::parse(&bad).is_err());
    }
}
