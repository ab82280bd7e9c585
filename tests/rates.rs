//! Exchange rates against the local endpoint: the DynamoDB rate store, a refresh writing through
//! it as the scheduled function does, and the API's rate routes reading it.

use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use meterline_integration_tests::{api_request, body_json, operator_request, Stack};
use meterline_shared::adapters::cached_rates::CachedRates;
use meterline_shared::domain::fx::{CurrencyPair, ExchangeRate, Outcome};
use meterline_shared::ports::rates::RateStore;
use meterline_shared::ports::StoreError;
use rust_decimal::Decimal;
use serde_json::Value;
use std::sync::Arc;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap() + Duration::seconds(secs)
}

fn pair(s: &str) -> CurrencyPair {
    s.parse().unwrap()
}

fn rate(p: &str, r: &str, as_of: DateTime<Utc>) -> ExchangeRate {
    ExchangeRate::new(
        pair(p),
        r.parse().unwrap(),
        as_of,
        vec!["coinbase".into(), "kraken".into()],
        as_of + Duration::milliseconds(250),
    )
    .unwrap()
}

fn api_with(stack: &Stack, rates: Arc<dyn RateStore>) -> api::Api {
    stack.api().with_rates(api::rates::RatesApi::new(
        rates,
        stack.rates_config("ApiFunction").max_age,
    ))
}

async fn get(api: &api::Api, path: &str, query: &[(&str, &str)], now: DateTime<Utc>) -> (u16, Value) {
    let resp = api.handle(operator_request("GET", path, query, None), now).await;
    (resp.status().as_u16(), body_json(&resp))
}

#[tokio::test]
async fn the_same_pair_and_instant_put_twice_is_one_history_item() {
    let stack = Stack::create("rates-idem").await;
    let store = stack.rate_store();
    let r = rate("BTC/USD", "97000.50", t(0));
    store.put(&r).await.unwrap();
    store.put(&r).await.unwrap();
    // One history item and the latest item.
    assert_eq!(stack.count_items("ExchangeRatesTable").await, 2);
    assert_eq!(store.latest(pair("BTC/USD")).await.unwrap(), Some(r.clone()));
    let page = store
        .history(pair("BTC/USD"), t(-60), t(60), None, 10)
        .await
        .unwrap();
    assert_eq!(page.rates, [r]);

    // A second put for the same instant replaces the first, in the history and as the latest.
    let corrected = rate("BTC/USD", "97001", t(0));
    store.put(&corrected).await.unwrap();
    assert_eq!(stack.count_items("ExchangeRatesTable").await, 2);
    assert_eq!(
        store.latest(pair("BTC/USD")).await.unwrap(),
        Some(corrected.clone())
    );
    assert_eq!(
        store.rate_at(pair("BTC/USD"), t(0)).await.unwrap(),
        Some(corrected)
    );
}

#[tokio::test]
async fn an_older_rate_stored_later_is_history_but_never_the_latest() {
    let stack = Stack::create("rates-late").await;
    let store = stack.rate_store();
    let btc = pair("BTC/USD");
    store.put(&rate("BTC/USD", "97500", t(300))).await.unwrap();
    store.put(&rate("BTC/USD", "97000", t(0))).await.unwrap();
    assert_eq!(store.latest(btc).await.unwrap().unwrap().as_of, t(300));
    assert_eq!(
        store.rate_at(btc, t(120)).await.unwrap().unwrap().rate,
        Decimal::from(97000)
    );
    let page = store.history(btc, t(0), t(301), None, 10).await.unwrap();
    assert_eq!(
        page.rates.iter().map(|r| r.as_of).collect::<Vec<_>>(),
        [t(0), t(300)]
    );
    // A newer one does become the latest.
    store.put(&rate("BTC/USD", "98000", t(301))).await.unwrap();
    assert_eq!(
        store.latest(btc).await.unwrap().unwrap().rate,
        Decimal::from(98000)
    );

    // The listing of every latest rate, ordered by pair.
    store.put(&rate("EUR/USD", "1.05", t(10))).await.unwrap();
    store.put(&rate("ETH/USD", "3500", t(10))).await.unwrap();
    let all = store.latest_all().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|r| (r.pair.to_string(), r.as_of))
            .collect::<Vec<_>>(),
        [
            ("BTC/USD".to_string(), t(301)),
            ("ETH/USD".to_string(), t(10)),
            ("EUR/USD".to_string(), t(10))
        ]
    );
}

