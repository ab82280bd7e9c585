//! The worked quote examples of `docs/estimates-and-forecasts.md` and the estimate = invoice
//! property.

use super::*;
use crate::domain::fx::{CurrencyPair, ExchangeRate};
use crate::domain::meter::Meter;
use crate::domain::money::Currency;
use crate::domain::pricing::{
    Catalog, FactorPoint, MarketFactors, Period, PriceBook, RatingContext, Subscription, TaxTable, UsageRow,
};
use crate::domain::usage::generator::Rng;
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde_json::json;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn jan() -> Period {
    Period::new(t("2026-01-01T00:00:00Z"), t("2026-02-01T00:00:00Z"))
}

/// Provider `gpu-co`, USD: H100 on demand 0.001/s (×1.5 Mon–Fri 08–18 UTC), H100 spot
/// (`capacity=spot`) 0.001/s × factor clamped to [0.0004, 0.0012], CPU 0.00002/s, memory
/// 0.000002/GiB·s, storage 0.0001/GiB·h, egress 0.09/GiB.
fn book() -> PriceBook {
    serde_json::from_value(json!({
        "id": "gpu-co-2026", "owner": {"kind": "provider", "id": "gpu-co"}, "currency": "USD",
        "version": 1, "effective_from": "2026-01-01T00:00:00Z",
        "prices": [
            {"id": "h100", "meter": "gpu_seconds", "filters": {"gpu_model": "H100"},
             "model": {"type": "per_unit", "unit_price": "0.001"},
             "dynamic": {"time_of_use": {"timezone": "UTC", "rules": [
                 {"days": ["mon", "tue", "wed", "thu", "fri"], "from_hour": 8, "to_hour": 18, "multiplier": "1.5"}]}}},
            {"id": "h100-spot", "meter": "gpu_seconds", "filters": {"gpu_model": "H100", "capacity": "spot"},
             "model": {"type": "per_unit", "unit_price": "0.001"},
             "dynamic": {"spot": {"market": "h100", "floor": "0.0004", "cap": "0.0012"}}},
            {"id": "cpu", "meter": "cpu_seconds", "model": {"type": "per_unit", "unit_price": "0.00002"}},
            {"id": "mem", "meter": "memory_gib_seconds", "model": {"type": "per_unit", "unit_price": "0.000002"}},
            {"id": "storage", "meter": "storage_gib_hours", "model": {"type": "per_unit", "unit_price": "0.0001"}},
            {"id": "egress", "meter": "network_egress_gib", "model": {"type": "per_unit", "unit_price": "0.09"}}
        ]
    }))
    .unwrap()
}

fn taxes() -> TaxTable {
    serde_json::from_value(json!({"rates": [
        {"country": "DE", "name": "USt", "rate": "0.19", "effective_from": "2021-01-01T00:00:00Z"}]}))
    .unwrap()
}

fn market() -> MarketFactors {
    let mut m = MarketFactors::default();
    m.record(
        "h100",
        FactorPoint {
            at: t("2026-01-05T00:00:00Z"),
            factor: d("0.6"),
            source: "exchange-a".into(),
        },
    );
    m
}

/// DE customer (19 %), a 100,000 GPU-s/month reservation (1,000 upfront + 50/month from
/// January) and a plan with a 20.00 fee and 100,000 CPU-s included.
fn account() -> Subscription {
    serde_json::from_value(json!({
        "account_id": "acct-7",
        "plan": {"name": "Team", "recurring_fee": "20.00",
            "allowances": [{"meter": "cpu_seconds", "quantity": "100000"}],
            "reservations": [{"id": "r1", "meter": "gpu_seconds", "units_per_period": "100000",
                "term_start": "2026-01-01T00:00:00Z", "term_months": 12, "upfront": "partial",
                "upfront_amount": "1000", "monthly_fee": "50"}]},
        "tax": {"jurisdiction": {"country": "DE"}}
    }))
    .unwrap()
}

/// 8 × H100, 32 vCPU, 256 GiB memory, 1,000 GiB storage, 50 GiB egress for 2 hours from
/// Monday 2026-01-05 09:00 UTC (peak: ×1.5).
fn job() -> JobSpec {
    serde_json::from_value(json!({
        "provider_id": "gpu-co", "start": "2026-01-05T09:00:00Z", "duration_seconds": 7200,
        "gpus": 8, "gpu_model": "H100", "vcpus": "32", "memory_gib": "256", "storage_gib": "1000",
        "egress_gib": "50", "spot_dimensions": {"capacity": "spot"}
    }))
    .unwrap()
}

