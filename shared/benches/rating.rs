//! Rates 1,000,000 aggregated rows against a catalog of 1,000 prices of mixed models and prints
//! the throughput in rows per second.
//!
//! `cargo bench -p meterline-shared --no-default-features --bench rating`

// Benchmarks are test code: a failed setup should stop them loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meterline_shared::domain::meter::Meter;
use meterline_shared::domain::pricing::{
    rate, Catalog, MarketFactors, Period, PriceBook, RatingContext, Subscription, TaxTable, UsageRow,
};
use meterline_shared::domain::usage::Dimensions;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::hint::black_box;
use std::time::Instant;

const ROWS: usize = 1_000_000;
const PRICES: usize = 1_000;
const REGIONS: usize = 11;
const MODELS: usize = 12;

fn model(i: usize) -> (Value, Option<Value>) {
    let tiers = json!([
        {"from": "0", "up_to": "1000", "unit_price": "0.0012"},
        {"from": "1000", "up_to": "100000", "unit_price": "0.0010"},
        {"from": "100000", "unit_price": "0.0008"}
    ]);
    match i % 6 {
        0 => (
            json!({"type": "per_unit", "unit_price": format!("0.000{}", 1 + i % 9)}),
            None,
        ),
        1 => (json!({"type": "graduated", "tiers": tiers}), None),
        2 => (json!({"type": "volume", "tiers": tiers}), None),
        3 => (
            json!({"type": "package", "package_size": "100", "package_price": "0.07"}),
            None,
        ),
        4 => (json!({"type": "flat", "amount": "3.50"}), None),
        _ => (
            json!({"type": "per_unit", "unit_price": "0.0004"}),
            Some(json!({"time_of_use": {"timezone": "Europe/Berlin", "rules": [
                {"days": ["mon", "tue", "wed", "thu", "fri"], "from_hour": 8, "to_hour": 20, "multiplier": "1.4"}
            ]}})),
        ),
    }
}

/// One marketplace book: per meter, a catch-all price, one per region and one per region and
/// model (equally specific prices always conflict on a value, so none is ambiguous).
fn catalog() -> Catalog {
    let mut prices = Vec::new();
    'out: for meter in Meter::ALL {
        let mut filter_sets = vec![Dimensions::new()];
        for r in 0..REGIONS {
            filter_sets.push([("region".to_string(), format!("r{r}"))].into());
            for m in 0..MODELS {
                filter_sets.push(
                    [
                        ("region".to_string(), format!("r{r}")),
                        ("model".to_string(), format!("m{m}")),
                    ]
                    .into(),
                );
            }
        }
        for filters in filter_sets {
            if prices.len() == PRICES {
                break 'out;
            }
            let (model, dynamic) = model(prices.len());
            let mut p = json!({"id": format!("p{}", prices.len()), "meter": meter.as_str(),
                "filters": filters, "model": model});
            if let Some(d) = dynamic {
                p["dynamic"] = d;
            }
            prices.push(p);
        }
    }
    let book: PriceBook = serde_json::from_value(json!({
        "id": "marketplace", "owner": {"kind": "marketplace"}, "currency": "USD", "version": 1,
        "effective_from": "2026-01-01T00:00:00Z", "prices": prices
    }))
    .expect("book");
    assert_eq!(book.prices.len(), PRICES);
    Catalog::new(vec![book]).expect("valid catalog")
}

fn rows() -> Vec<UsageRow> {
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut s: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..ROWS)
        .map(|_| {
            let x = next();
            let meter = Meter::ALL[(x % 7) as usize];
            let mut dimensions = Dimensions::new();
            dimensions.insert("region".into(), format!("r{}", (x >> 8) % (REGIONS as u64 + 1)));
            dimensions.insert("model".into(), format!("m{}", (x >> 16) % (MODELS as u64 + 2)));
            UsageRow {
                provider_id: format!("provider-{}", (x >> 24) % 50),
                meter,
                dimensions,
                window_start: start + TimeDelta::hours(((x >> 32) % (31 * 24)) as i64),
                quantity: Decimal::new(((x >> 40) % 1_000_000) as i64, 3),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let catalog = catalog();
    let rows = rows();
    let sub = Subscription::pay_per_use("acc");
    let taxes = TaxTable::default();
    let market = MarketFactors::default();
    let ctx = RatingContext {
        catalog: &catalog,
        subscription: &sub,
        taxes: &taxes,
        market: &market,
    };
    let period = Period::new(
        "2026-01-01T00:00:00Z".parse().unwrap(),
        "2026-02-01T00:00:00Z".parse().unwrap(),
    );

    let t0 = Instant::now();
    let r = rate(&ctx, &rows, period).expect("rated");
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "rated {ROWS} rows against {PRICES} prices in {secs:.3} s: {:.0} rows/s ({} lines, {} unpriced groups)",
        ROWS as f64 / secs,
        r.lines.len(),
        r.unpriced.len()
    );

    let mut g = c.benchmark_group("rating");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("1M rows x 1000 prices", |b| {
        b.iter(|| black_box(rate(&ctx, black_box(&rows), period).expect("rated")))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
