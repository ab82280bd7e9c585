//! Property tests of the money and rating rules.

use super::*;
use crate::domain::meter::Meter;
use crate::domain::money::Currency;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

fn qty() -> impl Strategy<Value = Decimal> {
    (0i64..5_000_000, 0u32..4).prop_map(|(n, s)| Decimal::new(n, s))
}

fn tiers() -> Vec<Tier> {
    serde_json::from_value(json!([
        {"from": "0", "up_to": "100", "unit_price": "0.013"},
        {"from": "100", "up_to": "5000", "unit_price": "0.011", "flat_fee": "2"},
        {"from": "5000", "unit_price": "0.007"}
    ]))
    .unwrap()
}

fn catalog() -> Catalog {
    let book: PriceBook = serde_json::from_value(json!({
        "id": "b", "owner": {"kind": "marketplace"}, "currency": "EUR", "version": 1,
        "effective_from": "2026-01-01T00:00:00Z",
        "volume_discount": {"basis": "spend", "method": "incremental",
            "thresholds": [{"from": "0", "percent": "0"}, {"from": "50", "percent": "3"}]},
        "prices": [
            {"id": "cpu", "meter": "cpu_seconds", "model": {"type": "graduated", "tiers": [
                {"from": "0", "up_to": "100", "unit_price": "0.013"},
                {"from": "100", "up_to": "5000", "unit_price": "0.011", "flat_fee": "2"},
                {"from": "5000", "unit_price": "0.007"}]}},
            {"id": "gpu", "meter": "gpu_seconds", "model": {"type": "per_unit", "unit_price": "0.00123"},
             "dynamic": {"time_of_use": {"timezone": "America/New_York", "rules": [
                 {"from_hour": 9, "to_hour": 17, "multiplier": "1.25"}]}}},
            {"id": "gpu-h100", "meter": "gpu_seconds", "filters": {"gpu": "h100"},
             "model": {"type": "volume", "tiers": [
                {"from": "0", "up_to": "1000", "unit_price": "0.0031"},
                {"from": "1000", "unit_price": "0.0027"}]}, "minimum": "1"},
            {"id": "egress", "meter": "network_egress_gib",
             "model": {"type": "package", "package_size": "7", "package_price": "0.33"}}
        ]
    }))
    .unwrap();
    Catalog::new(vec![book]).unwrap()
}

fn rows() -> impl Strategy<Value = Vec<UsageRow>> {
    let row = (0usize..4, 0i64..31 * 24, qty(), 0usize..3).prop_map(|(m, hour, q, p)| {
        let meter = [
            Meter::CpuSeconds,
            Meter::GpuSeconds,
            Meter::GpuSeconds,
            Meter::NetworkEgressGib,
        ][m];
        let mut dimensions = crate::domain::usage::Dimensions::new();
        if m == 2 {
            dimensions.insert("gpu".into(), "h100".into());
        }
        UsageRow {
            provider_id: ["p1", "p2", "p3"][p].into(),
            meter,
            dimensions,
            window_start: "2026-01-01T00:00:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
                + chrono::TimeDelta::hours(hour),
            quantity: q,
        }
    });
    proptest::collection::vec(row, 0..40)
}

fn rate_rows(catalog: &Catalog, sub: &Subscription, rows: &[UsageRow]) -> RatingResult {
    let taxes: TaxTable = serde_json::from_value(json!({"rates": [
        {"country": "AT", "name": "USt", "rate": "0.20", "effective_from": "2016-01-01T00:00:00Z"}]}))
    .unwrap();
    let ctx = RatingContext {
        catalog,
        subscription: sub,
        taxes: &taxes,
        market: &MarketFactors::default(),
    };
    let period = Period::new(
        "2026-01-01T00:00:00Z".parse().unwrap(),
        "2026-02-01T00:00:00Z".parse().unwrap(),
    );
    rate(&ctx, rows, period).unwrap()
}

fn subscription() -> Subscription {
    let mut s = Subscription::pay_per_use("acc");
    s.plan.recurring_fee = Some(Decimal::new(999, 2));
    s.plan.allowances.push(Allowance {
        meter: Meter::CpuSeconds,
        quantity: Decimal::from(1000),
        overage_unit_price: None,
    });
    s.tax.jurisdiction = Some(Jurisdiction {
        country: "AT".into(),
        region: None,
    });
    s
}

proptest! {
    #[test]
    fn graduated_charges_are_monotone(a in qty(), b in qty()) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(charge::graduated(&tiers(), lo).amount <= charge::graduated(&tiers(), hi).amount);
    }

    #[test]
    fn graduated_charges_add_up_across_splits_of_a_period(a in qty(), b in qty()) {
        let cat = catalog();
        let sub = Subscription::pay_per_use("acc");
        let mk = |q: Decimal, h: i64| UsageRow {
            provider_id: "p1".into(),
            meter: Meter::CpuSeconds,
            dimensions: Default::default(),
            window_start: "2026-01-02T00:00:00Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap()
                + chrono::TimeDelta::hours(h),
            quantity: q,
        };
        let split = rate_rows(&cat, &sub, &[mk(a, 0), mk(b, 100)]);
        let whole = rate_rows(&cat, &sub, &[mk(a + b, 50)]);
        prop_assert_eq!(split.subtotal, whole.subtotal);
        let direct = charge::graduated(&tiers(), a + b).amount;
        prop_assert_eq!(split.lines.iter().filter(|l| l.kind == LineKind::Usage).map(|l| l.unrounded).sum::<Decimal>(), direct);
    }

    #[test]
    fn lines_always_sum_to_the_subtotal_exactly(rows in rows()) {
        let r = rate_rows(&catalog(), &subscription(), &rows);
        prop_assert_eq!(r.subtotal, r.lines.iter().map(|l| l.amount).sum::<Decimal>());
        prop_assert_eq!(r.total, r.net_total + r.tax_total);
        for l in &r.lines {
            prop_assert!(Currency::EUR.is_rounded(l.amount));
            prop_assert_eq!(l.tax.net + l.tax.tax, l.tax.gross);
        }
        let by_rate: Decimal = r.tax_breakdown.iter().map(|b| b.tax).sum();
        prop_assert_eq!(by_rate, r.tax_total);
    }

    #[test]
    fn inclusive_tax_splits_back_to_the_gross_exactly(
        cents in -10_000_000i64..10_000_000,
        rate_bp in 0i64..3000,
        code in prop::sample::select(vec!["EUR", "JPY", "KWD", "BTC"]),
    ) {
        let currency = Currency::from_code(code).unwrap();
        let gross = currency.round(Decimal::new(cents, 2));
        let resolved = ResolvedTax {
            jurisdiction: None,
            rate: Decimal::new(rate_bp, 4),
            treatment: TaxTreatment::Standard,
            note: None,
        };
        let t = tax_line(gross, currency, true, &resolved);
        prop_assert_eq!(t.gross, gross);
        prop_assert_eq!(t.net + t.tax, gross);
        prop_assert!(currency.is_rounded(t.net) && currency.is_rounded(t.tax));
    }

    #[test]
    fn rating_is_independent_of_row_order(rows in rows(), seed in any::<u64>()) {
        let cat = catalog();
        let sub = subscription();
        let mut shuffled = rows.clone();
        // A deterministic Fisher–Yates shuffle from the seed.
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(rate_rows(&cat, &sub, &rows), rate_rows(&cat, &sub, &shuffled));
    }
}