/// 60,000 GPU-s already used this month, off-peak (Saturday night).
fn so_far() -> Vec<UsageRow> {
    vec![UsageRow {
        provider_id: "gpu-co".into(),
        meter: Meter::GpuSeconds,
        dimensions: [("gpu_model".to_string(), "H100".to_string())].into(),
        window_start: t("2026-01-03T22:00:00Z"),
        quantity: d("60000"),
    }]
}

fn opt(q: &Quote, m: PricingModel) -> &QuoteOption {
    q.options.iter().find(|o| o.model == m).expect("option quoted")
}

fn totals(o: &QuoteOption) -> (Decimal, Decimal, Decimal) {
    (o.net, o.tax, o.total)
}

#[test]
fn q1_job_quote_under_every_pricing_model() {
    let catalog = Catalog::new(vec![book()]).unwrap();
    let (sub, taxes, market, rows) = (account(), taxes(), market(), so_far());
    let q = QuoteContext {
        rating: RatingContext {
            catalog: &catalog,
            subscription: &sub,
            taxes: &taxes,
            market: &market,
        },
        period: jan(),
        usage_so_far: &rows,
        account_currency: Currency::USD,
        fx: None,
    };
    let quote = quote_job(&q, &job()).unwrap();
    let models: Vec<PricingModel> = quote.options.iter().map(|o| o.model).collect();
    assert_eq!(
        models,
        vec![
            PricingModel::PayPerUse,
            PricingModel::Spot,
            PricingModel::Reserved,
            PricingModel::Subscription
        ]
    );

    // Pay-per-use: GPU 57,600 s × 0.0015 = 86.40; CPU 230,400 s × 0.00002 = 4.608 → 4.61;
    // memory 1,843,200 GiB·s × 0.000002 = 3.6864 → 3.69; storage 2,000 GiB·h × 0.0001 = 0.20;
    // egress 50 × 0.09 = 4.50. Net 99.40; tax per line 16.42 + 0.88 + 0.70 + 0.04 + 0.86
    // (0.855 → 0.86, half to even) = 18.90; total 118.30.
    let ppu = opt(&quote, PricingModel::PayPerUse);
    assert_eq!(totals(ppu), (d("99.40"), d("18.90"), d("118.30")));
    let gpu = ppu
        .lines
        .iter()
        .find(|l| l.meter == Some(Meter::GpuSeconds))
        .unwrap();
    assert_eq!(
        (gpu.quantity, gpu.unit_price, gpu.multiplier, gpu.amount),
        (d("57600"), Some(d("0.0015")), Some(d("1.5")), d("86.40"))
    );

    // Spot at factor 0.6: 0.001 × 0.6 = 0.0006 → 57,600 × 0.0006 = 34.56 (tax 6.57); net
    // 34.56 + 13.00 = 47.56, tax 6.57 + 2.48 = 9.05, total 56.61. Floor 0.0004: 23.04
    // (tax 4.38) → 42.90; cap 0.0012: 69.12 (tax 13.13) → 97.73.
    let spot = opt(&quote, PricingModel::Spot);
    assert_eq!(totals(spot), (d("47.56"), d("9.05"), d("56.61")));
    assert_eq!(spot.range, Some((d("42.90"), d("97.73"))));

    // Reserved: 100,000 − 60,000 = 40,000 GPU-s left; 17,600 × 0.0015 = 26.40 (tax 5.02); the
    // reservation fees are owed with or without the job. Net 26.40 + 13.00 = 39.40, tax 7.50,
    // total 46.90.
    let reserved = opt(&quote, PricingModel::Reserved);
    assert_eq!(reserved.units_left[&Meter::GpuSeconds], d("40000"));
    assert_eq!(totals(reserved), (d("39.40"), d("7.50"), d("46.90")));

    // The account's plan: also 100,000 CPU-s included, 130,400 × 0.00002 = 2.608 → 2.61
    // (tax 0.50). Net 26.40 + 2.61 + 3.69 + 0.20 + 4.50 = 37.40, tax 5.02 + 0.50 + 0.70 + 0.04
    // + 0.86 = 7.12, total 44.52. The 20.00 fee is owed either way.
    let plan = opt(&quote, PricingModel::Subscription);
    assert_eq!(plan.units_left[&Meter::CpuSeconds], d("100000"));
    assert_eq!(totals(plan), (d("37.40"), d("7.12"), d("44.52")));
}

