//! The [`RateStore`] in process memory.

use crate::domain::fx::{CurrencyPair, ExchangeRate};
use crate::ports::rates::{HistoryPage, RateStore};
use crate::ports::StoreError;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// A store in process memory, for tests (the functions use `adapters::aws::DynamoRateStore`).
#[derive(Debug, Default)]
pub struct InMemoryRateStore {
    rates: Mutex<HashMap<CurrencyPair, BTreeMap<DateTime<Utc>, ExchangeRate>>>,
}

impl InMemoryRateStore {
    pub fn new() -> InMemoryRateStore {
        InMemoryRateStore::default()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<CurrencyPair, BTreeMap<DateTime<Utc>, ExchangeRate>>> {
        // A panic while holding the lock cannot leave the maps half-updated: each update is one
        // insert.
        self.rates.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RateStore for InMemoryRateStore {
    fn latest(&self, pair: CurrencyPair) -> BoxFuture<'_, Result<Option<ExchangeRate>, StoreError>> {
        let r = self
            .lock()
            .get(&pair)
            .and_then(|h| h.values().next_back().cloned());
        Box::pin(async move { Ok(r) })
    }

    fn rate_at(
        &self,
        pair: CurrencyPair,
        at: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Option<ExchangeRate>, StoreError>> {
        let r = self
            .lock()
            .get(&pair)
            .and_then(|h| h.range(..=at).next_back().map(|(_, r)| r.clone()));
        Box::pin(async move { Ok(r) })
    }

    fn put<'a>(&'a self, rate: &'a ExchangeRate) -> BoxFuture<'a, Result<(), StoreError>> {
        self.lock()
            .entry(rate.pair)
            .or_default()
            .insert(rate.as_of, rate.clone());
        Box::pin(async { Ok(()) })
    }

    fn history<'a>(
        &'a self,
        pair: CurrencyPair,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        cursor: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, StoreError>> {
        let result = (|| {
            let after = match cursor {
                None => None,
                Some(c) => Some(
                    DateTime::parse_from_rfc3339(c)
                        .map_err(|_| StoreError::InvalidCursor(c.to_string()))?
                        .with_timezone(&Utc),
                ),
            };
            let limit = limit.max(1);
            let guard = self.lock();
            let Some(h) = guard.get(&pair) else {
                return Ok(HistoryPage::default());
            };
            let mut rates: Vec<ExchangeRate> = h
                .range(from..to.max(from))
                .filter(|(t, _)| after.is_none_or(|a| **t > a))
                .take(limit + 1)
                .map(|(_, r)| r.clone())
                .collect();
            let next_cursor = if rates.len() > limit {
                rates.truncate(limit);
                rates.last().map(|r| r.as_of.to_rfc3339())
            } else {
                None
            };
            Ok(HistoryPage { rates, next_cursor })
        })();
        Box::pin(async move { result })
    }

    fn latest_all(&self) -> BoxFuture<'_, Result<Vec<ExchangeRate>, StoreError>> {
        let mut all: Vec<ExchangeRate> = self
            .lock()
            .values()
            .filter_map(|h| h.values().next_back().cloned())
            .collect();
        all.sort_by_key(|r| r.pair.to_string());
        Box::pin(async move { Ok(all) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};
    use rust_decimal::Decimal;

    fn t(mins: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap() + TimeDelta::minutes(mins)
    }

    fn rate(pair: &str, r: i64, mins: i64) -> ExchangeRate {
        ExchangeRate::new(
            pair.parse().unwrap(),
            Decimal::from(r),
            t(mins),
            vec!["mock".into()],
            t(mins),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn latest_is_the_greatest_as_of_and_history_pages() {
        let store = InMemoryRateStore::new();
        let btc = "BTC/USD".parse().unwrap();
        assert_eq!(store.latest(btc).await.unwrap(), None);
        for (r, m) in [(3, 3), (1, 1), (2, 2), (4, 4), (5, 5)] {
            store.put(&rate("BTC/USD", r, m)).await.unwrap();
        }
        store.put(&rate("ETH/USD", 9, 9)).await.unwrap();
        assert_eq!(store.latest(btc).await.unwrap().unwrap().rate, Decimal::from(5));
        let all = store.latest_all().await.unwrap();
        assert_eq!(
            all.iter()
                .map(|r| (r.pair.to_string(), r.rate))
                .collect::<Vec<_>>(),
            [
                ("BTC/USD".to_string(), Decimal::from(5)),
                ("ETH/USD".to_string(), Decimal::from(9))
            ]
        );
        // An older rate put later does not become the latest.
        store.put(&rate("BTC/USD", 7, 0)).await.unwrap();
        assert_eq!(store.latest(btc).await.unwrap().unwrap().rate, Decimal::from(5));
        // The rate in force at an instant is the last one at or before it.
        assert_eq!(
            store.rate_at(btc, t(3)).await.unwrap().unwrap().rate,
            Decimal::from(3)
        );
        assert_eq!(store.rate_at(btc, t(-1)).await.unwrap(), None);

        let p1 = store.history(btc, t(1), t(5), None, 2).await.unwrap();
        assert_eq!(
            p1.rates.iter().map(|r| r.rate).collect::<Vec<_>>(),
            [1, 2].map(Decimal::from)
        );
        let c = p1.next_cursor.unwrap();
        let p2 = store.history(btc, t(1), t(5), Some(&c), 2).await.unwrap();
        assert_eq!(
            p2.rates.iter().map(|r| r.rate).collect::<Vec<_>>(),
            [3, 4].map(Decimal::from)
        );
        assert_eq!(p2.next_cursor, None);
        assert!(matches!(
            store.history(btc, t(1), t(5), Some("nope"), 2).await,
            Err(StoreError::InvalidCursor(_))
        ));
        assert!(store
            .history(btc, t(5), t(1), None, 2)
            .await
            .unwrap()
            .rates
            .is_empty());
    }
}
