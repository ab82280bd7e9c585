//! Business metrics: the functions' log lines, captured as the functions write them, parsed as
//! CloudWatch embedded metric format (EMF) and checked for envelope and values. Handlers run
//! against the local endpoint (moto_server).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{capture_logs, sqs_event, Stack};
use meterline_shared::adapters::memory::InMemoryRateStore;
use meterline_shared::adapters::memory::MemoryEventPublisher;
use meterline_shared::domain::billing::{sample, Alignment, BillingSchedule, BillingSubscription, Cadence};
use meterline_shared::domain::money::Currency;
use meterline_shared::ports::billing::BillingStore;
use meterline_shared::ports::billing::CloseRequest;
use meterline_shared::ports::rates::RateStore;
use meterline_shared::services::closing::{CloseSettings, Closer};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::sync::Arc;

/// Checks the EMF envelope of `line` and returns the metric names with their units.
fn envelope(line: &Value, service: &str, dimensions: &[&str]) -> Vec<(String, String)> {
    let aws = &line["_aws"];
    let ts = aws["Timestamp"].as_i64().expect("Timestamp is an integer (ms)");
    assert!(
        (ts - Utc::now().timestamp_millis()).abs() < 600_000,
        "Timestamp is now: {ts}"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics array");
    assert_eq!(directives.len(), 1, "{line}");
    let d = &directives[0];
    assert_eq!(d["Namespace"], "meterline");
    let mut dims = vec!["Service"];
    dims.extend_from_slice(dimensions);
    assert_eq!(d["Dimensions"], json!([dims]));
    // Every dimension and every metric is a member of the root, as CloudWatch requires.
    assert_eq!(line["Service"], service);
    for dim in dimensions {
        assert!(line[dim].is_string(), "dimension {dim} in {line}");
    }
    d["Metrics"]
        .as_array()
        .expect("Metrics array")
        .iter()
        .map(|m| {
            let name = m["Name"].as_str().expect("Name").to_string();
            assert!(line[&name].is_number(), "metric {name} is a number in {line}");
            (name, m["Unit"].as_str().expect("Unit").to_string())
        })
        .collect()
}

fn event(id: &str, account: &str, at: DateTime<Utc>) -> Value {
    json!({"id": id, "account_id": account, "provider_id": "prov_000", "job_id": "job",
           "meter": "cpu_seconds", "quantity": "10", "timestamp": at.to_rfc3339()})
}

#[tokio::test]
async fn an_ingested_batch_logs_accepted_duplicate_rejected_and_lag() {
    let stack = Stack::create("emf-ingest").await;
    let ingestor = stack.ingestor();
    let now = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
    let one = json!([
        event("e1", "acct_m", now - Duration::seconds(90)),
        event("e2", "acct_m", now - Duration::seconds(30)),
        {"id": "bad", "account_id": "acct_m", "provider_id": "prov_000", "job_id": "job",
         "meter": "cpu_seconds", "quantity": "-1", "timestamp": now.to_rfc3339()},
    ]);
    let two = json!([event("e1", "acct_m", now - Duration::seconds(90))]);
    let (_guard, logs) = capture_logs();
    let resp = ingestor
        .handle(
            sqs_event(&[
                ("m1".into(), one.to_string()),
                ("m2".into(), two.to_string()),
                ("m3".into(), "not json".into()),
            ]),
            now,
        )
        .await;
    assert_eq!(resp.batch_item_failures.len(), 1);
    let lines = logs.metric_lines();
    assert_eq!(lines.len(), 1, "one EMF line per batch: {lines:?}");
    let line = &lines[0];
    let metrics = envelope(line, "usage-ingest", &[]);
    for name in [
        "EventsAccepted",
        "EventsDuplicate",
        "EventsRejected",
        "MessagesFailed",
    ] {
        assert!(
            metrics.contains(&(name.to_string(), "Count".to_string())),
            "{name}: {metrics:?}"
        );
    }
    assert!(metrics.contains(&("IngestLagMax".to_string(), "Seconds".to_string())));
    assert_eq!(line["EventsAccepted"], 2);
    assert_eq!(line["EventsDuplicate"], 1);
    assert_eq!(line["EventsRejected"], 1);
    assert_eq!(line["MessagesFailed"], 1);
    // Receive time minus the usage time of the oldest event accepted.
    assert_eq!(line["IngestLagMax"], 90);
    // The other logs stay ordinary JSON log lines.
    assert!(logs
        .lines()
        .iter()
        .any(|l| l["fields"]["message"] == "usage batch ingested"));
}

#[tokio::test]
async fn a_close_batch_logs_closes_and_the_amount_billed_per_currency() {
    let stack = Stack::create("emf-close").await;
    let billing = stack.billing_store();
    billing.put_catalog(&sample::catalog()).await.unwrap();
    let anchor =
        Utc::now().duration_trunc(Duration::hours(1)).unwrap() - Duration::days(1) - Duration::hours(2);
    let mut requests = Vec::new();
    for (account, currency) in [
        ("acct_usd1", Currency::USD),
        ("acct_usd2", Currency::USD),
        ("acct_eur", Currency::EUR),
    ] {
        billing
            .put_account(&sample::account(account, currency))
            .await
            .unwrap();
        let plan = sample::subscription("x", account, Cadence::Daily, anchor).plan;
        let schedule = BillingSchedule::new(Cadence::Daily, Alignment::Anniversary, anchor, chrono_tz::UTC);
        let sub = BillingSubscription::new(&format!("sub_{account}"), account, schedule, plan).unwrap();
        billing.put_subscription(&sub).await.unwrap();
        requests.push(CloseRequest {
            account_id: account.into(),
            subscription_id: format!("sub_{account}"),
            period_end: anchor + Duration::days(1),
        });
    }
    let usage = stack.ingestor();
    let body = json!([
        event("u1", "acct_usd1", anchor + Duration::hours(1)),
        event("u2", "acct_usd2", anchor + Duration::hours(2)),
        event("u3", "acct_eur", anchor + Duration::hours(3)),
    ]);
    assert!(usage
        .handle(sqs_event(&[("u".into(), body.to_string())]), Utc::now())
        .await
        .batch_item_failures
        .is_empty());
    let usage_store = stack.usage_store();
    let rates = rate_store_with_eur(anchor).await;
    let publisher = MemoryEventPublisher::new();
    let closer = Closer {
        billing: &billing,
        usage: &usage_store,
        rates: rates.as_ref(),
        publisher: &publisher,
        settings: CloseSettings::default(),
    };
    let mut messages: Vec<(String, String)> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("c{i}"), serde_json::to_string(r).unwrap()))
        .collect();
    messages.push(("broken".into(), "{}".into()));
    let (_guard, logs) = capture_logs();
    let resp = close_worker::handle(&closer, sqs_event(&messages), Utc::now()).await;
    assert_eq!(
        resp.batch_item_failures.len(),
        1,
        "{:?}",
        resp.batch_item_failures
    );

    let lines = logs.metric_lines();
    let batch = lines
        .iter()
        .find(|l| l.get("ClosesDone").is_some())
        .expect("the batch line");
    let metrics = envelope(batch, "close-worker", &[]);
    assert_eq!(metrics.len(), 3, "{metrics:?}");
    assert_eq!(batch["ClosesDone"], 3);
    assert_eq!(batch["ClosesFailed"], 1);
    assert_eq!(batch["ClosesAlreadyClosed"], 0);

    let mut expected: std::collections::BTreeMap<String, (u64, Decimal)> = Default::default();
    for r in &requests {
        for inv in billing
            .invoices_since(&r.account_id, &r.subscription_id, anchor)
            .await
            .unwrap()
        {
            let e = expected.entry(inv.currency.code().to_string()).or_default();
            e.0 += 1;
            e.1 += inv.total;
        }
    }
    assert_eq!(expected.len(), 2, "{expected:?}");
    let per_currency: Vec<&Value> = lines.iter().filter(|l| l.get("Currency").is_some()).collect();
    assert_eq!(per_currency.len(), 2, "{per_currency:?}");
    for line in per_currency {
        let metrics = envelope(line, "close-worker", &["Currency"]);
        assert_eq!(
            metrics,
            vec![
                ("InvoicesFinalized".to_string(), "Count".to_string()),
                ("AmountBilled".to_string(), "None".to_string())
            ]
        );
        let (count, amount) = &expected[line["Currency"].as_str().unwrap()];
        assert_eq!(line["InvoicesFinalized"], *count);
        assert!(*amount > Decimal::ZERO, "the usage was billed: {amount}");
        // The amount as its exact decimal text (checked on the number's JSON text).
        assert_eq!(line["AmountBilled"].to_string(), amount.normalize().to_string());
    }
}

