//! The billing-cycle close against the local endpoint (moto_server): the scheduled function
//! fired twice, a retried worker and two racing workers give one invoice with one number;
//! replaying every usage message after a close changes nothing invoiced; a late event becomes
//! an adjustment in the next period; events reach EventBridge.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{indexes_caught_up, parallel, pump, pump_parallel, sqs_event, Stack};
use meterline_shared::adapters::aws::{
    DynamoBillingStore, DynamoUsageStore, EventBridgePublisher, SqsCloseQueue,
};
use meterline_shared::adapters::memory::InMemoryRateStore;
use meterline_shared::adapters::memory::MemoryEventPublisher;
use meterline_shared::domain::billing::{
    sample, Alignment, BillingSchedule, BillingSubscription, Cadence, Invoice,
};
use meterline_shared::domain::meter::Meter;
use meterline_shared::domain::money::Currency;
use meterline_shared::domain::usage::UsageEvent;
use meterline_shared::ports::billing::CloseRequest;
use meterline_shared::ports::billing::{BillingStore, EventPublisher};
use meterline_shared::ports::rates::RateStore;
use meterline_shared::services::closing::{CloseSettings, Closer};
use rust_decimal::Decimal;
use serde_json::json;
use std::collections::BTreeMap;
use usage_ingest::Ingestor;

fn hour() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::hours(1)).unwrap()
}

struct Billing {
    stack: Stack,
    /// The billing table, to set up and inspect.
    billing: DynamoBillingStore,
    /// The close worker's stores.
    worker_billing: DynamoBillingStore,
    worker_usage: DynamoUsageStore,
    rates: InMemoryRateStore,
    events: MemoryEventPublisher,
    /// Period 0 of the daily subscription starts here (three days ago, on the hour).
    anchor: DateTime<Utc>,
}

impl Billing {
    async fn new(test: &str) -> Billing {
        let stack = Stack::create(test).await;
        let b = Billing {
            billing: stack.billing_store(),
            worker_billing: stack.billing_store_of("CloseWorkerFunction"),
            worker_usage: stack.usage_store_of("CloseWorkerFunction"),
            rates: InMemoryRateStore::new(),
            events: MemoryEventPublisher::new(),
            anchor: hour() - Duration::days(3),
            stack,
        };
        b.billing.put_catalog(&sample::catalog()).await.unwrap();
        b
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

    fn closer<'a>(&'a self, publisher: &'a dyn EventPublisher) -> Closer<'a> {
        Closer {
            billing: &self.worker_billing,
            usage: &self.worker_usage,
            rates: &self.rates,
            publisher,
            settings: CloseSettings::default(),
        }
    }

    /// Sends usage through the ingestion handler, one SQS message per body.
    async fn ingest(&self, bodies: &[String]) {
        let ingestor = Ingestor {
            store: std::sync::Arc::new(self.stack.usage_store_of("UsageIngestFunction")),
            settings: self.stack.usage_config().ingest,
        };
        let messages: Vec<(String, String)> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("m{i}"), b.clone()))
            .collect();
        // Batches of ten, on `parallel()` instances of the function at once.
        let (ingestor, lanes) = (&ingestor, parallel());
        let chunks: Vec<&[(String, String)]> = messages.chunks(10).collect();
        let runs = (0..lanes).map(|lane| {
            let chunks = &chunks;
            async move {
                for chunk in chunks.iter().skip(lane).step_by(lanes) {
                    let resp = ingestor.handle(sqs_event(chunk), Utc::now()).await;
                    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
                }
            }
        });
        futures::future::join_all(runs).await;
    }

    /// The cycle-close function's store and queue.
    fn cycle_close(&self) -> (DynamoBillingStore, SqsCloseQueue) {
        (
            self.stack.billing_store_of("CycleCloseFunction"),
            self.stack.close_queue_of_cycle_close(),
        )
    }

    /// `function`'s publisher on a bus of its own whose `detail_types` a queue receives:
    /// (publisher, queue URL), read with [`Stack::drain_events`].
    async fn bus_of(
        &self,
        function: &str,
        name: &str,
        detail_types: &[&str],
    ) -> (EventBridgePublisher, String) {
        let (bus, queue) = self.stack.event_queue(name, detail_types).await;
        (self.stack.publisher_of(function, &bus), queue)
    }

    async fn invoices(&self, account: &str) -> Vec<Invoice> {
        self.billing
            .invoices_since(account, &format!("sub_{account}"), self.anchor)
            .await
            .unwrap()
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
        dimensions: [("gpu_model".to_string(), "A100".to_string())].into(),
    }
}

fn scheduled_event(at: DateTime<Utc>) -> EventBridgeEvent<serde_json::Value> {
    serde_json::from_value(json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": at.to_rfc3339(), "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/CycleClose"], "detail": {}
    }))
    .unwrap()
}

