//! The close worker's own cost at scale: `BENCH_ACCOUNTS` accounts (default 100,000) of one
//! issuer closed through the real `cycle-close` and `close-worker` handlers on the in-memory
//! adapters, `BENCH_WORKERS` concurrent worker tasks (default 2, one per core) taking batches of
//! `BENCH_BATCH` messages (default 50, as in the template). No I/O: it measures the code path
//! (rating, drafting, numbering in batches, events) and counts the writes on the issuer's
//! counter item. Run with `cargo bench -p meterline-integration-tests --bench close_memory`.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{Duration, DurationRound, Utc};
use futures::future::BoxFuture;
use meterline_integration_tests::sqs_event;
use meterline_shared::adapters::memory::InMemoryRateStore;
use meterline_shared::adapters::memory::MemoryUsageStore;
use meterline_shared::adapters::memory::{MemoryBillingStore, MemoryEventPublisher};
use meterline_shared::domain::billing::{sample, Alignment, BillingSchedule, BillingSubscription, Cadence};
use meterline_shared::domain::money::Currency;
use meterline_shared::domain::usage::generator::{generate, GeneratorConfig};
use meterline_shared::domain::usage::{aggregate_refs, event_refs, Granularity};
use meterline_shared::ports::billing::BillingStore;
use meterline_shared::ports::billing::{CloseQueue, CloseRequest};
use meterline_shared::ports::usage::UsageStore;
use meterline_shared::ports::StoreError;
use meterline_shared::services::closing::{CloseSettings, Closer};
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The close queue in memory.
#[derive(Default)]
struct MemoryQueue(Mutex<Vec<CloseRequest>>);

impl CloseQueue for MemoryQueue {
    fn send<'a>(&'a self, requests: &'a [CloseRequest]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.0.lock().unwrap().extend_from_slice(requests);
            Ok(())
        })
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let accounts = env("BENCH_ACCOUNTS", 100_000);
    let workers = env("BENCH_WORKERS", 2).max(1);
    let batch = env("BENCH_BATCH", 50).max(1);
    let billing = Arc::new(MemoryBillingStore::new());
    let usage = Arc::new(MemoryUsageStore::new());
    let anchor = Utc::now().duration_trunc(Duration::hours(1)).unwrap() - Duration::days(1);

    let t0 = Instant::now();
    billing.put_catalog(&sample::catalog()).await.unwrap();
    let plan = sample::subscription("x", "x", Cadence::Daily, anchor).plan;
    for i in 0..accounts {
        let a = format!("acct_{i:06}");
        billing
            .put_account(&sample::account(&a, Currency::USD))
            .await
            .unwrap();
        let schedule = BillingSchedule::new(Cadence::Daily, Alignment::Anniversary, anchor, chrono_tz::UTC);
        let sub = BillingSubscription::new(&format!("sub_{a}"), &a, schedule, plan.clone()).unwrap();
        billing.put_subscription(&sub).await.unwrap();
    }
    let events = generate(&GeneratorConfig {
        seed: 42,
        accounts,
        providers: 4,
        events: accounts * 2,
        start: anchor + Duration::hours(1),
        span: Duration::hours(20),
    });
    for chunk in events.chunks(1000) {
        let chunk = event_refs(chunk);
        let aggs = aggregate_refs(&chunk, &[Granularity::Hour, Granularity::Day]);
        usage.commit(&chunk, &aggs, Utc::now()).await.unwrap();
    }
    println!(
        "close_memory bench: seeded {accounts} accounts and {} events in {:.1}s",
        events.len(),
        t0.elapsed().as_secs_f64()
    );

    let queue = MemoryQueue::default();
    let publisher = Arc::new(MemoryEventPublisher::new());
    let event: EventBridgeEvent<serde_json::Value> = serde_json::from_value(serde_json::json!({
        "version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": Utc::now().to_rfc3339(), "region": "us-east-1",
        "resources": [], "detail": {}
    }))
    .unwrap();
    let summary = cycle_close::handle(&*billing, &queue, &*publisher, &event, Utc::now())
        .await
        .unwrap();
    let requests = std::mem::take(&mut *queue.0.lock().unwrap());
    let batches: Vec<Vec<(String, String)>> = requests
        .chunks(batch)
        .enumerate()
        .map(|(b, chunk)| {
            chunk
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("m{b}-{i}"), serde_json::to_string(r).unwrap()))
                .collect()
        })
        .collect();
    let batches = Arc::new(Mutex::new(batches));

    let t0 = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (billing, usage, publisher, batches) =
                (billing.clone(), usage.clone(), publisher.clone(), batches.clone());
            tokio::spawn(async move {
                let rates = InMemoryRateStore::new();
                let closer = Closer {
                    billing: &*billing,
                    usage: &*usage,
                    rates: &rates,
                    publisher: &*publisher,
                    settings: CloseSettings::default(),
                };
                loop {
                    let Some(next) = batches.lock().unwrap().pop() else {
                        break;
                    };
                    let resp = close_worker::handle(&closer, sqs_event(&next), Utc::now()).await;
                    assert!(resp.batch_item_failures.is_empty());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let numbers = billing.last_number("ML").await.unwrap();
    println!(
        "close_memory bench: {} close requests -> {numbers} invoices in {secs:.1}s = {:.0} closes/s \
         ({workers} workers, batches of {batch}); {} numbering writes on the issuer counter \
         ({:.1} invoices per write)",
        summary.enqueued,
        numbers as f64 / secs,
        billing.numberings(),
        numbers as f64 / billing.numberings().max(1) as f64
    );
    assert_eq!(
        numbers as usize, accounts,
        "one invoice per account, numbers without gaps"
    );
}
