//! The credit draw-down through the usage-ingest handler, against the local endpoint
//! (moto_server) and in memory: a job authorized through the API, its usage ingested batch by
//! batch, the balance read through the API after each batch; a replayed batch draws nothing,
//! the credit is overdrawn by at most one batch's usage, and the spend events are published
//! once each: the soft limit's, and the exhausted balance's naming the running job.

use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{
    api_request, body_json, on_both_backends, sqs_event, with_key, Backend, Stack, OPERATOR_KEY,
};
use meterline_shared::adapters::aws::pause;
use meterline_shared::adapters::memory::MemoryEventPublisher;
use meterline_shared::domain::billing::{sample, Alignment, BillingSchedule, BillingSubscription, Cadence};
use meterline_shared::domain::credits::{
    SpendLimits, SPEND_EVENT_SOURCE, SPEND_LIMIT_REACHED, SPEND_THRESHOLD_REACHED,
};
use meterline_shared::domain::money::Currency;
use meterline_shared::ports::billing::EventPublisher;
use meterline_shared::ports::spend::SpendStore;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use usage_ingest::CreditDraw;

fn d(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a decimal string"))
        .parse()
        .unwrap()
}

/// A stack with the sample catalog and account `acct_a` (USD) on a daily subscription whose
/// open period holds now; the API; and the usage-ingest handler with its credit draw-down,
/// each with its function's recorded clients.
struct World {
    stack: Stack,
    api: api::Api,
    now: DateTime<Utc>,
    /// The handler's spend store, and the same storage to set up (not recorded).
    spend: Arc<dyn SpendStore>,
    spend_setup: Arc<dyn SpendStore>,
    publisher: Arc<dyn EventPublisher>,
    events: Events,
    /// The spend events published so far: (detail type, detail).
    seen: Mutex<Vec<(String, Value)>>,
}

/// Where the handler's spend events are read.
enum Events {
    Memory(Arc<MemoryEventPublisher>),
    /// The queue that receives the bus's spend events.
    Moto(String),
}

type SpendWiring = (
    Arc<dyn SpendStore>,
    Arc<dyn SpendStore>,
    Arc<dyn EventPublisher>,
    Events,
);