#[tokio::test]
async fn schedule_twice_retries_and_racing_workers_give_one_invoice_and_one_number() {
    let b = Billing::new("billing-once").await;
    b.subscribe("acct_a").await;
    b.subscribe("acct_b").await;
    let t = b.anchor + Duration::hours(2);
    let usage = vec![
        ev("a1", "acct_a", "prov_000", Meter::GpuSeconds, "3600", t),
        ev("a2", "acct_a", "prov_001", Meter::CpuSeconds, "7200", t),
        ev("b1", "acct_b", "prov_000", Meter::GpuSeconds, "1800", t),
    ];
    b.ingest(&[serde_json::to_string(&usage).unwrap()]).await;

    // The schedule fires twice: every due subscription is queued twice.
    let (store, queue) = b.cycle_close();
    let now = Utc::now();
    for _ in 0..2 {
        indexes_caught_up().await;
        let s = cycle_close::handle(&store, &queue, &b.events, &scheduled_event(now), now)
            .await
            .unwrap();
        assert_eq!(s.enqueued, 2);
    }
    // The worker consumes the queue (duplicates included)...
    let closer = b.closer(&b.events);
    let stats = pump_parallel(&b.stack.sqs(), &b.stack.resource("CloseQueue"), 10, |event| {
        close_worker::handle(&closer, event, now)
    })
    .await;
    assert_eq!(stats.failed, 0);
    // Consumers side by side (the fault-mode run) may both receive one message of a standard
    // queue, as the fifty-close test saw once: then it is closed and deleted twice. The invoices
    // below must be the same either way.
    assert!(
        stats.deleted == 4 || (parallel() > 1 && stats.deleted > 4),
        "{stats:?}"
    );
    // ...and a message delivered again later (a retry after a timeout) changes nothing.
    let retry = serde_json::to_string(&CloseRequest {
        account_id: "acct_a".into(),
        subscription_id: "sub_acct_a".into(),
        period_end: b.anchor + Duration::days(1),
    })
    .unwrap();
    let resp = close_worker::handle(&closer, sqs_event(&[("r1".into(), retry)]), Utc::now()).await;
    assert!(resp.batch_item_failures.is_empty());

    // Three daily periods ended for each account: six invoices, numbered 1..6 without gaps.
    let mut all: Vec<Invoice> = b.invoices("acct_a").await;
    all.extend(b.invoices("acct_b").await);
    assert_eq!(all.len(), 6);
    let mut numbers: Vec<String> = all.iter().map(|i| i.number.clone().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=6).map(|n| format!("ML-{n:06}")).collect::<Vec<_>>());
    assert_eq!(b.billing.last_number("ML").await.unwrap(), 6);
    let first = &b.invoices("acct_a").await[0];
    let gpu: Decimal = first
        .lines
        .iter()
        .filter(|l| l.meter == Some(Meter::GpuSeconds))
        .map(|l| l.net)
        .sum();
    assert_eq!(gpu, "2.88".parse().unwrap()); // 3600 x 0.0008

    // Republished events keep their ids: one InvoiceFinalized per invoice, whatever the count.
    let ids: std::collections::BTreeSet<String> = b
        .events
        .events()
        .iter()
        .filter(|e| e.detail_type == "InvoiceFinalized")
        .map(|e| e.event_id().to_string())
        .collect();
    assert_eq!(ids.len(), 6);

    // Two workers racing on one account's next period: one invoice, one number.
    b.subscribe("acct_c").await;
    let req = CloseRequest {
        account_id: "acct_c".into(),
        subscription_id: "sub_acct_c".into(),
        period_end: b.anchor + Duration::days(1),
    };
    let (r1, r2) = tokio::join!(
        closer.close_subscription(&req, b.anchor + Duration::days(1)),
        closer.close_subscription(&req, b.anchor + Duration::days(1))
    );
    let committed = r1.unwrap().committed.len() + r2.unwrap().committed.len();
    assert_eq!(committed, 1);
    let c = b.invoices("acct_c").await;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].number.as_deref(), Some("ML-000007"));
    assert_eq!(b.billing.last_number("ML").await.unwrap(), 7);
}

