//! Estimates, forecasts and budgets against the local endpoint (moto_server) and, but for the
//! EventBridge check, in memory too: the API's routes
//! through the real handler, the period-to-date estimate against the invoice the close then
//! produces, and the scheduled budget check publishing through a real EventBridge rule.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{body_json, on_both_backends, operator_request, sqs_event, Backend, Stack};
use meterline_shared::adapters::aws::aws_sdk_eventbridge;
use meterline_shared::adapters::memory::InMemoryRateStore;
use meterline_shared::adapters::memory::MemoryEventPublisher;
use meterline_shared::domain::billing::{sample, Alignment, BillingSchedule, BillingSubscription, Cadence};
use meterline_shared::domain::estimate::BudgetThresholdCrossed;
use meterline_shared::domain::meter::Meter;
use meterline_shared::domain::money::Currency;
use meterline_shared::domain::usage::UsageEvent;
use meterline_shared::ports::billing::BillingStore;
use meterline_shared::ports::billing::CloseRequest;
use meterline_shared::services::account_estimate::AccountEstimator;
use meterline_shared::services::closing::{CloseSettings, Closer};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[path = "support/schema.rs"]
mod schema;

fn hour() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::hours(1)).unwrap()
}

fn d(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a decimal string"))
        .parse()
        .unwrap()
}

struct World {
    stack: Stack,
    billing: Arc<dyn BillingStore>,
    api: api::Api,
    /// Period 0 of the daily subscriptions starts here (three days ago, on the hour).
    anchor: DateTime<Utc>,
}

impl World {
    async fn new(backend: Backend, test: &str) -> World {
        let stack = Stack::on(backend, test).await;
        let api = stack.api();
        let billing = stack.billing();
        billing.put_catalog(&sample::catalog()).await.unwrap();
        World {
            stack,
            billing,
            api,
            anchor: hour() - Duration::days(3),
        }
    }

    /// An account with a daily anniversary subscription from `anchor`.
    async fn subscribe(&self, account: &str) {
        self.billing
            .put_account(&sample::account(account, Currency::USD))
            .await
            .unwrap();
        let plan = sample::subscription("x", account, Cadence::Daily, self.anchor).plan;
        let schedule = BillingSchedule::new(
            Cadence::Daily,
            Alignment::Anniversary,
            self.anchor,
            chrono_tz::UTC,
        );
        let sub = BillingSubscription::new(&format!("sub_{account}"), account, schedule, plan).unwrap();
        self.billing.put_subscription(&sub).await.unwrap();
    }

    /// Sends usage through the ingestion handler.
    async fn ingest(&self, events: &[UsageEvent]) {
        let ingestor = self.stack.ingestor();
        let body = serde_json::to_string(events).unwrap();
        let resp = ingestor
            .handle(sqs_event(&[("m0".to_string(), body)]), Utc::now())
            .await;
        assert!(resp.batch_item_failures.is_empty());
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&str>,
        now: DateTime<Utc>,
    ) -> (u16, Value) {
        let resp = self
            .api
            .handle(operator_request(method, path, query, body), now)
            .await;
        (resp.status().as_u16(), body_json(&resp))
    }

    /// Asserts a response matches its schema in the document the API serves, strictly (no
    /// field the document does not list).
    async fn conforms(&self, method: &str, path: &str, status: u16, body: &Value) {
        let (_, doc) = self.call("GET", "/openapi.json", &[], None, Utc::now()).await;
        let schema = schema::response_schema(&doc, path, method, &status.to_string());
        let problems = schema::violations(&doc, &schema, body);
        assert!(
            problems.is_empty(),
            "{method} {path} {status}: {problems:#?}\n{body}"
        );
    }
}

fn ev(id: &str, account: &str, provider: &str, meter: Meter, q: &str, at: DateTime<Utc>) -> UsageEvent {
    UsageEvent {
        id: id.into(),
        account_id: account.into(),
        provider_id: provider.into(),
        job_id: "job".into(),
        meter,
        quantity: q.parse().unwrap(),
        timestamp: at,
        dimensions: if meter == Meter::GpuSeconds {
            [("gpu_model".to_string(), "A100".to_string())].into()
        } else {
            Default::default()
        },
    }
}