#[test]
fn q2_quote_in_the_account_currency_and_off_peak() {
    let catalog = Catalog::new(vec![book()]).unwrap();
    let (taxes, market) = (taxes(), market());
    let sub = Subscription::pay_per_use("acct-8");
    // USD/EUR 0.92: the account is billed in EUR, untaxed.
    let rate = ExchangeRate::new(
        CurrencyPair::new(Currency::USD, Currency::EUR),
        d("0.92"),
        t("2026-01-05T00:00:00Z"),
        vec!["ecb".into()],
        t("2026-01-05T00:00:00Z"),
    )
    .unwrap();
    let q = QuoteContext {
        rating: RatingContext {
            catalog: &catalog,
            subscription: &sub,
            taxes: &taxes,
            market: &market,
        },
        period: jan(),
        usage_so_far: &[],
        account_currency: Currency::EUR,
        fx: Some(&rate),
    };
    // Saturday: no time-of-use multiplier. 57,600 × 0.001 = 57.60 + 13.00 = 70.60 USD
    // → × 0.92 = 64.952 → 64.95 EUR.
    let mut spec = job();
    spec.start = t("2026-01-03T09:00:00Z");
    spec.spot_dimensions.clear();
    let quote = quote_job(&q, &spec).unwrap();
    assert_eq!(quote.options.len(), 1, "no plan: pay-per-use only");
    let o = opt(&quote, PricingModel::PayPerUse);
    assert_eq!(quote.currency, Currency::EUR);
    assert_eq!(totals(o), (d("64.95"), d("0.00"), d("64.95")));

    let no_rate = QuoteContext { fx: None, ..q };
    assert!(matches!(
        quote_job(&no_rate, &spec),
        Err(QuoteError::NoExchangeRate { .. })
    ));
    spec.start = t("2026-02-01T00:00:00Z");
    assert!(matches!(
        quote_job(&q, &spec),
        Err(QuoteError::OutsidePeriod { .. })
    ));
}

/// Random usage over January, on every price, with the account's plan and tax.
fn random_rows(seed: u64, n: usize) -> Vec<UsageRow> {
    let mut rng = Rng::new(seed);
    let dims = |spot: bool| {
        let mut m = crate::domain::usage::Dimensions::new();
        m.insert("gpu_model".into(), "H100".into());
        if spot {
            m.insert("capacity".into(), "spot".into());
        }
        m
    };
    (0..n)
        .map(|_| {
            let meter = Meter::ALL[rng.below(5) as usize];
            UsageRow {
                provider_id: "gpu-co".into(),
                meter,
                dimensions: if meter == Meter::GpuSeconds {
                    dims(rng.below(2) == 0)
                } else {
                    Default::default()
                },
                window_start: jan().start + TimeDelta::hours(rng.below(31 * 24) as i64),
                quantity: Decimal::new(rng.below(10_000_000) as i64, 3),
            }
        })
        .collect()
}

#[test]
fn the_period_to_date_estimate_equals_the_invoice_for_the_same_usage() {
    let catalog = Catalog::new(vec![book()]).unwrap();
    let (sub, taxes, market) = (account(), taxes(), market());
    let ctx = RatingContext {
        catalog: &catalog,
        subscription: &sub,
        taxes: &taxes,
        market: &market,
    };
    for seed in 0..20 {
        let rows = random_rows(seed, 300);
        // The estimate on the last instant of the period sees every row the close sees.
        let estimate = period_to_date(&ctx, &rows, jan(), jan().end).unwrap();
        let invoice = crate::domain::pricing::rate(&ctx, &rows, jan()).unwrap();
        assert_eq!(estimate.result, invoice, "seed {seed}");
        assert_eq!(estimate.rows_after_as_of, 0);
        // Mid-period: equal to the invoice of the usage so far, and late rows are counted.
        let as_of = t("2026-01-16T13:00:00Z");
        let mid = period_to_date(&ctx, &rows, jan(), as_of).unwrap();
        let before: Vec<UsageRow> = rows.iter().filter(|r| r.window_start < as_of).cloned().collect();
        assert_eq!(
            mid.result,
            crate::domain::pricing::rate(&ctx, &before, jan()).unwrap()
        );
        assert_eq!(mid.result.total, mid.result.net_total + mid.result.tax_total);
        assert_eq!(mid.rows_after_as_of, rows.len() - before.len());
    }
}
