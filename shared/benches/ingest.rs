//! Decode + validate + aggregate, the pure part of ingestion, on the generator's workload:
//! 200,000 events in bodies of 500, on one core. Prints events per second.
//!
//! `cargo bench -p meterline-shared --no-default-features --bench ingest`

use chrono::{Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meterline_shared::ingest::{decode_body, queue_bodies};
use meterline_shared::usage::generator::{generate, GeneratorConfig};
use meterline_shared::usage::{aggregate, split_body, Granularity, TimeRules};
use std::hint::black_box;
use std::time::Instant;

const EVENTS: usize = 200_000;

fn bench(c: &mut Criterion) {
    let now = Utc::now();
    let events = generate(&GeneratorConfig {
        seed: 42,
        accounts: 500,
        providers: 40,
        events: EVENTS,
        start: now - Duration::days(1),
        span: Duration::hours(23),
    });
    let bodies = queue_bodies(&events);
    let rules = TimeRules::default();
    let grans = [Granularity::Hour, Granularity::Day];
    let run = || {
        let mut windows = 0;
        for body in &bodies {
            let decoded = decode_body(body, now, &rules).expect("valid body");
            windows += aggregate(&decoded.events, &grans).len();
        }
        windows
    };

    let t0 = Instant::now();
    let windows = black_box(run());
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "ingest: {EVENTS} events in {} bodies -> {windows} aggregate updates in {secs:.3}s = {:.0} events/s (single pass)",
        bodies.len(),
        EVENTS as f64 / secs
    );

    // Where the time goes, stage by stage (best of 3 passes each).
    let best = |f: &dyn Fn() -> usize| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                black_box(f());
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let decoded: Vec<_> = bodies
        .iter()
        .map(|b| decode_body(b, now, &rules).expect("valid body"))
        .collect();
    let stages: [(&str, &dyn Fn() -> usize); 3] = [
        ("split (general path's first step)", &|| {
            bodies
                .iter()
                .map(|b| split_body(b).expect("valid body").len())
                .sum()
        }),
        ("decode + validate (decode_body)", &|| {
            bodies
                .iter()
                .map(|b| decode_body(b, now, &rules).expect("valid body").events.len())
                .sum()
        }),
        ("aggregate (of decoded bodies)", &|| {
            decoded.iter().map(|d| aggregate(&d.events, &grans).len()).sum()
        }),
    ];
    for (name, f) in stages {
        let secs = best(f);
        println!("  stage {name}: {:.0} ns/event", secs * 1e9 / EVENTS as f64);
    }
    drop(decoded);

    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(10);
    g.bench_function("decode_validate_aggregate_200k", |b| b.iter(|| black_box(run())));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
