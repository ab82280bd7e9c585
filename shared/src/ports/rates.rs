//! Where exchange rates are kept: the [`RateStore`] port.
//!
//! The store keeps, per pair, the latest rate and the history of every rate put. The
//! rate-refresh function writes it; the API and the invoice close read it (the close through
//! [`RateStore::rate_at`], the rate in force at a documented instant).

use crate::domain::fx::{CurrencyPair, ExchangeRate};
use crate::ports::StoreError;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// One page of a pair's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryPage {
    pub rates: Vec<ExchangeRate>,
    /// Pass back to get the next page; `None` on the last page. Opaque to callers.
    pub next_cursor: Option<String>,
}

/// Rates by pair: the latest, and the history by `as_of`.
pub trait RateStore: Send + Sync {
    /// The latest rate for `pair` (the one with the greatest `as_of`).
    fn latest(&self, pair: CurrencyPair) -> BoxFuture<'_, Result<Option<ExchangeRate>, StoreError>>;

    /// The rate in force at `at`: the one with the greatest `as_of <= at`.
    fn rate_at(
        &self,
        pair: CurrencyPair,
        at: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Option<ExchangeRate>, StoreError>>;

    /// Appends `rate` to its pair's history (a second put with the same pair and `as_of`
    /// replaces the first) and makes it the latest unless a later one is stored.
    fn put<'a>(&'a self, rate: &'a ExchangeRate) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Rates with `from <= as_of < to`, oldest first, at most `limit` per page.
    fn history<'a>(
        &'a self,
        pair: CurrencyPair,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        cursor: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, StoreError>>;

    /// The latest rate of every pair that has one, ordered by pair (`BTC/USD` before `EUR/USD`).
    fn latest_all(&self) -> BoxFuture<'_, Result<Vec<ExchangeRate>, StoreError>>;
}