/// Usage spread over the first 20 hours of the period starting at `from`.
fn workload(account: &str, from: DateTime<Utc>) -> Vec<UsageEvent> {
    (0..20)
        .flat_map(|h| {
            let at = from + Duration::hours(h) + Duration::minutes(7);
            [
                ev(
                    &format!("g{h}"),
                    account,
                    "prov_000",
                    Meter::GpuSeconds,
                    &format!("{}", 900 + 37 * h),
                    at,
                ),
                ev(
                    &format!("c{h}"),
                    account,
                    "prov_001",
                    Meter::CpuSeconds,
                    &format!("{}.5", 400 + 11 * h),
                    at,
                ),
                ev(
                    &format!("e{h}"),
                    account,
                    "prov_002",
                    Meter::NetworkEgressGib,
                    "0.333",
                    at,
                ),
            ]
        })
        .collect()
}

async fn the_period_to_date_estimate_equals_the_invoice_the_close_produces(backend: Backend) {
    let w = World::new(backend, "est-invoice").await;
    w.subscribe("acct_est").await;
    w.ingest(&workload("acct_est", w.anchor)).await;
    // Through the API, 23 hours into period 0: every usage window has started.
    let as_of = w.anchor + Duration::hours(23);
    let (status, body) = w
        .call("GET", "/v1/accounts/acct_est/estimate", &[], None, as_of)
        .await;
    assert_eq!(status, 200, "{body}");
    w.conforms("get", "/v1/accounts/{account_id}/estimate", 200, &body)
        .await;
    assert_eq!(body["subscription_id"], "sub_acct_est");
    let to_date = &body["to_date"]["result"];
    // The service, as the budget check calls it.
    let usage = w.stack.usage();
    let estimator = AccountEstimator {
        billing: w.billing.as_ref(),
        usage: usage.as_ref(),
    };
    let ptd = estimator.period_to_date("acct_est", as_of).await.unwrap();
    assert_eq!(d(&to_date["total"]), ptd.to_date.result.total);

    // Close period 0 and compare the invoice with the estimate, line by line.
    let rates = InMemoryRateStore::new();
    let publisher = MemoryEventPublisher::new();
    let (worker_billing, worker_usage) = (
        w.stack.billing_of("CloseWorkerFunction"),
        w.stack.usage_of("CloseWorkerFunction"),
    );
    let closer = Closer {
        billing: worker_billing.as_ref(),
        usage: worker_usage.as_ref(),
        rates: &rates,
        publisher: &publisher,
        settings: CloseSettings::default(),
    };
    let req = CloseRequest {
        account_id: "acct_est".into(),
        subscription_id: "sub_acct_est".into(),
        period_end: w.anchor + Duration::days(1),
    };
    let report = closer.close_subscription(&req, Utc::now()).await.unwrap();
    let invoice = &report.committed[0];
    assert_eq!(invoice.period.start, w.anchor);
    assert!(invoice.total > Decimal::ZERO);
    assert_eq!(invoice.net_total, d(&to_date["net_total"]));
    assert_eq!(invoice.tax_total, d(&to_date["tax_total"]));
    assert_eq!(invoice.total, d(&to_date["total"]));
    assert_eq!(invoice.lines.len(), ptd.to_date.result.lines.len());
    for (line, rated) in invoice.lines.iter().zip(&ptd.to_date.result.lines) {
        assert_eq!(line.rated.as_ref(), Some(rated));
        assert_eq!((line.net, line.tax), (rated.tax.net, rated.tax.tax));
    }
    // The projection: at least what is already spent, with ordered bands.
    let spend = &body["spend"];
    assert!(d(&spend["point"]) >= d(&to_date["total"]));
    assert!(d(&spend["p95"]["lower"]) <= d(&spend["p80"]["lower"]));
    assert!(d(&spend["p80"]["upper"]) <= d(&spend["p95"]["upper"]));
}

