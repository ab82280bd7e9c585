//! Closes per second through the real close worker against the local endpoint: N accounts
//! (`BENCH_ACCOUNTS`, default 1,000) with a daily subscription and usage, the cycle-close
//! handler queues them, the worker's handler consumes the queue as Lambda's event source mapping
//! would: batches of up to `BENCH_BATCH` messages (default 50, as in the template) gathered from
//! receives of 10, deleted with `DeleteMessageBatch`, several batches in flight like concurrent
//! invocations (`BENCH_WORKERS`, default 4). Needs `AWS_ENDPOINT_URL`; run it with
//! `bash scripts/bench.sh`.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{Duration, DurationRound, Utc};
use futures::stream::{self, StreamExt};
use meterline_integration_tests::{sqs_event, Stack};
use meterline_shared::adapters::aws::{DynamoBillingStore, SqsCloseQueue};
use meterline_shared::adapters::memory::InMemoryRateStore;
use meterline_shared::adapters::memory::MemoryEventPublisher;
use meterline_shared::domain::billing::{sample, Alignment, BillingSchedule, BillingSubscription, Cadence};
use meterline_shared::domain::money::Currency;
use meterline_shared::domain::usage::generator::{generate, GeneratorConfig};
use meterline_shared::domain::usage::{aggregate_refs, event_refs, Granularity};
use meterline_shared::ports::billing::BillingStore;
use meterline_shared::ports::usage::UsageStore;
use meterline_shared::services::closing::{CloseSettings, Closer};
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let accounts = env("BENCH_ACCOUNTS", 1_000);
    let workers = env("BENCH_WORKERS", 4);
    let batch = env("BENCH_BATCH", 50).max(1);
    let stack = Stack::create("bench-close").await;
    let billing = DynamoBillingStore::new(stack.ddb(), stack.resource("BillingTable"));
    let usage = stack.usage_store();
    let anchor = Utc::now().duration_trunc(Duration::hours(1)).unwrap() - Duration::days(1);

    // Seed: catalog, accounts, subscriptions (one period ended), two events per account.
    let t0 = Instant::now();
    billing.put_catalog(&sample::catalog()).await.unwrap();
    let events = generate(&GeneratorConfig {
        seed: 42,
        accounts,
        providers: 4,
        events: accounts * 2,
        start: anchor + Duration::hours(1),
        span: Duration::hours(20),
    });
    let plan = sample::subscription("x", "x", Cadence::Daily, anchor).plan;
    let ids: Vec<String> = (0..accounts).map(|i| format!("acct_{i:04}")).collect();
    // The same items as `put_account` and `put_subscription`, 25 to a `BatchWriteItem`.
    stream::iter(ids.chunks(250))
        .for_each_concurrent(4, |chunk| {
            let (billing, plan) = (&billing, &plan);
            async move {
                let accounts: Vec<_> = chunk.iter().map(|a| sample::account(a, Currency::USD)).collect();
                let subs: Vec<_> = chunk
                    .iter()
                    .map(|a| {
                        let schedule = BillingSchedule::new(
                            Cadence::Daily,
                            Alignment::Anniversary,
                            anchor,
                            chrono_tz::UTC,
                        );
                        BillingSubscription::new(&format!("sub_{a}"), a, schedule, plan.clone()).unwrap()
                    })
                    .collect();
                billing.load_accounts(&accounts, &subs).await.unwrap();
            }
        })
        .await;
    // 30 events and at most 60 aggregates: within one transaction's 100 items.
    stream::iter(events.chunks(30))
        .for_each_concurrent(4, |chunk| {
            let usage = &usage;
            async move {
                let chunk = event_refs(chunk);
                let aggs = aggregate_refs(&chunk, &[Granularity::Hour, Granularity::Day]);
                usage.commit(&chunk, &aggs, Utc::now()).await.unwrap();
            }
        })
        .await;
    println!(
        "close bench: seeded {accounts} accounts and {} events in {:.1}s",
        events.len(),
        t0.elapsed().as_secs_f64()
    );

    // The schedule: queue every due close.
    let queue_url = stack.resource("CloseQueue");
    let queue = SqsCloseQueue::new(stack.sqs(), queue_url.clone());
    let event: EventBridgeEvent<serde_json::Value> = serde_json::from_value(serde_json::json!({
        "version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": Utc::now().to_rfc3339(), "region": "us-east-1",
        "resources": [], "detail": {}
    }))
    .unwrap();
    let publisher = MemoryEventPublisher::new();
    let t0 = Instant::now();
    let summary = cycle_close::handle(&billing, &queue, &publisher, &event, Utc::now())
        .await
        .unwrap();
    let enqueue_secs = t0.elapsed().as_secs_f64();
    println!(
        "close bench: cycle-close queued {} closes in {enqueue_secs:.1}s = {:.0} requests/s",
        summary.enqueued,
        summary.enqueued as f64 / enqueue_secs
    );

    // The worker: `workers` concurrent invocations, each a batch of 10 messages.
    let rates = InMemoryRateStore::new();
    let closer = Closer {
        billing: &billing,
        usage: &usage,
        rates: &rates,
        publisher: &publisher,
        settings: CloseSettings::default(),
    };
    let sqs = stack.sqs();
    let t0 = Instant::now();
    let closed = stream::iter(0..workers)
        .map(|_| async {
            let mut closed = 0;
            let mut empty = 0;
            while empty < 2 {
                // Gather a batch as the event source mapping does: receives of up to 10.
                let mut msgs = Vec::new();
                while msgs.len() < batch {
                    let out = sqs
                        .receive_message()
                        .queue_url(&queue_url)
                        .max_number_of_messages((batch - msgs.len()).min(10) as i32)
                        .send()
                        .await
                        .unwrap();
                    let got = out.messages.unwrap_or_default();
                    if got.is_empty() {
                        break;
                    }
                    msgs.extend(got);
                }
                if msgs.is_empty() {
                    empty += 1;
                    continue;
                }
                empty = 0;
                let pairs: Vec<(String, String)> = msgs
                    .iter()
                    .map(|m| (m.message_id().unwrap().to_string(), m.body().unwrap().to_string()))
                    .collect();
                let resp = close_worker::handle(&closer, sqs_event(&pairs), Utc::now()).await;
                assert!(resp.batch_item_failures.is_empty());
                for chunk in msgs.chunks(10) {
                    let entries: Vec<_> = chunk
                        .iter()
                        .enumerate()
                        .map(|(i, m)| {
                            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .receipt_handle(m.receipt_handle().unwrap())
                                .build()
                                .unwrap()
                        })
                        .collect();
                    sqs.delete_message_batch()
                        .queue_url(&queue_url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .unwrap();
                }
                closed += msgs.len();
            }
            closed
        })
        .buffer_unordered(workers)
        .fold(0, |a, b| async move { a + b })
        .await;
    let secs = t0.elapsed().as_secs_f64();
    let numbers = billing.last_number("ML").await.unwrap();
    println!(
        "close bench: {closed} close requests -> {numbers} invoices in {secs:.1}s = {:.1} closes/s ({workers} concurrent batches of up to {batch})",
        numbers as f64 / secs
    );
    assert_eq!(
        numbers as usize, accounts,
        "one invoice per account, numbers without gaps"
    );
}
