//! `refresh_once` against a local server serving the providers' documented payload shapes.

// Test code: a failed setup should stop the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use common::{Answer, Server};
use meterline_shared::adapters::memory::InMemoryRateStore;
use meterline_shared::domain::fx::{CurrencyPair, Outcome, RejectReason, SourceError};
use rate_refresh::{
    refresh_once, sources_from_config, Config, FetchError, PairReport, RateStore, RefreshReport,
};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const COINBASE_BTC: &str = include_str!("../../../shared/src/domain/fx/fixtures/coinbase_btc.json");
const COINBASE_ERROR: &str =
    include_str!("../../../shared/src/domain/fx/fixtures/coinbase_error_invalid_currency.json");
const KRAKEN_XBTUSD: &str = include_str!("../../../shared/src/domain/fx/fixtures/kraken_xbtusd.json");
const KRAKEN_ERROR: &str =
    include_str!("../../../shared/src/domain/fx/fixtures/kraken_error_unknown_pair.json");
const BINANCE_BTCUSDT: &str = include_str!("../../../shared/src/domain/fx/fixtures/binance_btcusdt.json");
const BINANCE_ERROR: &str =
    include_str!("../../../shared/src/domain/fx/fixtures/binance_error_invalid_symbol.json");
const ECB_DAILY: &str = include_str!("../../../shared/src/domain/fx/fixtures/ecb_daily.xml");
const HTML_PAGE: &str = include_str!("../../../shared/src/domain/fx/fixtures/cdn_error.html");

const COINBASE_BTC_PATH: &str = "/v2/exchange-rates?currency=BTC";
const COINBASE_EUR_PATH: &str = "/v2/exchange-rates?currency=EUR";
const KRAKEN_BTC_PATH: &str = "/0/public/Ticker?pair=XBTUSD";
const KRAKEN_EUR_PATH: &str = "/0/public/Ticker?pair=EURUSD";
const BINANCE_BTC_PATH: &str = "/api/v3/ticker/price?symbol=BTCUSDT";
const BINANCE_EUR_PATH: &str = "/api/v3/ticker/price?symbol=EURUSDT";
const ECB_PATH: &str = "/stats/eurofxref/eurofxref-daily.xml";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 15, 30, 0).unwrap()
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn pair(s: &str) -> CurrencyPair {
    s.parse().unwrap()
}

/// Every provider answering normally for BTC/USD and EUR/USD.
fn serve_all(server: &Server) {
    server.route(COINBASE_BTC_PATH, Answer::json(200, COINBASE_BTC));
    server.route(
        COINBASE_EUR_PATH,
        Answer::json(
            200,
            r#"{"data":{"currency":"EUR","rates":{"USD":"1.0515","GBP":"0.8341"}}}"#,
        ),
    );
    server.route(KRAKEN_BTC_PATH, Answer::json(200, KRAKEN_XBTUSD));
    server.route(
        KRAKEN_EUR_PATH,
        Answer::json(
            200,
            r#"{"error":[],"result":{"ZEURZUSD":{"a":["1.05140","100","100.000"],"b":["1.05120","50","50.000"],"c":["1.05130","10.0"]}}}"#,
        ),
    );
    server.route(BINANCE_BTC_PATH, Answer::json(200, BINANCE_BTCUSDT));
    server.route(
        BINANCE_EUR_PATH,
        Answer::json(200, r#"{"symbol":"EURUSDT","price":"1.05100000"}"#),
    );
    server.route(ECB_PATH, Answer::xml(ECB_DAILY));
}

fn config_with(server: &Server, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = [
        ("FX_PROVIDERS", "coinbase,kraken,binance,ecb"),
        ("FX_PAIRS", "BTC/USD,EUR/USD"),
        ("FX_QUORUM", "2"),
        ("FX_TIMEOUT_MS", "300"),
        ("FX_BINANCE_USDT_AS_USD", "true"),
        ("FX_COINBASE_BASE_URL", &server.base_url),
        ("FX_KRAKEN_BASE_URL", &server.base_url),
        ("FX_BINANCE_BASE_URL", &server.base_url),
        ("FX_ECB_BASE_URL", &server.base_url),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    Config::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

async fn run(config: &Config, store: &InMemoryRateStore, at: DateTime<Utc>) -> RefreshReport {
    let sources = sources_from_config(config).unwrap();
    refresh_once(&sources, store, config, at).await.unwrap()
}

fn report_for<'a>(report: &'a RefreshReport, p: &str) -> &'a PairReport {
    report.pairs.iter().find(|r| r.pair == pair(p)).unwrap()
}

fn failure<'a>(report: &'a PairReport, source: &str) -> &'a FetchError {
    &report
        .failures
        .iter()
        .find(|f| f.source == source)
        .unwrap_or_else(|| panic!("{source}: {report:?}"))
        .error
        .error
}