async fn forecast_and_quote_routes_answer_and_name_bad_fields(backend: Backend) {
    let w = World::new(backend, "est-routes").await;
    w.subscribe("acct_r").await;
    w.ingest(&workload("acct_r", w.anchor)).await;
    let now = Utc::now();
    let (status, body) = w
        .call(
            "GET",
            "/v1/accounts/acct_r/forecast",
            &[("days", "14")],
            None,
            now,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    w.conforms("get", "/v1/accounts/{account_id}/forecast", 200, &body)
        .await;
    assert_eq!(body["days"], 14);
    assert_eq!(body["forecast"]["spend"]["currency"], "USD");
    for bad in ["0", "91", "x"] {
        let (status, body) = w
            .call("GET", "/v1/accounts/acct_r/forecast", &[("days", bad)], None, now)
            .await;
        assert_eq!(status, 400);
        assert_eq!(body["errors"][0]["field"], "days");
    }
    let (status, _) = w
        .call("GET", "/v1/accounts/nobody/estimate", &[], None, now)
        .await;
    assert_eq!(status, 404);

    let job = json!({"account_id": "acct_r", "job": {"provider_id": "prov_000",
        "start": (now + Duration::minutes(5)).to_rfc3339(), "duration_seconds": 3600,
        "gpus": 2, "gpu_model": "A100", "vcpus": "8", "egress_gib": "1.5"}});
    let (status, body) = w
        .call("POST", "/v1/estimates/job", &[], Some(&job.to_string()), now)
        .await;
    assert_eq!(status, 200, "{body}");
    w.conforms("post", "/v1/estimates/job", 200, &body).await;
    let options = body["quote"]["options"].as_array().unwrap();
    assert!(options.iter().any(|o| o["model"] == "pay_per_use"), "{body}");

    let bad = json!({"account_id": "acct_r", "job": {"provider_id": "prov_000", "start": "soon",
        "duration_seconds": -1, "vcpus": "lots", "colour": "blue"}});
    let (status, body) = w
        .call("POST", "/v1/estimates/job", &[], Some(&bad.to_string()), now)
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "https://meterline.dev/problems/invalid-body");
    let fields: BTreeSet<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from(["job.colour", "job.start", "job.duration_seconds", "job.vcpus"])
    );
    let (status, body) = w
        .call("POST", "/v1/estimates/job", &[], Some("{\"job\": {}}"), now)
        .await;
    assert_eq!(status, 400);
    assert!(body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["field"] == "account_id"));
}