#[tokio::test]
async fn rate_at_is_the_last_rate_at_or_before_the_instant() {
    let stack = Stack::create("rates-at").await;
    let store = stack.rate_store();
    let btc = pair("BTC/USD");
    let ns = Duration::nanoseconds(1);
    for (r, at) in [("1", t(0)), ("2", t(10)), ("3", t(10) + ns), ("4", t(20))] {
        store.put(&rate("BTC/USD", r, at)).await.unwrap();
    }
    let at = |i: DateTime<Utc>| {
        let store = &store;
        async move { store.rate_at(btc, i).await.unwrap().map(|r| r.rate.to_string()) }
    };
    assert_eq!(at(t(0) - ns).await, None);
    assert_eq!(at(t(0)).await.as_deref(), Some("1"));
    assert_eq!(at(t(10) - ns).await.as_deref(), Some("1"));
    assert_eq!(at(t(10)).await.as_deref(), Some("2"));
    assert_eq!(at(t(10) + ns).await.as_deref(), Some("3"));
    assert_eq!(at(t(19)).await.as_deref(), Some("3"));
    assert_eq!(at(t(86_400 * 365)).await.as_deref(), Some("4"));
    // Another pair, or the same currencies the other way round, is another history.
    assert_eq!(store.rate_at(pair("USD/BTC"), t(20)).await.unwrap(), None);
    assert_eq!(store.rate_at(pair("ETH/USD"), t(20)).await.unwrap(), None);
    assert_eq!(store.latest(pair("ETH/USD")).await.unwrap(), None);
}

#[tokio::test]
async fn history_pages_through_a_half_open_range() {
    let stack = Stack::create("rates-page").await;
    let store = stack.rate_store();
    let btc = pair("BTC/USD");
    // 25 rates a minute apart, from t(0) to t(24 min).
    for i in 0..25 {
        store
            .put(&rate("BTC/USD", &format!("{}", 97000 + i), t(60 * i)))
            .await
            .unwrap();
    }
    store.put(&rate("ETH/USD", "3500", t(60))).await.unwrap();
    let collect = |limit: usize, from: DateTime<Utc>, to: DateTime<Utc>| {
        let store = &store;
        async move {
            let mut pages = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = store
                    .history(btc, from, to, cursor.as_deref(), limit)
                    .await
                    .unwrap();
                pages.push(page.rates.iter().map(|r| r.as_of).collect::<Vec<_>>());
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => return pages,
                }
            }
        }
    };
    let pages = collect(10, t(0), t(60 * 25)).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    let all: Vec<_> = pages.concat();
    assert_eq!(all, (0..25).map(|i| t(60 * i)).collect::<Vec<_>>());
    // `from` is included and `to` excluded; a range that fills the last page exactly says so.
    let pages = collect(10, t(60), t(60 * 21)).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10]);
    assert_eq!(pages[0][0], t(60));
    assert_eq!(*pages[1].last().unwrap(), t(60 * 20));
    // An empty or inverted range, a cursor of another form.
    assert!(collect(10, t(60 * 30), t(60 * 40)).await.concat().is_empty());
    assert!(collect(10, t(60), t(60)).await.concat().is_empty());
    assert!(matches!(
        store.history(btc, t(0), t(60), Some("nope"), 10).await,
        Err(StoreError::InvalidCursor(_))
    ));
}

/// The refresh as the scheduled function runs it (configuration from the template: the mock
/// provider, the default pairs and the cross pairs through USD), then the API reading it.
#[tokio::test]
async fn a_refresh_stored_in_dynamodb_is_listed_by_the_api_with_age_and_sources() {
    let stack = Stack::create("rates-refresh").await;
    let env = stack.function_env("RateRefreshFunction");
    let config = rate_refresh::Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let store = stack.rate_store_of("RateRefreshFunction");
    let sources = rate_refresh::sources_from_config(&config).unwrap();
    let at = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
    let report = rate_refresh::refresh_once(&sources, &store, &config, at)
        .await
        .unwrap();
    assert_eq!(report.count(Outcome::Fresh), 5, "{report:?}");

    let api = api_with(&stack, Arc::new(stack.rate_store_of("ApiFunction")));
    let now = at + Duration::seconds(30);
    let (status, body) = get(&api, "/v1/rates", &[], now).await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().unwrap();
    let pairs: Vec<&str> = data.iter().map(|r| r["pair"].as_str().unwrap()).collect();
    assert_eq!(pairs, ["BTC/USD", "ETH/USD", "EUR/BTC", "EUR/ETH", "EUR/USD"]);
    let btc = &data[0];
    assert_eq!(btc["rate"], "97000.00");
    assert_eq!(btc["sources"], serde_json::json!(["mock"]));
    assert_eq!(btc["age_seconds"], 30);
    assert_eq!(btc["stale"], false);
    assert_eq!(
        btc["as_of"],
        at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    );
    let eur_btc = &data[2];
    assert_eq!(
        eur_btc["sources"],
        serde_json::json!(["BTC/USD:mock", "EUR/USD:mock"])
    );
    let r: Decimal = eur_btc["rate"].as_str().unwrap().parse().unwrap();
    assert_eq!(r, Decimal::new(105, 2) / Decimal::new(9_700_000, 2));

    // Past the maximum age (900 s in the template) every rate is reported stale.
    let (_, body) = get(&api, "/v1/rates", &[], at + Duration::seconds(901)).await;
    assert!(body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["stale"] == true));
    assert_eq!(body["max_age_seconds"], 900);
}

