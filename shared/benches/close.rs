//! Invoices computed per second by the pure domain: `close_period` for one account's monthly
//! period (rating, plan allowance, tax, provider statements, credit, due date) with the
//! previous month re-checked for late usage. One core.
//!
//! `cargo bench -p meterline-shared --no-default-features --bench close`

// Benchmarks are test code: a failed setup should stop them loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use chrono::{DateTime, Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meterline_shared::domain::billing::{close_period, sample, Cadence, CloseInput, PriorPeriod};
use meterline_shared::domain::money::Currency;
use meterline_shared::domain::pricing::{Catalog, UsageRow};
use meterline_shared::domain::usage::generator::{generate, GeneratorConfig};
use meterline_shared::domain::usage::{aggregate, Granularity};
use std::hint::black_box;
use std::time::Instant;

fn rows(start: DateTime<Utc>, seed: u64, events: usize) -> Vec<UsageRow> {
    let events = generate(&GeneratorConfig {
        seed,
        accounts: 1,
        providers: 4,
        events,
        start,
        span: Duration::days(27),
    });
    aggregate(&events, &[Granularity::Hour])
        .into_values()
        .map(|a| UsageRow::from_aggregate(&a.provider_id, &a))
        .collect()
}

fn bench(c: &mut Criterion) {
    let data = sample::catalog();
    let catalog = Catalog::new(data.books.clone()).unwrap();
    let account = sample::account("acct_0000", Currency::USD);
    let sub = sample::subscription(
        "sub_0",
        "acct_0000",
        Cadence::Monthly,
        "2026-09-30T22:00:00Z".parse().unwrap(),
    );
    let october = sub.schedule.period(0).unwrap();
    let november = sub.schedule.period(1).unwrap();
    let oct_rows = rows(october.start, 1, 2_000);
    let nov_rows = rows(november.start, 2, 2_000);
    let input = |usage: &'static [UsageRow], period, prior| CloseInput {
        account: &account,
        subscription: &sub,
        period,
        catalog: &catalog,
        taxes: &data.taxes,
        fees: &data.fees,
        usage,
        prior,
        rate: None,
        now: period.end,
        refunds: Vec::new(),
    };
    let oct_rows: &'static [UsageRow] = Box::leak(oct_rows.into_boxed_slice());
    let nov_rows: &'static [UsageRow] = Box::leak(nov_rows.into_boxed_slice());
    let october_invoice = close_period(&input(oct_rows, october, vec![]))
        .unwrap()
        .invoice
        .finalize(1)
        .unwrap();
    let run = || {
        let prior = vec![PriorPeriod {
            invoice: &october_invoice,
            adjusted: vec![],
            usage: oct_rows,
        }];
        close_period(&input(nov_rows, november, prior)).unwrap()
    };
    let out = run();
    let n = 2_000;
    let t0 = Instant::now();
    for _ in 0..n {
        black_box(run());
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "close: {} usage rows this month + {} re-checked from last month -> {} lines; {n} invoices in {secs:.2}s = {:.0} invoices/s",
        nov_rows.len(),
        oct_rows.len(),
        out.invoice.lines.len(),
        n as f64 / secs
    );
    let mut g = c.benchmark_group("close");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.bench_function("close_period_month_with_recheck", |b| b.iter(|| black_box(run())));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