impl World {
    async fn new(backend: Backend, test: &str) -> World {
        let stack = Stack::on(backend, test).await;
        let billing = stack.billing();
        billing.put_catalog(&sample::catalog()).await.unwrap();
        let now = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
        let anchor = now.duration_trunc(Duration::hours(1)).unwrap() - Duration::hours(2);
        billing
            .put_account(&sample::account("acct_a", Currency::USD))
            .await
            .unwrap();
        let plan = sample::subscription("x", "acct_a", Cadence::Daily, anchor).plan;
        let schedule = BillingSchedule::new(Cadence::Daily, Alignment::Anniversary, anchor, chrono_tz::UTC);
        let sub = BillingSubscription::new("sub_a", "acct_a", schedule, plan).unwrap();
        billing.put_subscription(&sub).await.unwrap();
        let api = stack.api();
        let (spend, spend_setup, publisher, events): SpendWiring = match backend {
            Backend::Memory => {
                // The stack's store: the one the API's spend-limit routes write.
                let store = stack.spend_of("UsageIngestFunction");
                let p = Arc::new(MemoryEventPublisher::new());
                (store.clone(), store, p.clone(), Events::Memory(p))
            }
            Backend::Moto => {
                let types = [SPEND_THRESHOLD_REACHED, SPEND_LIMIT_REACHED];
                let (bus, queue) = stack.event_queue_of("spend", SPEND_EVENT_SOURCE, &types).await;
                (
                    Arc::new(stack.billing_store_of("UsageIngestFunction")),
                    Arc::new(stack.billing_store()),
                    Arc::new(stack.publisher_of("UsageIngestFunction", &bus)),
                    Events::Moto(queue),
                )
            }
        };
        World {
            stack,
            api,
            now,
            spend,
            spend_setup,
            publisher,
            events,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// The usage-ingest handler's draw-down, with its function's recorded clients.
    fn draw(&self) -> CreditDraw {
        CreditDraw {
            credits: self.stack.credits_of("UsageIngestFunction"),
            billing: self.stack.billing_of("UsageIngestFunction"),
            pause,
            spend: self.spend.clone(),
            publisher: self.publisher.clone(),
        }
    }

    /// Every spend event published so far: (detail type, detail).
    async fn spend_events(&self) -> Vec<(String, Value)> {
        let new: Vec<(String, Value)> = match &self.events {
            Events::Memory(p) => {
                let all: Vec<(String, Value)> = p
                    .events()
                    .into_iter()
                    .map(|e| (e.detail_type, e.detail))
                    .collect();
                let seen = self.seen.lock().unwrap().len();
                all[seen..].to_vec()
            }
            Events::Moto(queue) => self.stack.drain_events_of(queue, SPEND_EVENT_SOURCE).await,
        };
        let mut seen = self.seen.lock().unwrap();
        seen.extend(new);
        seen.clone()
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let text = body.map(|b| b.to_string());
        let req = with_key(api_request(method, path, &[], text.as_deref()), OPERATOR_KEY);
        let resp = self.api.handle(req, self.now).await;
        (resp.status().as_u16(), body_json(&resp))
    }

    async fn balance(&self) -> Value {
        let (status, body) = self
            .call("GET", "/v1/accounts/acct_a/credit-balances", None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"][0].clone()
    }

    async fn ledger_len(&self) -> usize {
        let req = api_request(
            "GET",
            "/v1/accounts/acct_a/credit-ledger",
            &[("limit", "100")],
            None,
        );
        let resp = self.api.handle(with_key(req, OPERATOR_KEY), self.now).await;
        let (status, body) = (resp.status().as_u16(), body_json(&resp));
        assert_eq!(status, 200, "{body}");
        body["data"].as_array().unwrap().len()
    }

    /// Ingests batch `n` (one message: an hour of one A100 GPU for `job`) through the handler
    /// and its draw-down. Returns what the period has drawn after it.
    async fn ingest(&self, n: usize, job: &str) -> Decimal {
        let at = self.now - Duration::minutes(50) + Duration::minutes(n as i64);
        let body = json!([{"id": format!("e{n}"), "account_id": "acct_a", "provider_id": "prov_000",
            "job_id": job, "meter": "gpu_seconds", "quantity": "3600", "timestamp": at.to_rfc3339(),
            "dimensions": {"gpu_model": "A100"}}]);
        let ingestor = self.stack.ingestor();
        let draw = self.draw();
        let event = sqs_event(&[(format!("m{n}"), body.to_string())]);
        let (response, draws) = ingestor.handle_and_draw(event, self.now, &draw).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(draws.len(), 1, "{draws:?}");
        draws[0].drawn
    }
}

/// Each batch's usage is drawn from the free balance as it is ingested, and the API's balance
/// says so after each batch; a replay draws nothing; once the credit is used up, what the
/// usage overdrew is less than one batch's cost.
async fn usage_is_drawn_down_batch_by_batch_until_the_credit_is_used_up(backend: Backend) {
    let w = World::new(backend, "credit-draw").await;
    let (status, body) = w
        .call(
            "POST",
            "/v1/accounts/acct_a/credit-grants",
            Some(json!({"grant_id": "prepaid", "amount": "20.00", "currency": "USD", "kind": "paid"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, hold) = w
        .call(
            "POST",
            "/v1/accounts/acct_a/authorizations",
            Some(json!({"hold_id": "h1", "job_id": "job_1", "max_amount": "5.00", "currency": "USD"})),
        )
        .await;
    assert_eq!(status, 201, "{hold}");
    let limits = SpendLimits {
        account_id: "acct_a".into(),
        currency: Currency::USD,
        soft: Some(Decimal::new(500, 2)),
        hard: None,
    };
    w.spend_setup.put_spend_limits(&limits).await.unwrap();
    let (granted, held) = (Decimal::new(2000, 2), Decimal::new(500, 2));
    let mut drawn = Decimal::ZERO;
    let mut n = 0;
    loop {
        let after = w.ingest(n, "job_1").await;
        let batch = after - drawn;
        assert!(batch > Decimal::ZERO, "batch {n} drew nothing");
        drawn = after;
        let b = w.balance().await;
        assert_eq!(d(&b["held"]), held, "{b}");
        // What the grant paid, and what no grant covered.
        let consumed = d(&b["consumed"]);
        let overdrawn = drawn - consumed;
        assert_eq!(
            d(&b["available"]),
            (granted - held - drawn).max(Decimal::ZERO),
            "{b}"
        );
        let events = w.spend_events().await;
        let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
        if d(&b["available"]) == Decimal::ZERO {
            // The documented bound: the credit runs out within the batch that overdrew it, and
            // that batch announces it, naming the running job.
            assert!(overdrawn < batch, "overdrawn {overdrawn} by batch {n} of {batch}");
            assert_eq!(
                types,
                [SPEND_THRESHOLD_REACHED, SPEND_LIMIT_REACHED],
                "{events:?}"
            );
            let stop = &events[1].1;
            assert_eq!(stop["reason"], "balance_exhausted", "{stop}");
            assert_eq!(
                stop["jobs"],
                json!([{"job_id": "job_1", "hold_id": "h1"}]),
                "{stop}"
            );
            assert_eq!(stop["account_id"], "acct_a");
            break;
        }
        // The soft limit (5.00) is announced by the batch that reached it, once.
        let expected: &[&str] = if drawn >= Decimal::new(500, 2) {
            &[SPEND_THRESHOLD_REACHED]
        } else {
            &[]
        };
        assert_eq!(types, expected, "after batch {n}: {events:?}");
        assert_eq!(overdrawn, Decimal::ZERO);
        // A replay of the batch draws nothing more and writes no entry.
        let entries = w.ledger_len().await;
        assert_eq!(w.ingest(n, "job_1").await, drawn);
        assert_eq!(w.ledger_len().await, entries);
        n += 1;
        assert!(n < 20, "the credit was never used up: {b}");
    }
    assert!(
        n >= 2,
        "the credit ran out after {n} batches: make batches smaller"
    );
    // Later batches, and a replay, announce nothing more.
    w.ingest(n + 1, "job_1").await;
    w.ingest(n + 1, "job_1").await;
    assert_eq!(w.spend_events().await.len(), 2);
}

/// A soft limit set through `PUT .../spend-limits` is the one the draw-down checks: the batch
/// that brings the period's spend to it announces `SpendThresholdReached` with it, once.
async fn a_limit_set_through_the_api_is_what_the_draw_down_checks(backend: Backend) {
    let w = World::new(backend, "credit-limit-route").await;
    let grant = json!({"grant_id": "prepaid", "amount": "100.00", "currency": "USD", "kind": "paid"});
    let (status, body) = w
        .call("POST", "/v1/accounts/acct_a/credit-grants", Some(grant))
        .await;
    assert_eq!(status, 201, "{body}");
    let limits = json!({"currency": "USD", "soft": "5.00", "hard": "90.00"});
    let (status, body) = w
        .call("PUT", "/v1/accounts/acct_a/spend-limits", Some(limits))
        .await;
    assert_eq!(status, 200, "{body}");
    let soft = Decimal::new(500, 2);
    let mut n = 0;
    loop {
        let drawn = w.ingest(n, "job_1").await;
        let events = w.spend_events().await;
        if drawn < soft {
            assert!(
                events.is_empty(),
                "below the soft limit after batch {n}: {events:?}"
            );
        } else {
            assert_eq!(events.len(), 1, "{events:?}");
            let (kind, detail) = &events[0];
            assert_eq!(kind, SPEND_THRESHOLD_REACHED);
            assert_eq!(d(&detail["soft_limit"]), soft, "{detail}");
            assert_eq!(d(&detail["spend"]), drawn, "{detail}");
            assert_eq!(detail["account_id"], "acct_a");
            break;
        }
        n += 1;
        assert!(n < 20, "the soft limit was never reached: {drawn}");
    }
    assert!(n >= 1, "the first batch reached the limit: make it higher");
    // The next batch announces nothing more.
    w.ingest(n + 1, "job_1").await;
    assert_eq!(w.spend_events().await.len(), 1);
}

/// An account without credit has no ledger made for it by its usage.
async fn an_account_without_credit_gets_no_ledger(backend: Backend) {
    let w = World::new(backend, "credit-draw-none").await;
    let ingestor = w.stack.ingestor();
    let draw = w.draw();
    let body = json!({"id": "e1", "account_id": "acct_a", "provider_id": "prov_000", "job_id": "j",
        "meter": "cpu_seconds", "quantity": "100", "timestamp": (w.now - Duration::minutes(5)).to_rfc3339()});
    let (response, draws) = ingestor
        .handle_and_draw(sqs_event(&[("m1".into(), body.to_string())]), w.now, &draw)
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert!(draws.is_empty());
    assert_eq!(w.stack.credits().load("acct_a").await.unwrap().version, 0);
}

/// The draw-down's cost, for BENCHMARKS.md: 1,000 events in 10 SQS batches of 10 messages of
/// 10 events, over `accounts` accounts with credit (each batch holds every account's events).
/// Run alone with the call log on; count the usage-ingest function's billing-table calls and
/// its aggregate queries (the ingestion itself makes neither):
/// `bash scripts/test.sh -p meterline-integration-tests --test drawdown cost_ -- --ignored`.
async fn draw_down_cost(accounts: usize) {
    let w = World::new(Backend::Moto, &format!("credit-draw-cost-{accounts}")).await;
    let billing = w.stack.billing();
    let credits = w.stack.credits();
    for a in 0..accounts {
        let id = format!("acct_{a}");
        billing
            .put_account(&sample::account(&id, Currency::USD))
            .await
            .unwrap();
        let anchor = w.now.duration_trunc(Duration::hours(1)).unwrap() - Duration::hours(2);
        let plan = sample::subscription("x", &id, Cadence::Daily, anchor).plan;
        let schedule = BillingSchedule::new(Cadence::Daily, Alignment::Anniversary, anchor, chrono_tz::UTC);
        let sub = BillingSubscription::new(&format!("sub_{a}"), &id, schedule, plan).unwrap();
        billing.put_subscription(&sub).await.unwrap();
        let mut ledger = credits.load(&id).await.unwrap().ledger;
        let grant: meterline_shared::domain::credits::CreditGrant = serde_json::from_value(json!({
            "id": "g", "account_id": id, "amount": {"amount": "1000000.00", "currency": "USD"},
            "kind": "paid", "priority": 0, "effective_at": (w.now - Duration::days(1)).to_rfc3339(),
            "source": {"type": "operator", "note": "bench"}}))
        .unwrap();
        ledger.grant(&grant, w.now).unwrap();
        credits.save(&ledger, 0).await.unwrap();
    }
    let ingestor = w.stack.ingestor();
    let draw = w.draw();
    let meters = [("gpu_seconds", Some("A100")), ("cpu_seconds", None)];
    let mut i = 0;
    for batch in 0..10 {
        let messages: Vec<(String, String)> = (0..10)
            .map(|m| {
                let events: Vec<Value> = (0..10)
                    .map(|_| {
                        i += 1;
                        let (meter, gpu) = meters[i % 2];
                        let at = w.now - Duration::minutes(90) + Duration::seconds(i as i64 * 5);
                        let mut e = json!({"id": format!("e{i}"), "account_id": format!("acct_{}", i % accounts),
                            "provider_id": "prov_000", "job_id": "j", "meter": meter, "quantity": "60",
                            "timestamp": at.to_rfc3339()});
                        if let Some(g) = gpu {
                            e["dimensions"] = json!({"gpu_model": g});
                        }
                        e
                    })
                    .collect();
                (format!("m{batch}-{m}"), Value::from(events).to_string())
            })
            .collect();
        let (response, draws) = ingestor.handle_and_draw(sqs_event(&messages), w.now, &draw).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(draws.len(), accounts);
    }
}

#[tokio::test]
#[ignore = "a measurement: run alone with the call log (see draw_down_cost)"]
async fn cost_of_one_account() {
    draw_down_cost(1).await
}

#[tokio::test]
#[ignore = "a measurement: run alone with the call log (see draw_down_cost)"]
async fn cost_of_ten_accounts() {
    draw_down_cost(10).await
}

on_both_backends!(
    usage_is_drawn_down_batch_by_batch_until_the_credit_is_used_up,
    a_limit_set_through_the_api_is_what_the_draw_down_checks,
    an_account_without_credit_gets_no_ledger,
);