#[tokio::test]
async fn replayed_usage_changes_nothing_and_late_usage_is_adjusted_next_period() {
    let b = Billing::new("billing-late").await;
    b.subscribe("acct_l").await;
    let day0 = b.anchor + Duration::hours(5);
    let usage: Vec<UsageEvent> = (0..20)
        .map(|i| {
            ev(
                &format!("u{i}"),
                "acct_l",
                "prov_000",
                Meter::GpuSeconds,
                "100",
                day0,
            )
        })
        .collect();
    let bodies: Vec<String> = usage
        .chunks(5)
        .map(|c| serde_json::to_string(c).unwrap())
        .collect();
    b.ingest(&bodies).await;

    // Close day 0 only.
    let closer = b.closer(&b.events);
    let day0_end = b.anchor + Duration::days(1);
    let req = CloseRequest {
        account_id: "acct_l".into(),
        subscription_id: "sub_acct_l".into(),
        period_end: day0_end,
    };
    let first = closer.close_subscription(&req, day0_end).await.unwrap();
    assert_eq!(first.committed.len(), 1);
    let original = first.committed[0].clone();

    // Every usage message replayed: nothing changes.
    b.ingest(&bodies).await;
    // A late event for day 0 arrives, and usage for day 1.
    b.ingest(&[serde_json::to_string(&[
        ev(
            "late",
            "acct_l",
            "prov_000",
            Meter::GpuSeconds,
            "1000",
            day0 + Duration::hours(3),
        ),
        ev(
            "d1",
            "acct_l",
            "prov_001",
            Meter::CpuSeconds,
            "100",
            day0_end + Duration::hours(1),
        ),
    ])
    .unwrap()])
        .await;
    let req1 = CloseRequest {
        period_end: day0_end + Duration::days(1),
        ..req.clone()
    };
    let second = closer
        .close_subscription(&req1, day0_end + Duration::days(1))
        .await
        .unwrap();
    let inv1 = &second.committed[0];
    let adj: Vec<_> = inv1.lines.iter().filter(|l| l.adjusts.is_some()).collect();
    assert_eq!(adj.len(), 1, "{:#?}", inv1.lines);
    assert_eq!(adj[0].quantity, "1000".parse::<Decimal>().unwrap());
    assert_eq!(adj[0].net, "0.80".parse::<Decimal>().unwrap());
    assert_eq!(
        adj[0].adjusts.as_ref().unwrap().original_invoice_id,
        original.invoice_id
    );
    assert_eq!(adj[0].adjusts.as_ref().unwrap().original_period, original.period);

    // The closed invoice was never rewritten; replaying everything again and closing day 2
    // adds no adjustment.
    let stored = b
        .billing
        .invoice("acct_l", &original.invoice_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, original);
    b.ingest(&bodies).await;
    let third = closer.close_subscription(&req1, Utc::now()).await.unwrap();
    assert_eq!(third.committed.len(), 1);
    assert!(third.committed[0].lines.iter().all(|l| l.adjusts.is_none()));

    // Usage billed per meter = usage ingested, exactly.
    let mut billed: BTreeMap<Meter, Decimal> = BTreeMap::new();
    for l in b.invoices("acct_l").await.iter().flat_map(|i| i.lines.clone()) {
        if let Some(m) = l.meter {
            *billed.entry(m).or_default() += l.quantity;
        }
    }
    assert_eq!(billed[&Meter::GpuSeconds], "3000".parse::<Decimal>().unwrap());
    assert_eq!(billed[&Meter::CpuSeconds], "100".parse::<Decimal>().unwrap());

    // Provider statements are stored per provider, and balance with the invoices.
    let entries = b
        .billing
        .provider_statements("prov_000", b.anchor, Utc::now() + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    for inv in b.invoices("acct_l").await {
        let parts: Decimal = inv
            .statements
            .statements
            .iter()
            .map(|s| s.payout.amount + s.marketplace_fee.amount + s.tax.amount)
            .sum();
        assert_eq!(inv.total, parts);
    }
}

#[tokio::test]
async fn invoice_events_are_published_on_eventbridge() {
    let b = Billing::new("billing-events").await;
    b.subscribe("acct_e").await;
    let bus = b.stack.function_env("CloseWorkerFunction")["EVENT_BUS_NAME"].clone();
    let publisher = b.stack.publisher_of("CloseWorkerFunction", &bus);
    let closer = b.closer(&publisher);
    let req = CloseRequest {
        account_id: "acct_e".into(),
        subscription_id: "sub_acct_e".into(),
        period_end: b.anchor + Duration::days(1),
    };
    let report = closer.close_subscription(&req, Utc::now()).await.unwrap();
    assert_eq!(report.committed.len(), 3);
    // Each invoice: InvoiceFinalized and (auto-pay, fee due) PaymentRequested.
    assert_eq!(report.events_published, 6);
}

/// Several partial payments of one invoice delivered at once (several instances of the
/// payment-result function): each is applied once, none is lost. In the fault mode their
/// transactions on the invoice conflict.
#[tokio::test]
async fn concurrent_partial_payments_of_one_invoice_all_apply() {
    use meterline_shared::domain::billing::events::PaymentResult;
    use meterline_shared::ports::billing::PaymentOutcome;
    let b = Billing::new("billing-payments").await;
    b.subscribe("acct_p").await;
    let closer = b.closer(&b.events);
    let req = CloseRequest {
        account_id: "acct_p".into(),
        subscription_id: "sub_acct_p".into(),
        period_end: b.anchor + Duration::days(1),
    };
    closer.close_subscription(&req, Utc::now()).await.unwrap();
    let inv = b.invoices("acct_p").await[0].clone();
    let before = inv.outstanding;
    assert!(before > Decimal::ONE, "{before}");
    let payments: Vec<_> = (0..parallel().max(4) * 2)
        .map(|_| b.stack.billing_store_of("PaymentResultFunction"))
        .collect();
    let publisher = MemoryEventPublisher::new();
    let calls = payments.iter().enumerate().map(|(i, store)| {
        let event: EventBridgeEvent<PaymentResult> = serde_json::from_value(json!({
            "version": "0", "id": format!("e-pay-{i}"), "detail-type": "PaymentSucceeded",
            "source": "meterline.payments", "account": "123456789012",
            "time": Utc::now().to_rfc3339(), "region": "us-east-1", "resources": [],
            "detail": {"event_id": format!("pay-{i}"), "invoice_id": inv.invoice_id,
                       "account_id": "acct_p", "currency": "USD", "amount": "0.01",
                       "at": Utc::now().to_rfc3339()}
        }))
        .unwrap();
        let publisher = &publisher;
        async move { payment_result::handle(store, publisher, &event).await }
    });
    let outcomes = futures::future::join_all(calls).await;
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Ok(PaymentOutcome::Applied { .. })),
            "{outcome:?}"
        );
    }
    let after = b
        .billing
        .invoice("acct_p", &inv.invoice_id)
        .await
        .unwrap()
        .unwrap();
    let paid = Decimal::new(outcomes.len() as i64, 2);
    assert_eq!(after.outstanding, before - paid);
}