#[tokio::test]
async fn every_provider_answers_and_the_median_is_stored() {
    let server = Server::start().await;
    serve_all(&server);
    let store = InMemoryRateStore::new();
    let report = run(&config_with(&server, &[]), &store, now()).await;

    let btc = report_for(&report, "BTC/USD");
    assert_eq!(btc.outcome, Outcome::Fresh, "{btc:?}");
    let rate = btc.rate.as_ref().unwrap();
    // Coinbase 96987.505, Kraken mid 96990.05, Binance 96987.50.
    assert_eq!(rate.rate, d("96987.505"));
    assert_eq!(rate.sources, ["binance", "coinbase", "kraken"]);
    assert_eq!(rate.as_of, now());
    assert!(!rate.stale);
    // The ECB has no bitcoin: a failure for that pair, not for the refresh.
    assert!(matches!(
        failure(btc, "ecb"),
        FetchError::Source(SourceError::UnknownPair { .. })
    ));

    let eur = report_for(&report, "EUR/USD");
    assert_eq!(eur.outcome, Outcome::Fresh, "{eur:?}");
    let rate = eur.rate.as_ref().unwrap();
    // 1.0510, 1.0512 (ECB), 1.0513 (Kraken mid), 1.0515: the mean of the middle two.
    assert_eq!(rate.rate, d("1.05125"));
    assert_eq!(rate.sources, ["binance", "coinbase", "ecb", "kraken"]);
    // The ECB quote is as of its publication (16:00 CET); the others are newer.
    assert_eq!(rate.as_of, now());
    assert!(eur.failures.is_empty() && eur.rejected.is_empty());

    assert_eq!(
        store.latest(pair("BTC/USD")).await.unwrap().unwrap().rate,
        d("96987.505")
    );
    let history = store.history(
        pair("EUR/USD"),
        now() - TimeDelta::hours(1),
        now() + TimeDelta::seconds(1),
        None,
        10,
    );
    assert_eq!(history.await.unwrap().rates.len(), 1);
    // One request per provider and pair, the ECB document once for both pairs.
    assert_eq!(server.hits(), 7);
}

#[tokio::test]
async fn provider_error_bodies_are_reported_per_source() {
    let server = Server::start().await;
    serve_all(&server);
    server.route(COINBASE_EUR_PATH, Answer::json(400, COINBASE_ERROR));
    server.route(KRAKEN_EUR_PATH, Answer::json(200, KRAKEN_ERROR));
    server.route(BINANCE_EUR_PATH, Answer::json(400, BINANCE_ERROR));
    let store = InMemoryRateStore::new();
    let report = run(&config_with(&server, &[]), &store, now()).await;

    let eur = report_for(&report, "EUR/USD");
    for source in ["coinbase", "kraken", "binance"] {
        assert!(
            matches!(
                failure(eur, source),
                FetchError::Source(SourceError::UnknownPair { .. })
            ),
            "{source}: {eur:?}"
        );
    }
    // Only the ECB is left: below the quorum of two, and nothing to keep.
    assert_eq!(eur.outcome, Outcome::NoRate);
    assert!(eur.rate.is_none());
    assert_eq!(store.latest(pair("EUR/USD")).await.unwrap(), None);
    assert_eq!(report_for(&report, "BTC/USD").outcome, Outcome::Fresh);
}

#[tokio::test]
async fn an_html_page_with_status_200_is_a_failure_not_a_quote() {
    let server = Server::start().await;
    serve_all(&server);
    server.route(COINBASE_BTC_PATH, Answer::html(200, HTML_PAGE));
    server.route(ECB_PATH, Answer::html(200, HTML_PAGE));
    let report = run(&config_with(&server, &[]), &InMemoryRateStore::new(), now()).await;

    let btc = report_for(&report, "BTC/USD");
    assert_eq!(
        failure(btc, "coinbase"),
        &FetchError::Source(SourceError::Html { status: 200 })
    );
    assert_eq!(btc.outcome, Outcome::Fresh);
    assert_eq!(btc.rate.as_ref().unwrap().sources, ["binance", "kraken"]);
    let eur = report_for(&report, "EUR/USD");
    assert_eq!(
        failure(eur, "ecb"),
        &FetchError::Source(SourceError::Html { status: 200 })
    );
}

