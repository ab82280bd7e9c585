//! Ingestion through the real handler against the local endpoint: events per second, and
//! DynamoDB write requests per 1,000 events. Needs `AWS_ENDPOINT_URL`; run it with
//! `bash scripts/bench.sh`.

use chrono::{Duration, Utc};
use meterline_integration_tests::{sqs_event, Stack};
use meterline_shared::domain::usage::generator::{generate, GeneratorConfig};
use std::time::Instant;
use usage_ingest::Ingestor;

#[tokio::main]
async fn main() {
    let events_n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let stack = Stack::create("bench").await;
    let store = std::sync::Arc::new(stack.usage_store());
    let ingestor = Ingestor {
        store: store.clone(),
        settings: stack.usage_config().ingest,
    };
    let now = Utc::now();
    let events = generate(&GeneratorConfig {
        seed: 42,
        accounts: 50,
        providers: 8,
        events: events_n,
        start: now - Duration::hours(25),
        span: Duration::hours(24),
    });
    // SQS batches of 10 messages of 500 events, as a collector sends them.
    let bodies: Vec<(String, String)> = events
        .chunks(500)
        .enumerate()
        .map(|(i, c)| (format!("m{i}"), serde_json::to_string(c).unwrap()))
        .collect();
    let t0 = Instant::now();
    for batch in bodies.chunks(10) {
        let resp = ingestor.handle(sqs_event(batch), now).await;
        assert!(resp.batch_item_failures.is_empty());
    }
    let secs = t0.elapsed().as_secs_f64();
    let [transactions, cancelled, items, batch_writes] = store.stats.snapshot();
    println!(
        "handler: {events_n} events in {secs:.1}s = {:.0} events/s",
        events_n as f64 / secs
    );
    println!(
        "handler: {transactions} TransactWriteItems ({cancelled} cancelled), {items} items, {batch_writes} BatchWriteItem"
    );
    println!(
        "handler: per 1,000 events: {:.1} write requests, {:.0} items written ({:.0} events + {:.0} aggregate updates)",
        (transactions + cancelled + batch_writes) as f64 * 1000.0 / events_n as f64,
        items as f64 * 1000.0 / events_n as f64,
        1000.0,
        (items as f64 - events_n as f64) * 1000.0 / events_n as f64,
    );

    // Replaying everything: no item is written again.
    let t0 = Instant::now();
    for batch in bodies.chunks(10) {
        ingestor.handle(sqs_event(batch), now).await;
    }
    let [t2, c2, i2, _] = store.stats.snapshot();
    println!(
        "handler: replay of all {events_n} events in {:.1}s: {} transactions committed, {} cancelled, {} items written",
        t0.elapsed().as_secs_f64(),
        t2 - transactions,
        c2 - cancelled,
        i2 - items
    );
}
