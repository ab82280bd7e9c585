//! [`CachedRates`]: a [`RateStore`] that keeps what it reads from another one for a TTL, so that a
//! warm invocation of a reading function (the API, the invoice close) does not read the rate
//! table for every conversion.
//!
//! - `latest` goes through [`RateCache`] (a missing rate is remembered too);
//! - `latest_all` keeps the whole listing, and fills the per-pair cache with it;
//! - `rate_at` keeps each `(pair, instant)` answer, at most [`MAX_RATE_AT_ENTRIES`] of them;
//! - `history` (paginated listings) is not cached;
//! - `put` writes through and forgets what it kept about the pair.
//!
//! A rate read here is therefore at most one TTL older than the table. Errors are never kept.

use crate::domain::fx::{Cached, CurrencyPair, ExchangeRate, RateCache};
use crate::ports::rates::{HistoryPage, RateStore};
use crate::ports::StoreError;
use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Most `rate_at` answers kept; past it, expired ones are dropped, then all of them.
pub const MAX_RATE_AT_ENTRIES: usize = 4096;

/// The time source, `Utc::now` unless a test sets another.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// A `rate_at` answer and when it was read.
type RateAtEntry = (DateTime<Utc>, Option<ExchangeRate>);

struct State {
    latest: RateCache,
    all: Option<(DateTime<Utc>, Vec<ExchangeRate>)>,
    at: HashMap<(CurrencyPair, DateTime<Utc>), RateAtEntry>,
}

/// Reads of `inner`, kept for `ttl`.
pub struct CachedRates<S> {
    inner: S,
    ttl: TimeDelta,
    clock: Clock,
    state: Mutex<State>,
}

fn fresh(loaded_at: DateTime<Utc>, now: DateTime<Utc>, ttl: TimeDelta) -> bool {
    now >= loaded_at && now - loaded_at < ttl
}

impl<S: RateStore> CachedRates<S> {
    pub fn new(inner: S, ttl: TimeDelta) -> CachedRates<S> {
        CachedRates::with_clock(inner, ttl, Arc::new(Utc::now))
    }

