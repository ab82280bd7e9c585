//! Forecasts turned into money through the rating engine.

use super::*;
use crate::domain::meter::Meter;
use crate::domain::pricing::{
    rate, Catalog, MarketFactors, Period, PriceBook, RatingContext, Subscription, TaxTable, UsageRow,
};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde_json::json;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// GPU: graduated, 0.001/s up to 1,000,000 s, then 0.0005/s. CPU 0.00002/s.
fn book() -> PriceBook {
    serde_json::from_value(json!({
        "id": "b", "owner": {"kind": "marketplace"}, "currency": "EUR", "version": 1,
        "effective_from": "2025-01-01T00:00:00Z",
        "prices": [
            {"id": "gpu", "meter": "gpu_seconds", "model": {"type": "graduated", "tiers": [
                {"from": "0", "up_to": "1000000", "unit_price": "0.001"},
                {"from": "1000000", "unit_price": "0.0005"}]}},
            {"id": "cpu", "meter": "cpu_seconds", "model": {"type": "per_unit", "unit_price": "0.00002"}}
        ]
    }))
    .unwrap()
}

/// Daily usage from 2026-01-01 for `days` days: GPU `20,000 + 200·t + weekly + noise` s (noise
/// uniform in ±`noise`) split over two regions 3:1, CPU 50,000 s flat.
fn noisy_usage(days: i64, noise: u64) -> Vec<UsageRow> {
    const WEEK: [f64; 7] = [3000.0, 4000.0, 3500.0, 3000.0, 2000.0, -7000.0, -8500.0];
    let mut rng = crate::domain::usage::generator::Rng::new(9);
    let mut rows = Vec::new();
    for day in 0..days {
        let at = t("2026-01-01T00:00:00Z") + TimeDelta::days(day);
        let e = rng.below(2 * noise + 1) as f64 - noise as f64;
        let gpu = 20_000.0 + 200.0 * day as f64 + WEEK[day as usize % 7] + e;
        for (region, share) in [("eu-west", 0.75), ("us-east", 0.25)] {
            rows.push(UsageRow {
                provider_id: "p1".into(),
                meter: Meter::GpuSeconds,
                dimensions: [("region".to_string(), region.to_string())].into(),
                window_start: at,
                quantity: Decimal::from_f64_retain(gpu * share).unwrap().round_dp(3),
            });
        }
        rows.push(UsageRow {
            provider_id: "p1".into(),
            meter: Meter::CpuSeconds,
            dimensions: Default::default(),
            window_start: at,
            quantity: d("50000"),
        });
    }
    rows
}

fn usage(days: i64) -> Vec<UsageRow> {
    noisy_usage(days, 0)
}

#[test]
fn the_period_projection_rates_forecast_usage_and_brackets_the_truth() {
    let catalog = Catalog::new(vec![book()]).unwrap();
    let (sub, taxes, market) = (
        Subscription::pay_per_use("a1"),
        TaxTable::default(),
        MarketFactors::default(),
    );
    let ctx = RatingContext {
        catalog: &catalog,
        subscription: &sub,
        taxes: &taxes,
        market: &market,
    };
    let march = Period::new(t("2026-03-01T00:00:00Z"), t("2026-04-01T00:00:00Z"));
    let all = noisy_usage(90, 1500); // through 2026-03-31
    let as_of = t("2026-03-15T00:00:00Z");
    let known: Vec<UsageRow> = all.iter().filter(|r| r.window_start < as_of).cloned().collect();
    let e = estimate_period(&ctx, &known, march, as_of, &ForecastOptions::daily()).unwrap();
    assert_eq!(e.meters.len(), 2);
    assert!(e.meters.iter().all(|m| m.forecast.method == Method::MstlEts));
    // Period to date = the invoice of the usage so far.
    let so_far: Vec<UsageRow> = known
        .iter()
        .filter(|r| march.contains(r.window_start))
        .cloned()
        .collect();
    assert_eq!(e.to_date.result, rate(&ctx, &so_far, march).unwrap());
    // The truth: March's full usage rated. The tiers make it non-linear (GPU crosses 1,000,000 s
    // mid-month), and the forecast, rated, lands within 3 % and inside the 95 % band.
    let truth = rate(
        &ctx,
        &all.iter()
            .filter(|r| march.contains(r.window_start))
            .cloned()
            .collect::<Vec<_>>(),
        march,
    )
    .unwrap()
    .total;
    let s = &e.spend;
    assert!(
        (s.point - truth).abs() <= truth * d("0.03"),
        "point {} truth {truth}",
        s.point
    );
    assert!(
        s.p95.lower <= truth && truth <= s.p95.upper,
        "{s:?} truth {truth}"
    );
    assert!(s.p80.lower < s.point && s.point < s.p80.upper, "{s:?}");
    assert!(s.p95.lower <= s.p80.lower && s.p80.upper <= s.p95.upper);
    assert_eq!(e.projected.total, s.point);
    let gpu = e
        .projected
        .lines
        .iter()
        .find(|l| l.price_id.as_deref() == Some("gpu"))
        .unwrap();
    assert_eq!(gpu.tiers.len(), 2, "the projection reaches the second tier");
    // The split across regions follows recent usage: 3:1.
    let (_, scenarios) =
        forecast_rows(&known, as_of, march.end, Some(march), &ForecastOptions::daily()).unwrap();
    let region = |r: &str| -> Decimal {
        scenarios[0]
            .iter()
            .filter(|row| {
                row.meter == Meter::GpuSeconds && row.dimensions.get("region").map(String::as_str) == Some(r)
            })
            .map(|row| row.quantity)
            .sum()
    };
    let ratio = region("eu-west") / region("us-east");
    assert!((ratio - d("3")).abs() < d("0.01"), "{ratio}");
}

