//! Cross pairs: derived through the pivot from the legs a refresh just stored.

// Test code: a failed setup should stop the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use meterline_shared::adapters::memory::InMemoryRateStore;
use meterline_shared::domain::fx::{CurrencyPair, MockRates, Outcome};
use rate_refresh::{refresh_once, Config, MockSource, RateSource, RateStore};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::sync::Arc;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 15, 30, 0).unwrap()
}

fn pair(s: &str) -> CurrencyPair {
    s.parse().unwrap()
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn config(vars: &[(&str, &str)]) -> Config {
    let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

fn mock(rates: &[(&str, &str)]) -> Vec<Arc<dyn RateSource>> {
    vec![Arc::new(MockSource::new(MockRates::fixed(
        rates.iter().map(|(p, r)| (pair(p), d(r))),
    )))]
}

#[tokio::test]
async fn eur_btc_is_triangulated_through_usd_and_stored_with_its_legs() {
    let config = config(&[
        ("FX_PAIRS", "BTC/USD,EUR/USD,USD/JPY"),
        ("FX_CROSS_PAIRS", "EUR/BTC,JPY/BTC"),
    ]);
    let store = InMemoryRateStore::new();
    let sources = mock(&[("BTC/USD", "97000"), ("EUR/USD", "1.05"), ("USD/JPY", "150")]);
    let report = refresh_once(&sources, &store, &config, t0()).await.unwrap();
    assert_eq!(report.count(Outcome::Fresh), 5);
    // The cross pairs come after the pairs they are made of.
    assert_eq!(report.pairs[3].pair, pair("EUR/BTC"));

    let eur_btc = store.latest(pair("EUR/BTC")).await.unwrap().unwrap();
    assert_eq!(eur_btc.rate, d("1.05") / d("97000"));
    assert_eq!(eur_btc.as_of, t0());
    assert_eq!(eur_btc.sources, ["BTC/USD:mock", "EUR/USD:mock"]);
    assert!(!eur_btc.stale);
    // A leg given the other way round (USD/JPY) is divided, not inverted first.
    let jpy_btc = store.latest(pair("JPY/BTC")).await.unwrap().unwrap();
    assert_eq!(jpy_btc.rate, Decimal::ONE / (d("150") * d("97000")));
    assert_eq!(jpy_btc.sources, ["BTC/USD:mock", "USD/JPY:mock"]);
}

#[tokio::test]
async fn a_stale_leg_keeps_the_previous_cross_rate_stale_and_stores_nothing() {
    let config = config(&[("FX_PAIRS", "BTC/USD,EUR/USD"), ("FX_CROSS_PAIRS", "EUR/BTC")]);
    let store = InMemoryRateStore::new();

    // No cross rate can be made before the legs exist.
    let only_btc = mock(&[("BTC/USD", "97000")]);
    let report = refresh_once(&only_btc, &store, &config, t0()).await.unwrap();
    let cross = report.pairs.iter().find(|p| p.pair == pair("EUR/BTC")).unwrap();
    assert_eq!((cross.outcome, cross.rate.as_ref()), (Outcome::NoRate, None));

    let both = mock(&[("BTC/USD", "97000"), ("EUR/USD", "1.05")]);
    refresh_once(&both, &store, &config, t0() + TimeDelta::minutes(1))
        .await
        .unwrap();
    let first = store.latest(pair("EUR/BTC")).await.unwrap().unwrap();

    // EUR/USD gets no quote: its last rate is kept (stale), and so is the cross.
    let later = t0() + TimeDelta::minutes(6);
    let moved = mock(&[("BTC/USD", "98000")]);
    let report = refresh_once(&moved, &store, &config, later).await.unwrap();
    let cross = report.pairs.iter().find(|p| p.pair == pair("EUR/BTC")).unwrap();
    assert_eq!(cross.outcome, Outcome::KeptStale);
    let kept = cross.rate.as_ref().unwrap();
    assert!(kept.stale);
    assert_eq!(kept.rate, first.rate);
    assert_eq!(kept.age, TimeDelta::minutes(5));
    assert_eq!(store.latest(pair("EUR/BTC")).await.unwrap().unwrap(), first);
    let history = store
        .history(pair("EUR/BTC"), t0(), later + TimeDelta::seconds(1), None, 10)
        .await
        .unwrap();
    assert_eq!(history.rates.len(), 1);
    // The fresh leg was stored all the same.
    assert_eq!(
        store.latest(pair("BTC/USD")).await.unwrap().unwrap().rate,
        d("98000")
    );
}

#[tokio::test]
async fn the_cross_rate_is_as_old_as_its_oldest_leg() {
    // Two sources: BTC/USD quoted now, EUR/USD quoted 4 minutes ago (within the quote age limit).
    struct Delayed(MockRates, TimeDelta);
    impl RateSource for Delayed {
        fn name(&self) -> &str {
            "slow"
        }
        fn fetch<'a>(
            &'a self,
            pairs: &'a [CurrencyPair],
            now: DateTime<Utc>,
        ) -> futures::future::BoxFuture<'a, rate_refresh::SourceReport> {
            let quotes = pairs
                .iter()
                .filter_map(|&p| self.0.quote(p, now - self.1))
                .collect();
            Box::pin(async move {
                rate_refresh::SourceReport {
                    quotes,
                    errors: Vec::new(),
                }
            })
        }
    }
    let config = config(&[
        ("FX_PROVIDERS", "mock"),
        ("FX_PAIRS", "BTC/USD,EUR/USD"),
        ("FX_CROSS_PAIRS", "EUR/BTC"),
    ]);
    let sources: Vec<Arc<dyn RateSource>> = vec![
        Arc::new(Delayed(
            MockRates::fixed([(pair("EUR/USD"), d("1.05"))]),
            TimeDelta::minutes(4),
        )),
        Arc::new(MockSource::new(MockRates::fixed([(pair("BTC/USD"), d("97000"))]))),
    ];
    let store = InMemoryRateStore::new();
    let report = refresh_once(&sources, &store, &config, t0()).await.unwrap();
    let cross = report.pairs.iter().find(|p| p.pair == pair("EUR/BTC")).unwrap();
    let rate = cross.rate.as_ref().unwrap();
    assert_eq!(cross.outcome, Outcome::Fresh);
    assert_eq!(rate.as_of, t0() - TimeDelta::minutes(4));
    assert_eq!(rate.age, TimeDelta::minutes(4));
    assert_eq!(
        store.latest(pair("EUR/BTC")).await.unwrap().unwrap().as_of,
        rate.as_of
    );
}
