//! A small TTL cache of rates for reading functions, so that a warm invocation does not read
//! the rate table for every conversion. Pure: every call takes `now`.

use super::{CurrencyPair, ExchangeRate};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;

#[derive(Debug, Clone)]
struct Entry {
    /// `None` remembers that the table had no rate, so a missing pair is not read every time.
    rate: Option<ExchangeRate>,
    loaded_at: DateTime<Utc>,
}

/// Rates by pair, each kept for `ttl` after it was loaded.
#[derive(Debug, Clone)]
pub struct RateCache {
    ttl: TimeDelta,
    entries: HashMap<CurrencyPair, Entry>,
}

/// The cache's answer for a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached<'a> {
    /// Loaded within the TTL: the rate, or `None` if the table had none.
    Hit(Option<&'a ExchangeRate>),
    /// Never loaded, or loaded too long ago: read the table and [`RateCache::insert`].
    Miss,
}

impl RateCache {
    pub fn new(ttl: TimeDelta) -> RateCache {
        RateCache {
            ttl,
            entries: HashMap::new(),
        }
    }

    pub fn ttl(&self) -> TimeDelta {
        self.ttl
    }

    /// The entry for `pair` if it was loaded less than the TTL before `now`. An entry "loaded"
    /// in the future (the clock went back) is treated as expired.
    pub fn get(&self, pair: CurrencyPair, now: DateTime<Utc>) -> Cached<'_> {
        match self.entries.get(&pair) {
            Some(e) if now >= e.loaded_at && now - e.loaded_at < self.ttl => Cached::Hit(e.rate.as_ref()),
            _ => Cached::Miss,
        }
    }

    /// Records what the table said for `pair` at `now` (`None`: no rate).
    pub fn insert(&mut self, pair: CurrencyPair, rate: Option<ExchangeRate>, now: DateTime<Utc>) {
        self.entries.insert(pair, Entry { rate, loaded_at: now });
    }

    /// The cached rate, or the one `load` reads (then cached). `load` runs only on a miss.
    pub fn get_or_load<E>(
        &mut self,
        pair: CurrencyPair,
        now: DateTime<Utc>,
        load: impl FnOnce(CurrencyPair) -> Result<Option<ExchangeRate>, E>,
    ) -> Result<Option<ExchangeRate>, E> {
        if let Cached::Hit(r) = self.get(pair, now) {
            return Ok(r.cloned());
        }
        let rate = load(pair)?;
        self.insert(pair, rate.clone(), now);
        Ok(rate)
    }

    pub fn invalidate(&mut self, pair: CurrencyPair) {
        self.entries.remove(&pair);
    }

    /// Drops the expired entries.
    pub fn purge(&mut self, now: DateTime<Utc>) {
        let ttl = self.ttl;
        self.entries
            .retain(|_, e| now >= e.loaded_at && now - e.loaded_at < ttl);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rust_decimal::Decimal;
    use std::cell::Cell;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap() + TimeDelta::seconds(secs)
    }

    fn btc_usd() -> CurrencyPair {
        "BTC/USD".parse().unwrap()
    }

    fn rate(r: i64) -> ExchangeRate {
        ExchangeRate::new(btc_usd(), Decimal::from(r), t(0), vec!["mock".into()], t(0)).unwrap()
    }

    #[test]
    fn loads_once_per_ttl() {
        let mut cache = RateCache::new(TimeDelta::seconds(60));
        let reads = Cell::new(0);
        let load = |r: i64| {
            let reads = &reads;
            move |_| {
                reads.set(reads.get() + 1);
                Ok::<_, ()>(Some(rate(r)))
            }
        };
        assert_eq!(
            cache.get_or_load(btc_usd(), t(0), load(1)).unwrap().unwrap().rate,
            Decimal::from(1)
        );
        assert_eq!(
            cache
                .get_or_load(btc_usd(), t(59), load(2))
                .unwrap()
                .unwrap()
                .rate,
            Decimal::from(1)
        );
        assert_eq!(reads.get(), 1);
        assert_eq!(
            cache
                .get_or_load(btc_usd(), t(60), load(3))
                .unwrap()
                .unwrap()
                .rate,
            Decimal::from(3)
        );
        assert_eq!(reads.get(), 2);
        // The clock went back: reload rather than trust the entry.
        assert_eq!(cache.get(btc_usd(), t(10)), Cached::Miss);
    }

    #[test]
    fn remembers_a_missing_rate_and_does_not_cache_errors() {
        let mut cache = RateCache::new(TimeDelta::seconds(60));
        assert_eq!(cache.get(btc_usd(), t(0)), Cached::Miss);
        assert_eq!(
            cache.get_or_load(btc_usd(), t(0), |_| Err::<Option<ExchangeRate>, _>("down")),
            Err("down")
        );
        assert_eq!(cache.get(btc_usd(), t(0)), Cached::Miss);
        cache.insert(btc_usd(), None, t(0));
        assert_eq!(cache.get(btc_usd(), t(1)), Cached::Hit(None));
        cache.insert(btc_usd(), Some(rate(5)), t(2));
        assert!(matches!(cache.get(btc_usd(), t(3)), Cached::Hit(Some(_))));
        cache.purge(t(100));
        assert!(cache.is_empty());
        cache.insert(btc_usd(), None, t(0));
        cache.invalidate(btc_usd());
        assert_eq!(cache.len(), 0);
    }
}