/// A check that charged the late fees and failed to publish (the bus missing), and no check
/// again until the next fee period: no later check computes those fees, so they were never
/// announced. On DynamoDB the fee is listed unannounced in the transaction that charges it and
/// the next check announces it, once, with the new period's fee.
#[tokio::test]
async fn late_fees_left_unannounced_are_announced_in_the_next_fee_period() {
    use std::collections::BTreeSet;
    let b = Billing::new("billing-unannounced").await;
    b.subscribe("acct_u").await;
    let req = CloseRequest {
        account_id: "acct_u".into(),
        subscription_id: "sub_acct_u".into(),
        period_end: b.anchor + Duration::days(1),
    };
    let issued = Utc::now();
    let report = b
        .closer(&b.events)
        .close_subscription(&req, issued)
        .await
        .unwrap();
    let invoices: BTreeSet<String> = report.committed.iter().map(|i| i.invoice_id.clone()).collect();
    assert_eq!(invoices.len(), 3);
    let store = b.stack.billing_store_of("OverdueCheckFunction");
    let (bus, queue) = b.stack.event_queue("late-events", &["InvoiceOverdue"]).await;
    let publisher = b.stack.publisher_of("OverdueCheckFunction", &bus);
    let missing = b
        .stack
        .publisher_of("OverdueCheckFunction", &format!("{bus}-no-such-bus"));
    let at = issued + Duration::days(20);
    indexes_caught_up().await;
    assert!(overdue_check::handle(&store, &missing, &scheduled_event(at), at)
        .await
        .is_err());
    // Thirty days on, the next fee period: its fees, and the first period's announced.
    let later = issued + Duration::days(50);
    for _ in 0..3 {
        indexes_caught_up().await;
        overdue_check::handle(&store, &publisher, &scheduled_event(later), later)
            .await
            .unwrap();
    }
    let ids: Vec<String> = b
        .stack
        .drain_events(&queue)
        .await
        .iter()
        .map(|(_, detail)| detail["event_id"].as_str().unwrap().to_string())
        .collect();
    // The failed check stopped at its first publish: one invoice's first fee was charged.
    let first: Vec<&String> = ids.iter().filter(|id| id.ends_with("#0")).collect();
    assert_eq!(first.len(), 1, "{ids:?}");
    let expected: BTreeSet<String> = invoices
        .iter()
        .map(|i| format!("invoice-overdue#{i}#1"))
        .chain([first[0].clone()])
        .collect();
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected, "{ids:?}");
    assert_eq!(ids.len(), expected.len(), "each announced once: {ids:?}");
    for shard in 0..meterline_shared::ports::billing::DUE_SHARDS {
        assert!(store.unannounced_fees(shard).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn the_overdue_check_run_ten_times_charges_one_late_fee_and_payments_apply_once() {
    use meterline_shared::domain::billing::events::{paid_event, PaymentResult};
    use meterline_shared::domain::billing::InvoiceStatus;
    use meterline_shared::ports::billing::PaymentOutcome;
    let b = Billing::new("billing-overdue").await;
    b.subscribe("acct_o").await;
    let req = CloseRequest {
        account_id: "acct_o".into(),
        subscription_id: "sub_acct_o".into(),
        period_end: b.anchor + Duration::days(1),
    };
    let issued = Utc::now();
    let report = b
        .closer(&b.events)
        .close_subscription(&req, issued)
        .await
        .unwrap();
    assert_eq!(report.committed.len(), 3);
    let overdue_store = b.stack.billing_store_of("OverdueCheckFunction");
    let (publisher, overdue_queue) = b
        .bus_of("OverdueCheckFunction", "overdue-events", &["InvoiceOverdue"])
        .await;

    // Net 14 + 3 days' grace: not late after 10 days, late after 20; ten runs, one fee each.
    indexes_caught_up().await;
    let early = overdue_check::handle(
        &overdue_store,
        &publisher,
        &scheduled_event(issued + Duration::days(10)),
        Utc::now() + Duration::days(10),
    )
    .await
    .unwrap();
    assert_eq!((early.marked_past_due, early.fees_charged), (0, 0));
    let mut fees = 0;
    let mut marked = 0;
    for _ in 0..10 {
        let at = issued + Duration::days(20);
        indexes_caught_up().await;
        let s = overdue_check::handle(&overdue_store, &publisher, &scheduled_event(at), at)
            .await
            .unwrap();
        assert_eq!(s.checked, 3);
        fees += s.fees_charged;
        marked += s.marked_past_due;
    }
    assert_eq!((fees, marked), (3, 3));
    let overdue = b.stack.drain_events(&overdue_queue).await;
    assert_eq!(overdue.len(), 3, "{overdue:?}");
    let inv = &b.invoices("acct_o").await[0];
    assert_eq!(inv.status, InvoiceStatus::PastDue);
    // 1.5 % of 11.90 (a day's 10.00 fee + 19 % tax) = 0.1785 -> 0.18.
    assert_eq!(inv.amount_due, "11.90".parse::<Decimal>().unwrap());
    assert_eq!(inv.outstanding, "12.08".parse::<Decimal>().unwrap());
    // The next fee period (30 days on): one more fee each, however often it runs.
    for _ in 0..3 {
        let at = issued + Duration::days(50);
        indexes_caught_up().await;
        overdue_check::handle(&overdue_store, &publisher, &scheduled_event(at), at)
            .await
            .unwrap();
    }
    let inv = &b.invoices("acct_o").await[0];
    assert_eq!(inv.outstanding, "12.26".parse::<Decimal>().unwrap());

    // The payment service pays it: applied once, however often the event is delivered, and
    // `InvoicePaid` reaches the bus (a rule routes it to a queue) at least once.
    let payments = b.stack.billing_store_of("PaymentResultFunction");
    let (bus, queue) = b.stack.event_queue("paid-events", &["InvoicePaid"]).await;
    let good = b.stack.publisher_of("PaymentResultFunction", &bus);
    // Publishing fails after the write: a bus that does not exist.
    let broken = b
        .stack
        .publisher_of("PaymentResultFunction", &format!("{bus}-no-such-bus"));
    let result = |event_id: &str, invoice_id: &str, amount: &str| -> EventBridgeEvent<PaymentResult> {
        serde_json::from_value(json!({
            "version": "0", "id": format!("e-{event_id}"), "detail-type": "PaymentSucceeded",
            "source": "meterline.payments", "account": "123456789012",
            "time": Utc::now().to_rfc3339(), "region": "us-east-1", "resources": [],
            "detail": {"event_id": event_id, "invoice_id": invoice_id, "account_id": "acct_o",
                       "currency": "USD", "amount": amount, "at": Utc::now().to_rfc3339()}
        }))
        .unwrap()
    };
    // A partial payment: applied, nothing paid, nothing published.
    let partial = result("pay_0", &inv.invoice_id, "1.00");
    assert_eq!(
        payment_result::handle(&payments, &good, &partial).await.unwrap(),
        PaymentOutcome::Applied {
            status: InvoiceStatus::PastDue,
            outstanding: "11.26".parse().unwrap()
        }
    );
    // The rest, with the bus unreachable: the payment is applied but the invocation fails (so
    // Lambda delivers the event again).
    let paid = result("pay_1", &inv.invoice_id, "11.26");
    let err = payment_result::handle(&payments, &broken, &paid)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            meterline_shared::services::collections::CollectionError::Store(_)
        ),
        "{err}"
    );
    let stored = b
        .billing
        .invoice("acct_o", &inv.invoice_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.status, stored.outstanding),
        (InvoiceStatus::Paid, Decimal::ZERO)
    );
    // Delivered again: a duplicate, and this time InvoicePaid is published.
    assert_eq!(
        payment_result::handle(&payments, &good, &paid).await.unwrap(),
        PaymentOutcome::Duplicate
    );
    // A second invoice paid in full in one go: applied and published.
    let other = b.invoices("acct_o").await[1].clone();
    let full = result("pay_2", &other.invoice_id, &other.outstanding.to_string());
    assert_eq!(
        payment_result::handle(&payments, &good, &full).await.unwrap(),
        PaymentOutcome::Applied {
            status: InvoiceStatus::Paid,
            outstanding: Decimal::ZERO
        }
    );
    // A payment for an invoice already paid did not pay it: nothing published.
    assert_eq!(
        payment_result::handle(&payments, &good, &result("pay_3", &other.invoice_id, "1.00"))
            .await
            .unwrap(),
        PaymentOutcome::Recorded {
            status: InvoiceStatus::Paid
        }
    );
    // One InvoicePaid per paid invoice, the event the API's mark paid would publish.
    let got = b.stack.drain_events(&queue).await;
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for (kind, detail) in &got {
        assert_eq!(kind, "InvoicePaid");
        *ids.entry(detail["event_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [
        (format!("invoice-paid#{}", inv.invoice_id), 1),
        (format!("invoice-paid#{}", other.invoice_id), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(ids, expected, "{got:?}");
    let detail = &got
        .iter()
        .find(|(_, d)| d["invoice_id"] == inv.invoice_id.as_str())
        .unwrap()
        .1;
    assert_eq!(detail, &paid_event(&stored).detail);
    assert_eq!(detail["total"], "11.90");
    // Paid invoices leave the open index: the next check sees the one left only.
    let at = issued + Duration::days(51);
    indexes_caught_up().await;
    let s = overdue_check::handle(&overdue_store, &publisher, &scheduled_event(at), at)
        .await
        .unwrap();
    assert_eq!(s.checked, 1);
}

#[tokio::test]
async fn an_invoice_in_another_currency_uses_the_stored_rate_in_force_at_period_end() {
    let b = Billing::new("billing-fx").await;
    b.billing
        .put_account(&sample::account("acct_eur", Currency::EUR))
        .await
        .unwrap();
    let plan = sample::subscription("x", "acct_eur", Cadence::Daily, b.anchor).plan;
    let schedule = BillingSchedule::new(Cadence::Daily, Alignment::Anniversary, b.anchor, chrono_tz::UTC);
    let sub = BillingSubscription::new("sub_acct_eur", "acct_eur", schedule, plan).unwrap();
    b.billing.put_subscription(&sub).await.unwrap();
    let t = b.anchor + Duration::hours(2);
    let usage = vec![ev("e1", "acct_eur", "prov_000", Meter::GpuSeconds, "3600", t)];
    b.ingest(&[serde_json::to_string(&usage).unwrap()]).await;

    // Rates in the exchange-rate table, as the refresh stores them: the one in force at the
    // first period's end, and a later one that must not be used for it.
    let rates = b.stack.rate_store();
    let worker_rates = b.stack.rate_store_of("CloseWorkerFunction");
    let end = b.anchor + Duration::days(1);
    let rate = |r: &str, at: DateTime<Utc>| {
        meterline_shared::domain::fx::ExchangeRate::new(
            "USD/EUR".parse().unwrap(),
            r.parse().unwrap(),
            at,
            vec!["ecb".into()],
            at,
        )
        .unwrap()
    };
    rates.put(&rate("0.9", end - Duration::hours(1))).await.unwrap();
    rates.put(&rate("0.5", end + Duration::hours(1))).await.unwrap();

    let closer = Closer {
        billing: &b.worker_billing,
        usage: &b.worker_usage,
        rates: &worker_rates,
        publisher: &b.events,
        settings: CloseSettings::default(),
    };
    let req = CloseRequest {
        account_id: "acct_eur".into(),
        subscription_id: "sub_acct_eur".into(),
        period_end: end,
    };
    closer.close_subscription(&req, end).await.unwrap();
    let invoices = b.invoices("acct_eur").await;
    let first = invoices
        .iter()
        .find(|i| i.period.end == end)
        .expect("the first period's invoice");
    assert_eq!(first.currency, Currency::EUR);
    let conversion = first.conversion.as_ref().expect("the conversion is recorded");
    assert_eq!(conversion.rate.rate, "0.9".parse::<Decimal>().unwrap());
    assert_eq!(conversion.rate.as_of, end - Duration::hours(1));
    assert_eq!(conversion.rate.sources, ["ecb"]);
    assert_eq!(conversion.rate_for, end);
    // 3600 GPU-seconds at 0.0008 USD = 2.88 USD = 2.592 EUR, rounded once to 2.59.
    let gpu: Decimal = first
        .lines
        .iter()
        .filter(|l| l.meter == Some(Meter::GpuSeconds))
        .map(|l| l.net)
        .sum();
    assert_eq!(gpu, "2.59".parse::<Decimal>().unwrap());
}

#[tokio::test]
async fn fifty_closes_by_eight_concurrent_workers_are_numbered_one_to_fifty() {
    let mut b = Billing::new("billing-fifty").await;
    b.anchor = hour() - Duration::days(1);
    for i in 0..50 {
        b.subscribe(&format!("acct_{i:02}")).await;
    }
    let (store, queue) = b.cycle_close();
    let now = Utc::now();
    indexes_caught_up().await;
    let s = cycle_close::handle(&store, &queue, &b.events, &scheduled_event(now), now)
        .await
        .unwrap();
    assert_eq!(s.enqueued, 50);
    // Eight workers take batches of three off the queue at the same time.
    let closer = b.closer(&b.events);
    let (sqs, url) = (b.stack.sqs(), b.stack.resource("CloseQueue"));
    let workers = (0..8).map(|_| pump(&sqs, &url, 3, |event| close_worker::handle(&closer, event, now)));
    let stats = futures::future::join_all(workers).await;
    // A standard queue may hand one message to two receivers (the local endpoint did, once, under
    // load): that close then runs twice and is deleted twice. What must hold is below: each
    // account has one invoice and the numbers are 1..50 without a gap or a repeat.
    assert!(stats.iter().map(|s| s.deleted).sum::<usize>() >= 50);
    assert_eq!(stats.iter().map(|s| s.failed).sum::<usize>(), 0);
    assert!(
        stats.iter().filter(|s| s.invocations > 0).count() > 1,
        "the workers ran side by side"
    );

    let mut numbers = Vec::new();
    for i in 0..50 {
        let invoices = b.invoices(&format!("acct_{i:02}")).await;
        assert_eq!(invoices.len(), 1);
        assert_eq!(
            invoices[0].status,
            meterline_shared::domain::billing::InvoiceStatus::Open
        );
        numbers.push(invoices[0].number.clone().unwrap());
    }
    numbers.sort();
    assert_eq!(
        numbers,
        (1..=50).map(|n| format!("ML-{n:06}")).collect::<Vec<_>>()
    );
    assert_eq!(b.billing.last_number("ML").await.unwrap(), 50);
    // Every close finished: no pending marker is left, and each invoice was announced.
    indexes_caught_up().await;
    for shard in 0..meterline_shared::ports::billing::DUE_SHARDS {
        let page = b
            .billing
            .pending_invoices(shard, now + Duration::days(1), None, 100)
            .await
            .unwrap();
        assert!(page.items.is_empty(), "shard {shard}: {:?}", page.items);
    }
    let announced: std::collections::BTreeSet<String> = b
        .events
        .events()
        .iter()
        .filter(|e| e.detail_type == "InvoiceFinalized")
        .map(|e| e.detail["number"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(announced.len(), 50);
}

/// Several close workers at once, each handed the same close messages in another order (a
/// standard queue's duplicates, several instances): every ended period of every account has
/// one invoice, the usage billed once, and the numbers run 1..n without a gap or a repeat. In
/// the fault mode the workers' transactions on one subscription, one account and the one
/// number counter conflict (TransactionConflict): the store must retry them.
#[tokio::test]
async fn concurrent_workers_on_overlapping_close_messages_give_one_invoice_per_period() {
    let b = Billing::new("billing-overlap").await;
    let accounts: Vec<String> = (0..6).map(|i| format!("acct_o{i}")).collect();
    let mut usage = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        b.subscribe(account).await;
        let at = b.anchor + Duration::hours(2);
        let q = (3600 * (i + 1)).to_string();
        usage.push(ev(
            &format!("g{i}"),
            account,
            "prov_000",
            Meter::GpuSeconds,
            &q,
            at,
        ));
    }
    b.ingest(&[serde_json::to_string(&usage).unwrap()]).await;
    let now = Utc::now();
    let messages: Vec<(String, String)> = accounts
        .iter()
        .map(|a| {
            let req = CloseRequest {
                account_id: a.clone(),
                subscription_id: format!("sub_{a}"),
                period_end: b.anchor + Duration::days(1),
            };
            (format!("c-{a}"), serde_json::to_string(&req).unwrap())
        })
        .collect();
    let closer = b.closer(&b.events);
    // Half the workers take the messages in order, half in reverse: same-order workers close
    // the same account at the same time, the others meet them halfway. Batches of two, so that
    // each worker numbers its drafts three times, side by side with the others.
    let workers = (0..parallel().max(4)).map(|w| {
        let mut mine = messages.clone();
        if w % 2 == 1 {
            mine.reverse();
        }
        let closer = &closer;
        async move {
            for batch in mine.chunks(2) {
                let resp = close_worker::handle(closer, sqs_event(batch), now).await;
                assert!(resp.batch_item_failures.is_empty(), "worker {w}: {resp:?}");
            }
        }
    });
    futures::future::join_all(workers).await;

    // Three daily periods ended: three invoices per account, one per period, all numbered.
    let mut numbers = Vec::new();
    let mut gpu = Decimal::ZERO;
    for account in &accounts {
        let invoices = b.invoices(account).await;
        let periods: std::collections::BTreeSet<_> = invoices.iter().map(|i| i.period.start).collect();
        assert_eq!((invoices.len(), periods.len()), (3, 3), "{account}");
        for inv in &invoices {
            numbers.push(inv.number.clone().expect("numbered"));
            gpu += inv
                .lines
                .iter()
                .filter(|l| l.meter == Some(Meter::GpuSeconds))
                .map(|l| l.net)
                .sum::<Decimal>();
        }
    }
    numbers.sort();
    assert_eq!(
        numbers,
        (1..=18).map(|n| format!("ML-{n:06}")).collect::<Vec<_>>()
    );
    assert_eq!(b.billing.last_number("ML").await.unwrap(), 18);
    // 3600 GPU-seconds at 0.0008 = 2.88, times 1 + 2 + ... + 6, billed once.
    assert_eq!(gpu, "2.88".parse::<Decimal>().unwrap() * Decimal::from(21));
    indexes_caught_up().await;
    for shard in 0..meterline_shared::ports::billing::DUE_SHARDS {
        let page = b
            .billing
            .pending_invoices(shard, now + Duration::days(1), None, 100)
            .await
            .unwrap();
        assert!(page.items.is_empty(), "shard {shard}: {:?}", page.items);
    }
}

#[tokio::test]
async fn a_draft_left_by_a_crashed_worker_is_numbered_and_published_by_the_scheduled_sweep() {
    let mut b = Billing::new("billing-sweep").await;
    b.anchor = hour() - Duration::days(1);
    b.subscribe("acct_a").await;
    b.subscribe("acct_b").await;
    let closer = b.closer(&b.events);
    let now = Utc::now();
    // Two workers wrote their drafts and died before numbering them.
    let mut drafts = Vec::new();
    for account in ["acct_a", "acct_b"] {
        let req = CloseRequest {
            account_id: account.into(),
            subscription_id: format!("sub_{account}"),
            period_end: b.anchor + Duration::days(1),
        };
        let report = closer.draft_subscription(&req, now).await.unwrap();
        assert_eq!(report.committed.len(), 1);
        drafts.push(report.committed[0].clone());
    }
    let stored = b.invoices("acct_a").await;
    assert_eq!(
        stored[0].status,
        meterline_shared::domain::billing::InvoiceStatus::Draft
    );
    assert_eq!(stored[0].number, None);
    assert!(b.events.events().is_empty());

    // The next scheduled run, more than five minutes later, finishes them (and queues nothing:
    // both subscriptions have moved on).
    let (store, queue) = b.cycle_close();
    let (publisher, finalized) = b
        .bus_of("CycleCloseFunction", "sweep-events", &["InvoiceFinalized"])
        .await;
    let soon = now + Duration::minutes(1);
    indexes_caught_up().await;
    let s = cycle_close::handle(&store, &queue, &publisher, &scheduled_event(soon), soon)
        .await
        .unwrap();
    assert_eq!(
        (s.enqueued, s.swept),
        (0, 0),
        "too recent to sweep: a live worker may be finishing"
    );
    let later = now + Duration::minutes(6);
    indexes_caught_up().await;
    let s = cycle_close::handle(&store, &queue, &publisher, &scheduled_event(later), later)
        .await
        .unwrap();
    assert_eq!((s.enqueued, s.swept), (0, 2));
    let mut numbers = Vec::new();
    for d in &drafts {
        let inv = b
            .billing
            .invoice(&d.account_id, &d.invoice_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(inv.status, meterline_shared::domain::billing::InvoiceStatus::Open);
        numbers.push(inv.number.unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, ["ML-000001", "ML-000002"]);
    // Each is announced on the bus: the event's number is the one stored.
    let mut announced: Vec<String> = b
        .stack
        .drain_events(&finalized)
        .await
        .iter()
        .map(|(_, detail)| detail["number"].as_str().unwrap().to_string())
        .collect();
    announced.sort();
    assert_eq!(announced, numbers);
    // The open index has them now (the overdue check will see them).
    indexes_caught_up().await;
    let open = b
        .billing
        .open_invoices(
            meterline_shared::ports::billing::due_shard(&drafts[0].invoice_id, 16),
            drafts[0].due_date,
            None,
            100,
        )
        .await
        .unwrap();
    assert!(open.items.iter().any(|o| o.invoice_id == drafts[0].invoice_id));
    // A later run finds nothing left.
    indexes_caught_up().await;
    let s = cycle_close::handle(&store, &queue, &publisher, &scheduled_event(later), later)
        .await
        .unwrap();
    assert_eq!(s.swept, 0);
}

/// A subscription of `account` anchored an hour ago (its first daily period has not ended),
/// with a reservation of `prov_000` whose term started then, and the one of a second account
/// cancelled before its reservation's term started.
async fn reserve(b: &Billing, account: &str, cancelled_before_term: bool) -> BillingSubscription {
    b.billing
        .put_account(&sample::account(account, Currency::USD))
        .await
        .unwrap();
    let anchor = hour() - Duration::hours(1);
    let mut plan = sample::subscription("x", account, Cadence::Daily, anchor).plan;
    plan.reservations.push(
        serde_json::from_value(
            json!({"id": "r1", "meter": "gpu_seconds", "units_per_period": "100000",
            "term_start": anchor, "term_months": 12, "upfront": "all", "upfront_amount": "1200.00",
            "provider_id": "prov_000"}),
        )
        .unwrap(),
    );
    let schedule = BillingSchedule::new(Cadence::Daily, Alignment::Anniversary, anchor, chrono_tz::UTC);
    let mut sub = BillingSubscription::new(&format!("sub_{account}"), account, schedule, plan).unwrap();
    if cancelled_before_term {
        sub.cancelled_at = Some(anchor - Duration::minutes(1));
    }
    b.billing.put_subscription(&sub).await.unwrap();
    sub
}

#[tokio::test]
async fn a_reservation_upfront_is_woken_at_its_term_start_and_invoiced_once() {
    use meterline_shared::domain::billing::InvoiceKind;
    use meterline_shared::ports::issued::IssuedInvoices;
    let b = Billing::new("billing-upfront").await;
    let sub = reserve(&b, "acct_r", false).await;
    reserve(&b, "acct_x", true).await;
    let queue =
        meterline_shared::adapters::aws::SqsCloseQueue::new(b.stack.sqs(), b.stack.resource("CloseQueue"));
    let now = Utc::now();
    // Both purchases are due through the due index (no period has ended); fired twice.
    for _ in 0..2 {
        indexes_caught_up().await;
        let s = cycle_close::handle(&b.billing, &queue, &b.events, &scheduled_event(now), now)
            .await
            .unwrap();
        assert_eq!(s.enqueued, 2);
    }
    let closer = b.closer(&b.events);
    let stats = pump_parallel(&b.stack.sqs(), &b.stack.resource("CloseQueue"), 10, |event| {
        close_worker::handle(&closer, event, now)
    })
    .await;
    assert_eq!(stats.failed, 0);
    // As in the first test: side by side, a message may be received (and deleted) twice.
    assert!(
        stats.deleted == 4 || (parallel() > 1 && stats.deleted > 4),
        "{stats:?}"
    );
    let invoices = b.invoices("acct_r").await;
    assert_eq!(invoices.len(), 1);
    let inv = &invoices[0];
    assert_eq!(inv.kind, InvoiceKind::ReservationUpfront);
    assert_eq!(inv.number.as_deref(), Some("ML-000001"));
    assert_eq!(
        (inv.net_total, inv.tax_total, inv.total),
        (
            "1200.00".parse().unwrap(),
            "228.00".parse().unwrap(),
            "1428.00".parse().unwrap()
        )
    );
    // Cancelled before its term started: nothing owed, nothing invoiced.
    assert!(b.invoices("acct_x").await.is_empty());
    // Settled: out of the due index, even after the subscription is written again.
    b.billing.put_subscription(&sub).await.unwrap();
    indexes_caught_up().await;
    let s = cycle_close::handle(&b.billing, &queue, &b.events, &scheduled_event(now), now)
        .await
        .unwrap();
    assert_eq!(s.enqueued, 0);
    // The same request again writes nothing.
    let again = serde_json::to_string(&CloseRequest {
        account_id: "acct_r".into(),
        subscription_id: "sub_acct_r".into(),
        period_end: sub.started_at,
    })
    .unwrap();
    let resp = close_worker::handle(&closer, sqs_event(&[("again".into(), again)]), Utc::now()).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(b.invoices("acct_r").await.len(), 1);
    assert_eq!(b.billing.last_number("ML").await.unwrap(), 1);
    // The provider's statement entry carries the term schedule (15 % fee: 1,020.00 paid over
    // 12 months, 85.00 a month).
    let entry = b
        .billing
        .statement_entry_of("prov_000", inv.period.end, &inv.invoice_id)
        .await
        .unwrap()
        .unwrap();
    let schedule = &entry.statement.term_schedule;
    assert_eq!(schedule.len(), 12);
    assert!(schedule
        .iter()
        .all(|m| m.payout.amount == "85.00".parse::<Decimal>().unwrap()));
}