async fn budgets_are_created_read_listed_replaced_and_deleted(backend: Backend) {
    let w = World::new(backend, "est-budgets").await;
    w.subscribe("acct_b").await;
    let now = Utc::now();
    let path = "/v1/accounts/acct_b/budgets";
    let body = json!({"budget_id": "monthly", "amount": "250.00", "currency": "USD"}).to_string();
    let (status, created) = w.call("POST", path, &[], Some(&body), now).await;
    assert_eq!(status, 201, "{created}");
    w.conforms("post", "/v1/accounts/{account_id}/budgets", 201, &created)
        .await;
    assert_eq!(created["thresholds"], json!([50, 80, 100]));
    let (status, _) = w.call("POST", path, &[], Some(&body), now).await;
    assert_eq!(status, 409, "creating it again conflicts");
    let (status, got) = w.call("GET", &format!("{path}/monthly"), &[], None, now).await;
    assert_eq!((status, &got), (200, &created));
    let replace = json!({"amount": "300", "currency": "USD", "thresholds": [90, 25]}).to_string();
    let (status, replaced) = w
        .call("POST", &format!("{path}/monthly"), &[], Some(&replace), now)
        .await;
    assert_eq!(status, 200, "{replaced}");
    w.conforms(
        "post",
        "/v1/accounts/{account_id}/budgets/{budget_id}",
        200,
        &replaced,
    )
    .await;
    w.conforms("get", "/v1/accounts/{account_id}/budgets/{budget_id}", 200, &got)
        .await;
    assert_eq!(replaced["thresholds"], json!([25, 90]));
    let (_, list) = w.call("GET", path, &[], None, now).await;
    w.conforms("get", "/v1/accounts/{account_id}/budgets", 200, &list)
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["amount"], "300");

    let bad = json!({"budget_id": "b2", "amount": "-5", "currency": "XXX", "thresholds": [], "extra": 1});
    let (status, problem) = w.call("POST", path, &[], Some(&bad.to_string()), now).await;
    assert_eq!(status, 400);
    let fields: BTreeSet<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from(["extra", "amount", "currency", "thresholds"])
    );
    let (status, _) = w
        .call("POST", "/v1/accounts/nobody/budgets", &[], Some(&body), now)
        .await;
    assert_eq!(status, 404);

    let (status, _) = w.call("DELETE", &format!("{path}/monthly"), &[], None, now).await;
    assert_eq!(status, 204);
    let (status, _) = w.call("DELETE", &format!("{path}/monthly"), &[], None, now).await;
    assert_eq!(status, 404);
    let (status, _) = w.call("GET", &format!("{path}/monthly"), &[], None, now).await;
    assert_eq!(status, 404);
    let (_, list) = w.call("GET", path, &[], None, now).await;
    assert_eq!(list["data"], json!([]));
    let (status, _) = w.call("PUT", path, &[], None, now).await;
    assert_eq!(status, 405);
}

fn scheduled_event(at: DateTime<Utc>) -> EventBridgeEvent<Value> {
    serde_json::from_value(json!({
        "version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": at.to_rfc3339(), "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/BudgetCheck"], "detail": {}
    }))
    .unwrap()
}

