//! The ingestion function's handler against the local endpoint (moto_server): exactly-once
//! effect under duplicates, overlapping and concurrent batches, partial batch failure, and the
//! dead-letter queue.

use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{fault_mode, parallel, pump, sqs_event, Stack};
use meterline_shared::domain::usage::generator::{generate, GeneratorConfig};
use meterline_shared::domain::usage::query::{GroupBy, UsageQuery};
use meterline_shared::domain::usage::{aggregate, Granularity, UsageEvent};
use meterline_shared::ports::usage::UsageStore;
use meterline_shared::services::usage_query::query_usage;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use usage_ingest::Ingestor;

fn now() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::seconds(1)).unwrap()
}

fn workload(seed: u64, events: usize) -> Vec<UsageEvent> {
    generate(&GeneratorConfig {
        seed,
        accounts: 6,
        providers: 3,
        events,
        start: now() - Duration::hours(30),
        span: Duration::hours(28),
    })
}

fn body(events: &[UsageEvent]) -> String {
    serde_json::to_string(events).unwrap()
}

type Totals = BTreeMap<(String, Granularity, DateTime<Utc>, String, String), (Decimal, u64)>;

/// What the aggregates must be: the distinct events, aggregated once (per provider, merged by
/// dimension set as the usage query merges them).
fn expected(events: &[UsageEvent]) -> Totals {
    let mut out = Totals::new();
    for a in aggregate(events, &[Granularity::Hour, Granularity::Day]).into_values() {
        let dims = serde_json::to_string(&a.dimensions).unwrap();
        let key = (
            a.account_id,
            a.granularity,
            a.window_start,
            a.meter.to_string(),
            dims,
        );
        let e = out.entry(key).or_default();
        e.0 += a.quantity;
        e.1 += a.event_count;
    }
    out
}