#[test]
fn at_the_period_end_the_projection_is_the_invoice() {
    let catalog = Catalog::new(vec![book()]).unwrap();
    let (sub, taxes, market) = (
        Subscription::pay_per_use("a1"),
        TaxTable::default(),
        MarketFactors::default(),
    );
    let ctx = RatingContext {
        catalog: &catalog,
        subscription: &sub,
        taxes: &taxes,
        market: &market,
    };
    let feb = Period::new(t("2026-02-01T00:00:00Z"), t("2026-03-01T00:00:00Z"));
    let rows = usage(59);
    let e = estimate_period(&ctx, &rows, feb, feb.end, &ForecastOptions::daily()).unwrap();
    let feb_rows: Vec<UsageRow> = rows
        .iter()
        .filter(|r| feb.contains(r.window_start))
        .cloned()
        .collect();
    let invoice = rate(&ctx, &feb_rows, feb).unwrap();
    assert_eq!(e.to_date.result, invoice);
    assert_eq!(e.projected, invoice);
    assert_eq!(
        (e.spend.p95.lower, e.spend.p95.upper),
        (invoice.total, invoice.total)
    );
}

#[test]
fn short_history_is_flagged_and_next_days_are_rated() {
    let catalog = Catalog::new(vec![book()]).unwrap();
    let (sub, taxes, market) = (
        Subscription::pay_per_use("a1"),
        TaxTable::default(),
        MarketFactors::default(),
    );
    let ctx = RatingContext {
        catalog: &catalog,
        subscription: &sub,
        taxes: &taxes,
        market: &market,
    };
    let rows = usage(10);
    let as_of = t("2026-01-11T00:00:00Z");
    let f = forecast_days(&ctx, &rows, as_of, 7, &ForecastOptions::daily()).unwrap();
    assert!(f.meters.iter().all(is_fallback));
    let reason = f.meters[0].forecast.reason.as_deref().unwrap();
    assert!(reason.contains("seasonal naive"), "{reason}");
    // Seasonal naive: the next 7 days repeat days 3..10; CPU 7 × 50,000 s × 0.00002 = 7.00.
    let expected_gpu: f64 = (3..10)
        .map(|day| {
            20_000.0
                + 200.0 * day as f64
                + [3000.0, 4000.0, 3500.0, 3000.0, 2000.0, -7000.0, -8500.0][day % 7]
        })
        .sum();
    let gpu_cost = Decimal::from_f64_retain(expected_gpu * 0.001).unwrap();
    assert!(
        (f.spend.point - gpu_cost - d("7.00")).abs() < d("0.02"),
        "{:?} vs {gpu_cost}",
        f.spend
    );
    assert!(matches!(
        forecast_days(&ctx, &rows, as_of, 0, &ForecastOptions::daily()),
        Err(ForecastError::EmptyHorizon)
    ));
}