/// USD/EUR in force at the period's end (`anchor` + 1 day), as the refresh stores it.
async fn rate_store_with_eur(anchor: DateTime<Utc>) -> Arc<InMemoryRateStore> {
    let store = Arc::new(InMemoryRateStore::new());
    let at = anchor + Duration::hours(20);
    let rate = meterline_shared::domain::fx::ExchangeRate::new(
        "USD/EUR".parse().unwrap(),
        "0.9".parse().unwrap(),
        at,
        vec!["ecb".into()],
        at,
    )
    .unwrap();
    store.put(&rate).await.unwrap();
    store
}

fn scheduled() -> EventBridgeEvent<Value> {
    serde_json::from_value(json!({
        "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": Utc::now().to_rfc3339(), "region": "us-east-1",
        "resources": [], "detail": {}
    }))
    .unwrap()
}

#[tokio::test]
async fn a_rate_refresh_logs_each_pair_and_the_oldest_rate() {
    let stack = Stack::create("emf-rates").await;
    let config = rate_refresh::Config::mock();
    let pairs = config.pairs.len() + config.cross_pairs.len();
    let app = rate_refresh::App {
        sources: rate_refresh::sources_from_config(&config).unwrap(),
        config,
        store: Arc::new(stack.rate_store()),
    };
    let (_guard, logs) = capture_logs();
    rate_refresh::handle(&app, scheduled()).await.unwrap();
    let lines = logs.metric_lines();
    let per_pair: Vec<&Value> = lines.iter().filter(|l| l.get("Pair").is_some()).collect();
    assert_eq!(per_pair.len(), pairs);
    for line in &per_pair {
        let metrics = envelope(line, "rate-refresh", &["Pair"]);
        assert_eq!(metrics.len(), 4, "{metrics:?}");
        assert_eq!(line["RateFresh"], 1, "{line}");
        assert_eq!(line["RateStale"], 0);
        assert_eq!(line["RateMissing"], 0);
        // The mock's rates are as of the refresh.
        assert!(line["RateAge"].as_i64().unwrap() < 60, "{line}");
    }
    let summary = lines
        .iter()
        .find(|l| l.get("PairsFresh").is_some())
        .expect("summary line");
    envelope(summary, "rate-refresh", &[]);
    assert_eq!(summary["PairsFresh"], pairs);
    assert_eq!(summary["PairsStale"], 0);
    assert_eq!(summary["PairsMissing"], 0);
}
