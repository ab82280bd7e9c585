//! Ingestion through the real handler against the local endpoint, on three workloads: the
//! sparse generator (most hourly windows hold one event), collectors (each running job reports
//! its meters every 60 s), and the sparse generator with one account sending half the events
//! (ingested by `BENCH_WORKERS` concurrent handlers, 8 by default, in messages of 50 events so
//! that they have batches to share). For each: events per second,
//! DynamoDB requests, and write units per event by table and index as DynamoDB bills them
//! (`DynamoUsageStore::stats.units`), with the on-demand price per million events.
//! Needs `AWS_ENDPOINT_URL`; run it with `bash scripts/bench.sh`.
//! `BENCH_EVENTS` events per workload (default 5,000).

use chrono::{DateTime, Duration, Utc};
use meterline_integration_tests::{sqs_event, Stack};
use meterline_shared::adapters::aws::dynamo_usage::{
    AGGREGATES, AGGREGATES_CHANGES, CANCELLED, EVENTS, REJECTED,
};
use meterline_shared::adapters::aws::DynamoUsageStore;
use meterline_shared::domain::usage::generator::{
    concentrate, generate, generate_collector, CollectorConfig, GeneratorConfig,
};
use meterline_shared::domain::usage::UsageEvent;
use meterline_shared::services::ingest::{ingest_body, IngestSettings};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use usage_ingest::Ingestor;

/// On-demand price of a million write request units (us-east-1).
const USD_PER_MILLION_UNITS: f64 = 0.625;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let n = env_usize("BENCH_EVENTS", 5_000);
    let workers = env_usize("BENCH_WORKERS", 8);
    let now = Utc::now();
    let start = now - Duration::hours(25);
    let sparse = generate(&GeneratorConfig {
        seed: 42,
        accounts: 50,
        providers: 8,
        events: n,
        start,
        span: Duration::hours(24),
    });
    let mut collector = generate_collector(&CollectorConfig {
        seed: 42,
        accounts: 50,
        providers: 8,
        jobs: 40,
        start,
        span: Duration::hours(24),
        interval: Duration::seconds(60),
    });
    collector.truncate(n);
    let mut hot = sparse.clone();
    concentrate(&mut hot, "acct_hot", 2);

    for mode in [Mode::Before, Mode::After] {
        let store = run("sparse", &sparse, 1, 500, mode, now).await;
        replay("sparse", &store, &sparse, now).await;
        run("collector", &collector, 1, 500, mode, now).await;
        // Messages of 50 events, so that the workers have batches to share.
        run("hot", &hot, workers, 50, mode, now).await;
    }
}

/// How a batch is ingested.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// One commit per message (`ingest_body`), as the handler did before.
    Before,
    /// The handler: the batch's events committed together.
    After,
}

/// SQS batches of 10 messages of `per_message` events (collectors send up to 500).
fn batches(events: &[UsageEvent], per_message: usize) -> Vec<Vec<(String, String)>> {
    let bodies: Vec<(String, String)> = events
        .chunks(per_message)
        .enumerate()
        .map(|(i, c)| (format!("m{i}"), serde_json::to_string(c).unwrap()))
        .collect();
    bodies.chunks(10).map(<[_]>::to_vec).collect()
}

/// Ingests `events` on fresh tables through `workers` concurrent handlers and prints the
/// figures.
async fn run(
    name: &str,
    events: &[UsageEvent],
    workers: usize,
    per_message: usize,
    mode: Mode,
    now: DateTime<Utc>,
) -> Ingested {
    let name = &format!("{name} ({mode:?})");
    let stack = Stack::create(&format!("bench-{mode:?}").to_lowercase()).await;
    let store = Arc::new(stack.usage_store().tracking_new_aggregates());
    let ingestor = Arc::new(Ingestor {
        store: store.clone(),
        settings: stack.usage_config().ingest,
    });
    let batches = Arc::new(batches(events, per_message));
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let (ingestor, batches, next) = (ingestor.clone(), batches.clone(), next.clone());
            tokio::spawn(async move {
                while let Some(batch) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match mode {
                        Mode::Before => {
                            for (_, body) in batch {
                                ingest_body(ingestor.store.as_ref(), body, &ingestor.settings, now)
                                    .await
                                    .unwrap();
                            }
                        }
                        Mode::After => {
                            let resp = ingestor.handle(sqs_event(batch), now).await;
                            assert!(resp.batch_item_failures.is_empty());
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = events.len() as f64;
    let [transactions, cancelled, items, batch_writes] = store.stats.snapshot();
    let aggregate_windows = items as f64 - n;
    println!(
        "{name}: {} events in {} batches of messages of {per_message}, {workers} worker(s), in {secs:.1}s = {:.0} events/s",
        events.len(),
        batches.len(),
        n / secs
    );
    println!(
        "{name}: {transactions} TransactWriteItems ({cancelled} cancelled and retried), {items} items, {batch_writes} BatchWriteItem; per 1,000 events: {:.1} write requests, {:.0} aggregate updates",
        (transactions + cancelled + batch_writes) as f64 * 1000.0 / n,
        aggregate_windows * 1000.0 / n,
    );
    print_units(name, &store, n);
    Ingested {
        store,
        settings: stack.usage_config().ingest,
    }
}

/// What a workload left: the store with its counters, and the settings it was ingested with.
struct Ingested {
    store: Arc<DynamoUsageStore>,
    settings: IngestSettings,
}

fn print_units(name: &str, store: &DynamoUsageStore, n: f64) {
    let units = store.stats.units.snapshot();
    let of = |t: &str| units.get(t).copied().unwrap_or(0) as f64 / n;
    let total: f64 = [EVENTS, AGGREGATES, AGGREGATES_CHANGES, REJECTED]
        .iter()
        .map(|t| of(t))
        .sum();
    println!(
        "{name}: write units per event: events {:.2}, aggregates {:.2}, aggregates/changes index {:.2}, rejected {:.2}; total {total:.2} = {:.2} USD per million events (cancelled attempts, not included: {:.2})",
        of(EVENTS),
        of(AGGREGATES),
        of(AGGREGATES_CHANGES),
        of(REJECTED),
        total * USD_PER_MILLION_UNITS,
        of(CANCELLED),
    );
}

/// Replays every message of `events` through the handler (the batch path, whichever mode
/// ingested them) on the tables `run` left: nothing is written again.
async fn replay(name: &str, ingested: &Ingested, events: &[UsageEvent], now: DateTime<Utc>) {
    let store = &ingested.store;
    let ingestor = Ingestor {
        store: store.clone(),
        settings: ingested.settings.clone(),
    };
    let [t1, c1, i1, _] = store.stats.snapshot();
    let t0 = Instant::now();
    for batch in batches(events, 500) {
        ingestor.handle(sqs_event(&batch), now).await;
    }
    let [t2, c2, i2, _] = store.stats.snapshot();
    println!(
        "{name}: replay of all {} events in {:.1}s: {} transactions committed, {} cancelled, {} items written",
        events.len(),
        t0.elapsed().as_secs_f64(),
        t2 - t1,
        c2 - c1,
        i2 - i1
    );
}