#[tokio::test]
async fn the_history_route_pages_with_an_opaque_cursor_and_names_bad_parameters() {
    let stack = Stack::create("rates-api").await;
    let store = stack.rate_store();
    for i in 0..5 {
        store
            .put(&rate("ETH/USD", &format!("350{i}.5"), t(3600 * i)))
            .await
            .unwrap();
    }
    let api = api_with(&stack, Arc::new(stack.rate_store_of("ApiFunction")));
    let now = t(86_400);
    let path = "/v1/rates/ETH/USD/history";
    let q = [
        ("from", "2026-11-24T12:00:00Z"),
        ("to", "2026-11-24T16:00:00Z"),
        ("limit", "3"),
    ];
    let (status, body) = get(&api, path, &q, now).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pair"], "ETH/USD");
    let rates: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rate"].as_str().unwrap())
        .collect();
    assert_eq!(rates, ["3500.5", "3501.5", "3502.5"]);
    assert_eq!(body["data"][0]["as_of"], "2026-11-24T12:00:00Z");
    assert_eq!(
        body["data"][0]["sources"],
        serde_json::json!(["coinbase", "kraken"])
    );
    let cursor = body["next_cursor"].as_str().unwrap().to_string();
    let mut q2 = q.to_vec();
    q2.push(("cursor", &cursor));
    let (status, body) = get(&api, path, &q2, now).await;
    assert_eq!(status, 200, "{body}");
    // `to` is excluded: the rate at 16:00 is not in the window.
    let rates: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rate"].as_str().unwrap())
        .collect();
    assert_eq!(rates, ["3503.5"]);
    assert_eq!(body["next_cursor"], Value::Null);
    // Lower-case codes are accepted; without bounds the window is the day before now.
    let (status, body) = get(&api, "/v1/rates/eth/usd/history", &[], t(4 * 3600 + 1)).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 5);

    // A cursor from another pair, and bad parameters, are problems naming the parameter.
    let problem = |status: u16, body: &Value, field: &str| {
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["errors"][0]["field"], field, "{body}");
    };
    let (s, b) = get(&api, "/v1/rates/BTC/USD/history", &[("cursor", &cursor)], now).await;
    problem(s, &b, "cursor");
    let (s, b) = get(&api, path, &[("cursor", "not-a-cursor")], now).await;
    problem(s, &b, "cursor");
    let (s, b) = get(&api, path, &[("from", "yesterday")], now).await;
    problem(s, &b, "from");
    let (s, b) = get(&api, path, &[("to", "2026-11-24 16:00")], now).await;
    problem(s, &b, "to");
    let (s, b) = get(
        &api,
        path,
        &[("from", "2026-11-24T16:00:00Z"), ("to", "2026-11-24T12:00:00Z")],
        now,
    )
    .await;
    problem(s, &b, "from");
    let (s, b) = get(&api, path, &[("limit", "0")], now).await;
    problem(s, &b, "limit");
    let (s, b) = get(&api, path, &[("limit", "1001")], now).await;
    problem(s, &b, "limit");
    let (s, b) = get(&api, "/v1/rates/XYZ/USD/history", &[], now).await;
    problem(s, &b, "base");
    let (s, b) = get(&api, "/v1/rates/USD/usd/history", &[], now).await;
    problem(s, &b, "quote");

    let resp = api
        .handle(api_request("POST", "/v1/rates", &[], Some("{}")), now)
        .await;
    assert_eq!(resp.status(), 405);
    assert_eq!(
        resp.headers()["content-type"],
        meterline_shared::adapters::http::problem::CONTENT_TYPE
    );
    let (s, _) = get(&api, "/v1/rates/ETH/USD", &[], now).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn the_api_reads_rates_through_its_cache() {
    let stack = Stack::create("rates-cache").await;
    let table = stack.rate_store();
    table.put(&rate("BTC/USD", "97000", t(0))).await.unwrap();
    let cached = CachedRates::new(stack.rate_store_of("ApiFunction"), Duration::seconds(60));
    let api = api_with(&stack, Arc::new(cached));
    let (_, body) = get(&api, "/v1/rates", &[], t(10)).await;
    assert_eq!(body["data"][0]["rate"], "97000");
    // A rate stored since is not read again within the TTL: the warm listing comes from memory.
    table.put(&rate("BTC/USD", "98000", t(5))).await.unwrap();
    let (_, body) = get(&api, "/v1/rates", &[], t(11)).await;
    assert_eq!(body["data"][0]["rate"], "97000");
}
