//! Decode + validate + aggregate, the pure part of ingestion, on the generator's workload:
//! 200,000 events in bodies of 500, on one core. Prints events per second.
//!
//! `cargo bench -p meterline-shared --no-default-features --bench ingest`

// Benchmarks are test code: a failed setup should stop them loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use chrono::{Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meterline_shared::domain::usage::generator::{generate, GeneratorConfig};
use meterline_shared::domain::usage::intake::{decode_body, queue_bodies};
use meterline_shared::domain::usage::{aggregate_refs, split_body, Granularity, TimeRules};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

const EVENTS: usize = 200_000;

/// The system allocator, counting allocations while `COUNTING` is set (for the stage report).
struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (and reallocations) made by `f`.
fn allocations(f: &dyn Fn() -> usize) -> u64 {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    black_box(f());
    COUNTING.store(false, Ordering::Relaxed);
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Nanoseconds this thread has run on a CPU (Linux), to discount waiting for a core.
fn cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

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
            windows += aggregate_refs(&decoded.events, &grans).len();
        }
        windows
    };

    // On a shared machine wall time includes time spent waiting for a core, so the figures
    // below also give the time on CPU of this thread (from /proc/thread-self/schedstat).
    let t0 = Instant::now();
    let c0 = cpu_ns();
    let windows = black_box(run());
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_ns().zip(c0).map(|(b, a)| (b - a) as f64 / 1e9);
    println!(
        "ingest: {EVENTS} events in {} bodies -> {windows} aggregate updates in {secs:.3}s = {:.0} events/s (single pass){}",
        bodies.len(),
        EVENTS as f64 / secs,
        cpu.map(|c| format!("; on CPU {c:.3}s = {:.0} events/s", EVENTS as f64 / c))
            .unwrap_or_default()
    );

    if std::env::var_os("INGEST_SINGLE_PASS").is_some() {
        // For profilers (e.g. `valgrind --tool=callgrind`): the single pass only.
        return;
    }

    // Where the time goes, stage by stage (best of 5 passes, time on CPU when known).
    let best = |f: &dyn Fn() -> usize| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                let c = cpu_ns();
                black_box(f());
                match cpu_ns().zip(c) {
                    Some((b, a)) => (b - a) as f64 / 1e9,
                    None => t.elapsed().as_secs_f64(),
                }
            })
            .fold(f64::INFINITY, f64::min)
    };
    let stages: [(&str, &dyn Fn() -> usize); 3] = [
        ("decode + validate + aggregate", &run),
        ("  split into raw events (general path only)", &|| {
            bodies
                .iter()
                .map(|b| split_body(b).expect("valid body").len())
                .sum()
        }),
        ("  decode + validate (decode_body)", &|| {
            bodies
                .iter()
                .map(|b| decode_body(b, now, &rules).expect("valid body").events.len())
                .sum()
        }),
    ];
    for (name, f) in stages {
        let secs = best(f);
        println!(
            "stage {name}: {:.0} ns/event, {:.1} allocations/event",
            secs * 1e9 / EVENTS as f64,
            allocations(f) as f64 / EVENTS as f64
        );
    }
    // Aggregation alone needs every body decoded beforehand (a larger heap than the run's).
    let decoded: Vec<_> = bodies
        .iter()
        .map(|b| decode_body(b, now, &rules).expect("valid body"))
        .collect();
    let aggregate_only = || {
        decoded
            .iter()
            .map(|d| aggregate_refs(&d.events, &grans).len())
            .sum()
    };
    println!(
        "stage   aggregate (of decoded bodies): {:.0} ns/event, {:.1} allocations/event",
        best(&aggregate_only) * 1e9 / EVENTS as f64,
        allocations(&aggregate_only) as f64 / EVENTS as f64
    );
    drop(decoded);

    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(10);
    g.bench_function("decode_validate_aggregate_200k", |b| b.iter(|| black_box(run())));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