    pub fn with_clock(inner: S, ttl: TimeDelta, clock: Clock) -> CachedRates<S> {
        CachedRates {
            inner,
            ttl,
            clock,
            state: Mutex::new(State {
                latest: RateCache::new(ttl),
                all: None,
                at: HashMap::new(),
            }),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn ttl(&self) -> TimeDelta {
        self.ttl
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is a single insert or removal: a panic cannot leave it half done.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn cached_latest(&self, pair: CurrencyPair) -> Result<Option<ExchangeRate>, StoreError> {
        let now = (self.clock)();
        if let Cached::Hit(r) = self.state().latest.get(pair, now) {
            return Ok(r.cloned());
        }
        let rate = self.inner.latest(pair).await?;
        self.state().latest.insert(pair, rate.clone(), now);
        Ok(rate)
    }

    async fn cached_latest_all(&self) -> Result<Vec<ExchangeRate>, StoreError> {
        let now = (self.clock)();
        if let Some((loaded_at, all)) = &self.state().all {
            if fresh(*loaded_at, now, self.ttl) {
                return Ok(all.clone());
            }
        }
        let all = self.inner.latest_all().await?;
        let mut state = self.state();
        for r in &all {
            state.latest.insert(r.pair, Some(r.clone()), now);
        }
        state.all = Some((now, all.clone()));
        Ok(all)
    }

    async fn cached_rate_at(
        &self,
        pair: CurrencyPair,
        at: DateTime<Utc>,
    ) -> Result<Option<ExchangeRate>, StoreError> {
        let now = (self.clock)();
        if let Some((loaded_at, r)) = self.state().at.get(&(pair, at)) {
            if fresh(*loaded_at, now, self.ttl) {
                return Ok(r.clone());
            }
        }
        let rate = self.inner.rate_at(pair, at).await?;
        let mut state = self.state();
        if state.at.len() >= MAX_RATE_AT_ENTRIES {
            let ttl = self.ttl;
            state.at.retain(|_, (loaded_at, _)| fresh(*loaded_at, now, ttl));
            if state.at.len() >= MAX_RATE_AT_ENTRIES {
                state.at.clear();
            }
        }
        state.at.insert((pair, at), (now, rate.clone()));
        Ok(rate)
    }

    async fn put_through(&self, rate: &ExchangeRate) -> Result<(), StoreError> {
        self.inner.put(rate).await?;
        let mut state = self.state();
        state.latest.invalidate(rate.pair);
        state.all = None;
        state.at.retain(|(p, _), _| *p != rate.pair);
        Ok(())
    }
}

impl<S: RateStore> RateStore for CachedRates<S> {
    fn latest(&self, pair: CurrencyPair) -> BoxFuture<'_, Result<Option<ExchangeRate>, StoreError>> {
        Box::pin(self.cached_latest(pair))
    }

    fn rate_at(
        &self,
        pair: CurrencyPair,
        at: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Option<ExchangeRate>, StoreError>> {
        Box::pin(self.cached_rate_at(pair, at))
    }

    fn put<'a>(&'a self, rate: &'a ExchangeRate) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.put_through(rate))
    }

    fn history<'a>(
        &'a self,
        pair: CurrencyPair,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        cursor: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, StoreError>> {
        self.inner.history(pair, from, to, cursor, limit)
    }

    fn latest_all(&self) -> BoxFuture<'_, Result<Vec<ExchangeRate>, StoreError>> {
        Box::pin(self.cached_latest_all())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::InMemoryRateStore;
    use chrono::TimeZone;
    use rust_decimal::Decimal;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap() + TimeDelta::seconds(secs)
    }

    fn rate(pair: &str, r: i64, secs: i64) -> ExchangeRate {
        ExchangeRate::new(
            pair.parse().unwrap(),
            Decimal::from(r),
            t(secs),
            vec!["mock".into()],
            t(secs),
        )
        .unwrap()
    }

    /// An in-memory store that counts the reads that reach it.
    #[derive(Default)]
    struct Counting {
        store: InMemoryRateStore,
        reads: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
    }

    impl Counting {
        fn read(&self) -> Result<(), StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("down".into()));
            }
            Ok(())
        }
    }

    impl RateStore for Counting {
        fn latest(&self, pair: CurrencyPair) -> BoxFuture<'_, Result<Option<ExchangeRate>, StoreError>> {
            Box::pin(async move {
                self.read()?;
                self.store.latest(pair).await
            })
        }
        fn rate_at(
            &self,
            pair: CurrencyPair,
            at: DateTime<Utc>,
        ) -> BoxFuture<'_, Result<Option<ExchangeRate>, StoreError>> {
            Box::pin(async move {
                self.read()?;
                self.store.rate_at(pair, at).await
            })
        }
        fn put<'a>(&'a self, rate: &'a ExchangeRate) -> BoxFuture<'a, Result<(), StoreError>> {
            self.store.put(rate)
        }
        fn history<'a>(
            &'a self,
            pair: CurrencyPair,
            from: DateTime<Utc>,
            to: DateTime<Utc>,
            cursor: Option<&'a str>,
            limit: usize,
        ) -> BoxFuture<'a, Result<HistoryPage, StoreError>> {
            Box::pin(async move {
                self.read()?;
                self.store.history(pair, from, to, cursor, limit).await
            })
        }
        fn latest_all(&self) -> BoxFuture<'_, Result<Vec<ExchangeRate>, StoreError>> {
            Box::pin(async move {
                self.read()?;
                self.store.latest_all().await
            })
        }
    }

    fn cached(now: Arc<Mutex<DateTime<Utc>>>) -> CachedRates<Counting> {
        let clock: Clock = Arc::new(move || *now.lock().unwrap());
        CachedRates::with_clock(Counting::default(), TimeDelta::seconds(60), clock)
    }

    #[tokio::test]
    async fn a_warm_read_does_not_reach_the_inner_store() {
        let now = Arc::new(Mutex::new(t(0)));
        let rates = cached(now.clone());
        let btc = "BTC/USD".parse().unwrap();
        rates
            .inner()
            .store
            .put(&rate("BTC/USD", 97_000, 0))
            .await
            .unwrap();
        rates.inner().store.put(&rate("EUR/USD", 1, 0)).await.unwrap();
        let reads = || rates.inner().reads.load(Ordering::SeqCst);

        assert_eq!(
            rates.latest(btc).await.unwrap().unwrap().rate,
            Decimal::from(97_000)
        );
        assert_eq!(reads(), 1);
        // Another rate stored directly in the table is not seen until the TTL has passed.
        rates
            .inner()
            .store
            .put(&rate("BTC/USD", 98_000, 10))
            .await
            .unwrap();
        *now.lock().unwrap() = t(59);
        for _ in 0..10 {
            assert_eq!(
                rates.latest(btc).await.unwrap().unwrap().rate,
                Decimal::from(97_000)
            );
        }
        assert_eq!(reads(), 1);
        *now.lock().unwrap() = t(60);
        assert_eq!(
            rates.latest(btc).await.unwrap().unwrap().rate,
            Decimal::from(98_000)
        );
        assert_eq!(reads(), 2);

        // A pair with no rate is remembered as such.
        let gbp = "GBP/USD".parse().unwrap();
        assert_eq!(rates.latest(gbp).await.unwrap(), None);
        assert_eq!(rates.latest(gbp).await.unwrap(), None);
        assert_eq!(reads(), 3);

        // The listing is read once per TTL and serves the per-pair reads too.
        *now.lock().unwrap() = t(200);
        assert_eq!(rates.latest_all().await.unwrap().len(), 2);
        assert_eq!(rates.latest_all().await.unwrap().len(), 2);
        assert_eq!(
            rates.latest(btc).await.unwrap().unwrap().rate,
            Decimal::from(98_000)
        );
        assert_eq!(reads(), 4);

        // The rate in force at an instant, once per instant and TTL.
        let at = t(5);
        assert_eq!(
            rates.rate_at(btc, at).await.unwrap().unwrap().rate,
            Decimal::from(97_000)
        );
        assert_eq!(
            rates.rate_at(btc, at).await.unwrap().unwrap().rate,
            Decimal::from(97_000)
        );
        assert_eq!(reads(), 5);
        assert_eq!(
            rates.rate_at(btc, t(10)).await.unwrap().unwrap().rate,
            Decimal::from(98_000)
        );
        assert_eq!(reads(), 6);

        // History pages are not cached.
        rates.history(btc, t(0), t(100), None, 10).await.unwrap();
        rates.history(btc, t(0), t(100), None, 10).await.unwrap();
        assert_eq!(reads(), 8);
    }

    #[tokio::test]
    async fn a_put_through_the_cache_is_seen_at_once_and_errors_are_not_kept() {
        let now = Arc::new(Mutex::new(t(0)));
        let rates = cached(now.clone());
        let btc = "BTC/USD".parse().unwrap();
        rates.put(&rate("BTC/USD", 1, 0)).await.unwrap();
        assert_eq!(rates.latest(btc).await.unwrap().unwrap().rate, Decimal::ONE);
        assert_eq!(rates.latest_all().await.unwrap().len(), 1);
        assert_eq!(
            rates.rate_at(btc, t(1)).await.unwrap().unwrap().rate,
            Decimal::ONE
        );
        rates.put(&rate("BTC/USD", 2, 1)).await.unwrap();
        assert_eq!(rates.latest(btc).await.unwrap().unwrap().rate, Decimal::from(2));
        assert_eq!(rates.latest_all().await.unwrap()[0].rate, Decimal::from(2));
        assert_eq!(
            rates.rate_at(btc, t(1)).await.unwrap().unwrap().rate,
            Decimal::from(2)
        );

        rates.inner().fail.store(true, Ordering::SeqCst);
        let eth = "ETH/USD".parse().unwrap();
        assert!(rates.latest(eth).await.is_err());
        rates.inner().fail.store(false, Ordering::SeqCst);
        assert_eq!(rates.latest(eth).await.unwrap(), None);
    }
}