/// What the aggregates are, read back through the usage query.
async fn stored(store: &dyn UsageStore, accounts: &BTreeSet<String>) -> Totals {
    let mut out = Totals::new();
    for account in accounts {
        for g in [Granularity::Hour, Granularity::Day] {
            let q = UsageQuery {
                account_id: account.clone(),
                granularity: g,
                from: now() - Duration::days(3),
                to: now() + Duration::days(1),
                meter: None,
                group_by: GroupBy::AllDimensions,
                limit: 1000,
            };
            let mut cursor = None;
            loop {
                let page = query_usage(store, &q, cursor.as_deref()).await.unwrap();
                for r in page.rows {
                    let dims = serde_json::to_string(&r.dimensions).unwrap();
                    let key = (account.clone(), g, r.window_start, r.meter.to_string(), dims);
                    assert!(
                        out.insert(key, (r.quantity, r.event_count)).is_none(),
                        "row returned twice"
                    );
                }
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
    }
    out
}

fn accounts(events: &[UsageEvent]) -> BTreeSet<String> {
    events.iter().map(|e| e.account_id.clone()).collect()
}

#[tokio::test]
async fn duplicates_inside_and_across_batches_are_counted_once() {
    let stack = Stack::create("dups").await;
    let config = stack.usage_config();
    let store = std::sync::Arc::new(stack.usage_store_of("UsageIngestFunction"));
    let ingestor = Ingestor {
        store: store.clone(),
        settings: config.ingest,
    };
    let events = workload(1, 600);

    // One batch: two overlapping messages and a message repeated, plus an event repeated inside
    // a message.
    let mut with_repeat = events[400..600].to_vec();
    with_repeat.push(events[450].clone());
    let batch = sqs_event(&[
        ("m1".into(), body(&events[0..300])),
        ("m2".into(), body(&events[200..450])),
        ("m3".into(), body(&events[0..300])),
        ("m4".into(), body(&with_repeat)),
    ]);
    let resp = ingestor.handle(batch.clone(), now()).await;
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
    // The whole batch delivered again, and again.
    for _ in 0..2 {
        let resp = ingestor.handle(batch.clone(), now()).await;
        assert!(resp.batch_item_failures.is_empty());
    }
    assert_eq!(stack.count_items("UsageEventsTable").await, 600);
    assert_eq!(
        stored(&stack.usage_store(), &accounts(&events)).await,
        expected(&events)
    );
    let [transactions, _, items, _] = store.stats.snapshot();
    assert!(
        transactions > 0 && items >= 600,
        "events were written in transactions: {transactions}, {items}"
    );
}

#[tokio::test]
async fn two_concurrent_invocations_apply_each_event_once() {
    let stack = Stack::create("concurrent").await;
    let config = stack.usage_config();
    let a = Ingestor {
        store: std::sync::Arc::new(stack.usage_store_of("UsageIngestFunction")),
        settings: config.ingest.clone(),
    };
    let b = Ingestor {
        store: std::sync::Arc::new(stack.usage_store_of("UsageIngestFunction")),
        settings: config.ingest,
    };
    let events = workload(2, 800);
    // Both invocations carry most of the same events, in different orders.
    let mut reversed = events[100..800].to_vec();
    reversed.reverse();
    let batch_a = sqs_event(&[
        ("a1".into(), body(&events[0..400])),
        ("a2".into(), body(&events[400..700])),
    ]);
    let batch_b = sqs_event(&[
        ("b1".into(), body(&reversed[..400])),
        ("b2".into(), body(&reversed[400..])),
    ]);
    let (ra, rb) = tokio::join!(a.handle(batch_a, now()), b.handle(batch_b, now()));
    assert!(
        ra.batch_item_failures.is_empty() && rb.batch_item_failures.is_empty(),
        "{ra:?} {rb:?}"
    );
    assert_eq!(stack.count_items("UsageEventsTable").await, 800);
    assert_eq!(
        stored(&stack.usage_store(), &accounts(&events)).await,
        expected(&events)
    );
}

/// Several instances of the function at once, on one hot account, each handed the same
/// messages in another order (a redelivery to every instance): every event stored once, every
/// aggregate exact to the last digit, no message failed. In the fault mode the instances'
/// transactions on the account's few aggregates conflict all the time (TransactionConflict):
/// the store must retry them, neither drop nor double count them.
#[tokio::test]
async fn concurrent_invocations_on_one_hot_account_with_overlapping_messages_count_once() {
    let stack = Stack::create("hot").await;
    let config = stack.usage_config();
    // One account, two hours: a few aggregates that every transaction updates.
    let events = generate(&GeneratorConfig {
        seed: 6,
        accounts: 1,
        providers: 2,
        events: 480,
        start: now() - Duration::hours(3),
        span: Duration::hours(2),
    });
    let messages: Vec<(String, String)> = events
        .chunks(60)
        .enumerate()
        .map(|(i, c)| (format!("m{i}"), body(c)))
        .collect();
    let instances = parallel().max(4);
    let stores: Vec<_> = (0..instances)
        .map(|_| std::sync::Arc::new(stack.usage_store_of("UsageIngestFunction")))
        .collect();
    let calls = stores.iter().enumerate().map(|(i, store)| {
        let ingestor = Ingestor {
            store: store.clone(),
            settings: config.ingest.clone(),
        };
        // Instance i starts at message 2i and wraps around: all of them, in its own order.
        let mut mine = messages.clone();
        mine.rotate_left((2 * i) % messages.len());
        async move { ingestor.handle(sqs_event(&mine), now()).await }
    });
    for resp in futures::future::join_all(calls).await {
        assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
    }
    assert_eq!(accounts(&events).len(), 1);
    assert_eq!(stack.count_items("UsageEventsTable").await, events.len());
    assert_eq!(
        stored(&stack.usage_store(), &accounts(&events)).await,
        expected(&events)
    );
    let cancelled: u64 = stores.iter().map(|s| s.stats.snapshot()[1]).sum();
    eprintln!(
        "hot account: {instances} instances, {cancelled} transactions cancelled (fault mode: {})",
        fault_mode()
    );
}

#[tokio::test]
async fn a_bad_message_fails_alone_and_malformed_events_are_kept_as_rejected() {
    let stack = Stack::create("partial").await;
    let config = stack.usage_config();
    let ingestor = Ingestor {
        store: std::sync::Arc::new(stack.usage_store_of("UsageIngestFunction")),
        settings: config.ingest,
    };
    let events = workload(3, 50);
    let mut mixed: Vec<serde_json::Value> = events[25..]
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    mixed.push(
        serde_json::json!({"id": "bad-1", "account_id": events[0].account_id, "provider_id": "p",
        "job_id": "j", "meter": "cpu_seconds", "quantity": "-3", "timestamp": now().to_rfc3339()}),
    );
    mixed.push(serde_json::json!({"id": "late-1", "account_id": events[0].account_id, "provider_id": "p",
        "job_id": "j", "meter": "cpu_seconds", "quantity": "1", "timestamp": (now() - Duration::days(30)).to_rfc3339()}));
    let batch = sqs_event(&[
        ("good".into(), body(&events[..25])),
        ("poison".into(), "this is not JSON".into()),
        (
            "too-many".into(),
            serde_json::to_string(&vec![&events[0]; 501]).unwrap(),
        ),
        ("mixed".into(), serde_json::Value::Array(mixed).to_string()),
    ]);
    let resp = ingestor.handle(batch, now()).await;
    let failed: Vec<_> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["poison", "too-many"]);
    assert_eq!(
        stack.count_items("UsageEventsTable").await,
        50,
        "nothing else in the batch was lost"
    );
    assert_eq!(
        stored(&stack.usage_store(), &accounts(&events)).await,
        expected(&events)
    );

    let page = stack
        .usage_store()
        .rejected_page(Some(&events[0].account_id), None, 10)
        .await
        .unwrap();
    let mut reasons: Vec<(Option<String>, String, String)> = page
        .items
        .iter()
        .map(|r| {
            (
                r.event_id.clone(),
                r.errors[0].field.clone(),
                r.errors[0].code.clone(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            (Some("bad-1".into()), "quantity".into(), "negative".into()),
            (Some("late-1".into()), "timestamp".into(), "too_late".into())
        ]
    );
    assert!(
        page.items.iter().all(|r| r.raw.contains("\"id\"")),
        "the raw payload is kept"
    );
}

#[tokio::test]
async fn a_poison_message_reaches_the_dead_letter_queue_after_max_receives() {
    let stack = Stack::create("dlq").await;
    let config = stack.usage_config();
    let ingestor = Ingestor {
        store: std::sync::Arc::new(stack.usage_store_of("UsageIngestFunction")),
        settings: config.ingest,
    };
    let sqs = stack.sqs();
    let queue = stack.resource("UsageQueue");
    let dlq = stack.resource("UsageDeadLetterQueue");
    let events = workload(4, 120);
    for chunk in events.chunks(40) {
        sqs.send_message()
            .queue_url(&queue)
            .message_body(body(chunk))
            .send()
            .await
            .unwrap();
    }
    sqs.send_message()
        .queue_url(&queue)
        .message_body("{\"truncated\": ")
        .send()
        .await
        .unwrap();
    // A redelivered message: the same events again.
    sqs.send_message()
        .queue_url(&queue)
        .message_body(body(&events[..40]))
        .send()
        .await
        .unwrap();

    let stats = pump(&sqs, &queue, 10, |event| ingestor.handle(event, now())).await;
    assert_eq!(stats.deleted, 4, "{stats:?}");
    assert_eq!(stats.failed, 5, "received maxReceiveCount = 5 times: {stats:?}");

    let out = sqs
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let bodies: Vec<String> = out
        .messages()
        .iter()
        .map(|m| m.body().unwrap_or_default().to_string())
        .collect();
    assert_eq!(bodies, ["{\"truncated\": "]);
    assert_eq!(stack.count_items("UsageEventsTable").await, 120);
    assert_eq!(
        stored(&stack.usage_store(), &accounts(&events)).await,
        expected(&events)
    );
}

#[tokio::test]
async fn replaying_after_ingestion_changes_nothing() {
    let stack = Stack::create("replay").await;
    let config = stack.usage_config();
    let ingestor = Ingestor {
        store: std::sync::Arc::new(stack.usage_store_of("UsageIngestFunction")),
        settings: config.ingest,
    };
    let events = workload(5, 300);
    let messages: Vec<(String, String)> = events
        .chunks(50)
        .enumerate()
        .map(|(i, c)| (format!("m{i}"), body(c)))
        .collect();
    ingestor.handle(sqs_event(&messages), now()).await;
    let before = stored(&stack.usage_store(), &accounts(&events)).await;
    // Replay in reverse order, one message per invocation.
    for m in messages.iter().rev() {
        let resp = ingestor.handle(sqs_event(std::slice::from_ref(m)), now()).await;
        assert!(resp.batch_item_failures.is_empty());
    }
    assert_eq!(stored(&stack.usage_store(), &accounts(&events)).await, before);
    assert_eq!(before, expected(&events));
}