#[tokio::test]
async fn the_budget_check_run_ten_times_publishes_each_crossed_threshold_once_on_eventbridge() {
    let w = World::new(Backend::Moto, "est-check").await;
    w.subscribe("acct_c").await;
    w.subscribe("acct_quiet").await;
    // Usage in the current period (period 3 starts at the current hour).
    let current = w.anchor + Duration::days(3);
    let now = current + Duration::minutes(59);
    w.ingest(&[
        ev("c1", "acct_c", "prov_000", Meter::GpuSeconds, "20000", current),
        ev(
            "c2",
            "acct_c",
            "prov_001",
            Meter::CpuSeconds,
            "9000",
            current + Duration::minutes(30),
        ),
    ])
    .await;
    let usage = w.stack.usage();
    let estimator = AccountEstimator {
        billing: w.billing.as_ref(),
        usage: usage.as_ref(),
    };
    let actual = estimator
        .period_to_date("acct_c", now)
        .await
        .unwrap()
        .to_date
        .result
        .total;
    // A budget the actual spend is 85 % of, one far away, and one for the quiet account.
    let amount = (actual / Decimal::new(85, 2)).round_dp(2);
    for (account, id, amount) in [
        ("acct_c", "tight", amount.to_string()),
        ("acct_c", "roomy", "100000".to_string()),
        ("acct_quiet", "q", "100".to_string()),
    ] {
        let body = json!({"budget_id": id, "amount": amount, "currency": "USD"}).to_string();
        let (status, _) = w
            .call(
                "POST",
                &format!("/v1/accounts/{account}/budgets"),
                &[],
                Some(&body),
                now,
            )
            .await;
        assert_eq!(status, 201);
    }

    // A bus of its own, a rule for the budget alerts and a queue as its target.
    let prefix = w.stack.description["prefix"].as_str().unwrap().to_string();
    let events = aws_sdk_eventbridge::Client::new(&w.stack.sdk);
    let bus = format!("{prefix}-bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let sqs = w.stack.sqs();
    let queue = sqs
        .create_queue()
        .queue_name(format!("{prefix}-alerts"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(meterline_shared::adapters::aws::aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&meterline_shared::adapters::aws::aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    events
        .put_rule()
        .name(format!("{prefix}-budgets"))
        .event_bus_name(&bus)
        .event_pattern(
            json!({"source": ["meterline.budgets"], "detail-type": ["BudgetThresholdCrossed"]}).to_string(),
        )
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(format!("{prefix}-budgets"))
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("alerts")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let publisher = w.stack.publisher_of("BudgetCheckFunction", &bus);
    let (check_billing, check_usage) = (
        w.stack.billing_store_of("BudgetCheckFunction"),
        w.stack.usage_store_of("BudgetCheckFunction"),
    );
    let check = budget_check::BudgetCheck {
        billing: &check_billing,
        usage: &check_usage,
        budgets: &check_billing,
        publisher: &publisher,
        with_forecast: true,
    };
    // The bus unreachable: the run fails and leaves the claim of the alert it could not publish
    // unsent, so the next run announces it (the tight budget's alerts all arrive below).
    let unreachable = w
        .stack
        .publisher_of("BudgetCheckFunction", &format!("{bus}-no-such-bus"));
    let failing = budget_check::BudgetCheck {
        publisher: &unreachable,
        ..check
    };
    assert!(failing.handle(&scheduled_event(now), now).await.is_err());
    let mut published = 0;
    for _ in 0..10 {
        let s = check.handle(&scheduled_event(now), now).await.unwrap();
        assert_eq!((s.accounts, s.budgets), (2, 3));
        published += s.published;
    }

    // Every alert that reached the queue, once each.
    let mut alerts: Vec<BudgetThresholdCrossed> = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let out = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            empty += 1;
            continue;
        }
        for m in messages {
            let envelope: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_eq!(envelope["source"], "meterline.budgets");
            assert_eq!(envelope["detail-type"], "BudgetThresholdCrossed");
            alerts.push(serde_json::from_value(envelope["detail"].clone()).unwrap());
            sqs.delete_message()
                .queue_url(&queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(alerts.len(), published);
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for a in &alerts {
        *per_key.entry(a.idempotency_key.clone()).or_default() += 1;
        assert_eq!(a.period.start, current);
    }
    assert!(per_key.values().all(|n| *n == 1), "{per_key:?}");
    // The tight budget: 50 % and 80 % crossed by actual spend; 100 % at most by the forecast.
    let tight: BTreeMap<u32, &BudgetThresholdCrossed> = alerts
        .iter()
        .filter(|a| a.budget_id == "tight")
        .map(|a| (a.threshold_percent, a))
        .collect();
    for pct in [50, 80] {
        let a = tight[&pct];
        assert_eq!(a.spend, actual);
        assert_eq!(serde_json::to_value(a.basis).unwrap(), "actual");
    }
    if let Some(a) = tight.get(&100) {
        assert_eq!(serde_json::to_value(a.basis).unwrap(), "forecast");
    }
    assert!(
        alerts.iter().all(|a| a.account_id == "acct_c"),
        "the quiet account spent nothing"
    );
}

/// An account taxed where the price books have no tax rate cannot be estimated: the estimate,
/// the forecast and a job quote answer 422 naming the account's tax jurisdiction, never a 500.
async fn an_account_taxed_where_no_rate_is_known_is_refused_with_422(backend: Backend) {
    use meterline_shared::domain::pricing::Jurisdiction;
    let w = World::new(backend, "est-notax").await;
    w.subscribe("acct_nt").await;
    let mut account = w.billing.account("acct_nt").await.unwrap().unwrap();
    account.tax.jurisdiction = Some(Jurisdiction {
        country: "IF".into(),
        region: None,
    });
    w.billing.put_account(&account).await.unwrap();
    let now = w.anchor + Duration::days(3) + Duration::minutes(30);
    for path in ["/v1/accounts/acct_nt/estimate", "/v1/accounts/acct_nt/forecast"] {
        let (status, body) = w.call("GET", path, &[], None, now).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(
            body["type"].as_str().map(|t| t.ends_with("no-tax-rate")),
            Some(true),
            "{body}"
        );
        assert!(body["detail"].as_str().unwrap().contains("IF"), "{body}");
        assert_eq!(body["errors"][0]["field"], "account.tax.jurisdiction", "{body}");
        let route = path.replace("acct_nt", "{account_id}");
        let (_, doc) = w.call("GET", "/openapi.json", &[], None, now).await;
        let documented = &doc["paths"][route.as_str()]["get"]["responses"]["422"]["content"];
        assert!(
            documented["application/problem+json"].is_object(),
            "{route}: 422 undocumented"
        );
    }
}

on_both_backends!(
    the_period_to_date_estimate_equals_the_invoice_the_close_produces,
    forecast_and_quote_routes_answer_and_name_bad_fields,
    budgets_are_created_read_listed_replaced_and_deleted,
    an_account_taxed_where_no_rate_is_known_is_refused_with_422,
);

/// A check that claimed an alert and failed before publishing it, with every check after it
/// failing until the period ended, left the claim: the checks of the next period look at its
/// spend only. On DynamoDB the claim and the alert are written in one transaction and a later
/// check sends the alert, once, however many times it runs.
#[tokio::test]
async fn an_alert_left_unsent_when_its_period_ended_is_sent_by_a_later_check() {
    use meterline_shared::domain::estimate::{threshold_key, SpendBasis};
    use meterline_shared::domain::pricing::Period;
    use meterline_shared::ports::budgets::{budget_shard, BudgetStore};
    let w = World::new(Backend::Moto, "est-unsent").await;
    w.subscribe("acct_u").await;
    let now = w.anchor + Duration::days(3) + Duration::minutes(59);
    let body = json!({"budget_id": "monthly", "amount": "60", "currency": "USD"}).to_string();
    let (status, _) = w
        .call("POST", "/v1/accounts/acct_u/budgets", &[], Some(&body), now)
        .await;
    assert_eq!(status, 201);
    // The alert of period 2 (ended an hour ago), claimed by a check that published nothing.
    let period = Period::new(w.anchor + Duration::days(2), w.anchor + Duration::days(3));
    let left = BudgetThresholdCrossed {
        account_id: "acct_u".into(),
        budget_id: "monthly".into(),
        period,
        threshold_percent: 80,
        basis: SpendBasis::Actual,
        spend: "50".parse().unwrap(),
        budget_amount: "60".parse().unwrap(),
        currency: Currency::USD,
        idempotency_key: threshold_key("acct_u", "monthly", period, 80),
    };
    let store = w.stack.billing_store_of("BudgetCheckFunction");
    assert!(store.claim_notification(&left).await.unwrap());
    assert!(
        !store.claim_notification(&left).await.unwrap(),
        "a claim is won once"
    );
    let shard = budget_shard("acct_u");
    assert_eq!(
        store.unsent_notifications(shard).await.unwrap(),
        std::slice::from_ref(&left)
    );

    let usage = w.stack.usage_store_of("BudgetCheckFunction");
    let publisher = MemoryEventPublisher::new();
    let check = budget_check::BudgetCheck {
        billing: &store,
        usage: &usage,
        budgets: &store,
        publisher: &publisher,
        with_forecast: false,
    };
    for _ in 0..3 {
        check.handle(&scheduled_event(now), now).await.unwrap();
    }
    let events = publisher.events();
    let ids: Vec<&str> = events.iter().map(|e| e.event_id()).collect();
    assert_eq!(ids, [left.idempotency_key.as_str()]);
    let sent: BudgetThresholdCrossed = serde_json::from_value(events[0].detail.clone()).unwrap();
    assert_eq!(sent.period, period);
    assert!(!store.notification_unsent(&left.idempotency_key).await.unwrap());
    assert!(store.unsent_notifications(shard).await.unwrap().is_empty());
}