#[tokio::test]
async fn a_provider_slower_than_the_timeout_is_abandoned_without_delaying_the_others() {
    let server = Server::start().await;
    serve_all(&server);
    server.route(
        KRAKEN_BTC_PATH,
        Answer::json(200, KRAKEN_XBTUSD).delayed(Duration::from_secs(3)),
    );
    let started = Instant::now();
    let report = run(&config_with(&server, &[]), &InMemoryRateStore::new(), now()).await;
    let elapsed = started.elapsed();

    let btc = report_for(&report, "BTC/USD");
    assert_eq!(failure(btc, "kraken"), &FetchError::Timeout);
    assert_eq!(btc.outcome, Outcome::Fresh);
    assert_eq!(btc.rate.as_ref().unwrap().sources, ["binance", "coinbase"]);
    // Concurrent fetches: the refresh takes about one timeout (300 ms), not the sleep.
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
}

#[tokio::test]
async fn malformed_numbers_truncated_bodies_and_halted_markets_are_refused() {
    let server = Server::start().await;
    serve_all(&server);
    server.route(
        BINANCE_BTC_PATH,
        Answer::json(200, r#"{"symbol":"BTCUSDT","price":"96,987.5"}"#),
    );
    server.route(COINBASE_BTC_PATH, Answer::json(200, &COINBASE_BTC[..50]));
    server.route(
        BINANCE_EUR_PATH,
        Answer::json(200, r#"{"symbol":"EURUSDT","price":"0.00000000"}"#),
    );
    let report = run(&config_with(&server, &[]), &InMemoryRateStore::new(), now()).await;

    let btc = report_for(&report, "BTC/USD");
    assert!(matches!(
        failure(btc, "binance"),
        FetchError::Source(SourceError::MalformedNumber { .. })
    ));
    assert!(matches!(
        failure(btc, "coinbase"),
        FetchError::Source(SourceError::Truncated(_))
    ));
    // Kraken alone is below the quorum.
    assert_eq!(btc.outcome, Outcome::NoRate);
    let eur = report_for(&report, "EUR/USD");
    assert!(matches!(
        failure(eur, "binance"),
        FetchError::Source(SourceError::NonPositiveRate { .. })
    ));
    assert_eq!(eur.outcome, Outcome::Fresh);
}

#[tokio::test]
async fn a_venue_five_percent_off_is_rejected_and_reported() {
    let server = Server::start().await;
    serve_all(&server);
    server.route(
        BINANCE_BTC_PATH,
        Answer::json(200, r#"{"symbol":"BTCUSDT","price":"101836.88000000"}"#),
    );
    let store = InMemoryRateStore::new();
    let report = run(&config_with(&server, &[]), &store, now()).await;

    let btc = report_for(&report, "BTC/USD");
    assert_eq!(btc.outcome, Outcome::Fresh);
    let rate = btc.rate.as_ref().unwrap();
    assert_eq!(rate.sources, ["coinbase", "kraken"]);
    assert_eq!(rate.rate, (d("96987.505") + d("96990.05")) / Decimal::TWO);
    assert_eq!(btc.rejected.len(), 1);
    assert_eq!(btc.rejected[0].quote.source, "binance");
    assert!(matches!(btc.rejected[0].reason, RejectReason::Outlier { .. }));
    // The rejection is in the structured report for the log.
    let json = serde_json::to_value(btc).unwrap();
    assert_eq!(json["rejected"][0]["reason"], "outlier");
}

#[tokio::test]
async fn quotes_from_a_skewed_clock_are_ignored() {
    let server = Server::start().await;
    serve_all(&server);
    let ten_minutes_ago = (now() - TimeDelta::minutes(10))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    server.route(
        KRAKEN_BTC_PATH,
        Answer::json(200, KRAKEN_XBTUSD).dated(ten_minutes_ago),
    );
    let in_a_second = (now() + TimeDelta::seconds(1))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    server.route(
        COINBASE_BTC_PATH,
        Answer::json(200, COINBASE_BTC).dated(in_a_second),
    );
    let report = run(&config_with(&server, &[]), &InMemoryRateStore::new(), now()).await;

    let btc = report_for(&report, "BTC/USD");
    assert_eq!(btc.rejected.len(), 1, "{btc:?}");
    assert_eq!(btc.rejected[0].quote.source, "kraken");
    assert_eq!(
        btc.rejected[0].reason,
        RejectReason::TooOld {
            age: TimeDelta::minutes(10)
        }
    );
    // A second of skew is within the limit; the rate is as of the latest quote time, capped at now.
    let rate = btc.rate.as_ref().unwrap();
    assert_eq!(rate.sources, ["binance", "coinbase"]);
    assert_eq!(rate.as_of, now());
}

#[tokio::test]
async fn when_every_provider_is_down_the_last_good_rate_is_kept_and_marked_stale() {
    let server = Server::start().await;
    serve_all(&server);
    let store = InMemoryRateStore::new();
    let config = config_with(&server, &[]);
    let first = run(&config, &store, now()).await;
    assert_eq!(first.count(Outcome::Fresh), 2);

    server.clear();
    server.route(COINBASE_BTC_PATH, Answer::json(503, ""));
    server.route(COINBASE_EUR_PATH, Answer::html(502, HTML_PAGE));
    server.route(
        KRAKEN_BTC_PATH,
        Answer::json(200, r#"{"error":["EService:Unavailable"]}"#),
    );
    server.route(
        KRAKEN_EUR_PATH,
        Answer::json(200, r#"{"error":["EService:Busy"]}"#),
    );
    server.route(
        BINANCE_BTC_PATH,
        Answer::json(429, r#"{"code":-1003,"msg":"Too many requests."}"#),
    );
    server.route(
        BINANCE_EUR_PATH,
        Answer::json(418, r#"{"code":-1003,"msg":"Way too many requests."}"#),
    );
    // ECB: nothing routed, 404.
    let later = now() + TimeDelta::minutes(10);
    let second = run(&config, &store, later).await;

    for p in ["BTC/USD", "EUR/USD"] {
        let r = report_for(&second, p);
        assert_eq!(r.outcome, Outcome::KeptStale, "{r:?}");
        let kept = r.rate.as_ref().unwrap();
        assert!(kept.stale);
        assert_eq!(kept.as_of, now());
        assert_eq!(kept.age, TimeDelta::minutes(10));
        assert_eq!(r.failures.len(), 4, "{r:?}");
        // The store is not written: the latest is still the good rate, once in the history.
        let latest = store.latest(pair(p)).await.unwrap().unwrap();
        assert_eq!(latest.as_of, now());
        assert!(!latest.stale);
        let history = store
            .history(pair(p), now() - TimeDelta::hours(1), later, None, 10)
            .await
            .unwrap();
        assert_eq!(history.rates.len(), 1);
    }
    let btc = report_for(&second, "BTC/USD");
    assert_eq!(
        failure(btc, "coinbase"),
        &FetchError::Source(SourceError::Unavailable { status: 503 })
    );
    assert_eq!(
        failure(btc, "binance"),
        &FetchError::Source(SourceError::RateLimited { status: 429 })
    );
    assert!(matches!(
        failure(btc, "kraken"),
        FetchError::Source(SourceError::Provider { .. })
    ));
    let eur = report_for(&second, "EUR/USD");
    assert_eq!(
        failure(eur, "binance"),
        &FetchError::Source(SourceError::RateLimited { status: 418 })
    );
    assert_eq!(
        failure(eur, "coinbase"),
        &FetchError::Source(SourceError::Unavailable { status: 502 })
    );
    assert!(matches!(
        failure(eur, "ecb"),
        FetchError::Source(SourceError::Status { status: 404, .. })
    ));
}

#[tokio::test]
async fn an_unreachable_provider_is_a_transport_failure() {
    let server = Server::start().await;
    serve_all(&server);
    // Nothing listens there once the listener is dropped.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let config = config_with(&server, &[("FX_KRAKEN_BASE_URL", &closed)]);
    let report = run(&config, &InMemoryRateStore::new(), now()).await;
    let btc = report_for(&report, "BTC/USD");
    assert!(
        matches!(
            failure(btc, "kraken"),
            FetchError::Transport(_) | FetchError::Timeout
        ),
        "{btc:?}"
    );
    assert_eq!(btc.outcome, Outcome::Fresh);
}

#[tokio::test]
async fn binance_is_not_asked_for_usd_unless_usdt_counts_as_usd() {
    let server = Server::start().await;
    serve_all(&server);
    let config = config_with(&server, &[("FX_BINANCE_USDT_AS_USD", "false")]);
    let report = run(&config, &InMemoryRateStore::new(), now()).await;
    let btc = report_for(&report, "BTC/USD");
    assert!(matches!(
        failure(btc, "binance"),
        FetchError::Source(SourceError::Unsupported { .. })
    ));
    assert_eq!(btc.rate.as_ref().unwrap().sources, ["coinbase", "kraken"]);
    // Coinbase twice, Kraken twice, the ECB once: Binance never.
    assert_eq!(server.hits(), 5);
}

#[tokio::test]
async fn the_default_configuration_uses_the_mock_provider_offline() {
    let config = Config::mock();
    let store = InMemoryRateStore::new();
    let report = run(&config, &store, now()).await;
    assert_eq!(report.count(Outcome::Fresh), 3);
    assert_eq!(
        store.latest(pair("BTC/USD")).await.unwrap().unwrap().rate,
        d("97000")
    );
    assert_eq!(
        store.latest(pair("EUR/USD")).await.unwrap().unwrap().sources,
        ["mock"]
    );
}
